import Foundation
import OcimanClient
import OcimanTestSupport
import OpenAPIRuntime
import Testing

/// The generated Swift client (`OcimanClient`) against a real ocimand on each engine: over TCP
/// and over a unix socket, with typed event streams, and a stream left early is released.
@Suite("OcimanClient against real engines")
struct OcimanClientTests {
    static let image = TestEngines.baseImage

    @Test("run, inspect, list, exec (collected, stdin, streamed), logs, builds, image routes, a session", arguments: TestEngines.available)
    func lifecycle(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let tag = "localhost/ociman-client-\(fixture.runID):json"
        let tarTag = "localhost/ociman-client-\(fixture.runID):tar"
        let extraTag = "localhost/ociman-client-\(fixture.runID):extra"
        try await fixture.withCleanup(images: [tag, tarTag, extraTag]) {
            let server = try await OcimandProcess.start(engine: engine)
            defer { server.stop() }
            let ociman = server.swiftClient

            let session = try await ociman.createSession(body: .json(.init(leaseSeconds: 300))).created.body.json
            #expect(session.expiresAt > Date().addingTimeInterval(240) && session.expiresAt < Date().addingTimeInterval(360))

            let run = try await ociman.runContainer(
                body: .json(
                    .init(
                        image: Self.image, command: ["sh", "-c", "echo started; exec httpd -f -p 8080"],
                        labels: .init(additionalProperties: fixture.labels),
                        publish: [.init(containerPort: 8080, hostIp: "127.0.0.1")],
                        wait: .init(timeoutSeconds: 60, tcpPort: 8080), ttlSeconds: 600, session: session.id)))
            let container = try run.created.body.json
            let hostPort = try #require(container.ports.first?.hostPort)
            #expect(hostPort > 0 && container.state.running)
            #expect(abs(container.created.timeIntervalSinceNow) < 120)

            let inspected = try await ociman.inspectContainer(path: .init(id: container.id)).ok.body.json
            #expect(inspected.id == container.id && inspected.ports.first?.hostPort == hostPort)
            let startedAt = try #require(inspected.state.startedAt)
            #expect(abs(startedAt.timeIntervalSinceNow) < 120)

            let listed = try await ociman.listContainers(query: .init(label: ["\(fixture.labelKey)=\(fixture.runID)"])).ok.body.json
            #expect(listed.map(\.id) == [container.id])

            // Collected exec: the default Accept of the generated client lists JSON and ndjson equally.
            let echoed = try await ociman.execInContainer(
                path: .init(id: container.id), body: .json(.init(command: ["wc", "-c"], stdin: "four"))
            ).ok.body.json
            #expect(echoed.exitCode == 0 && echoed.stdout?.trimmingCharacters(in: .whitespaces) == "4\n")
            let failed = try await ociman.execInContainer(
                path: .init(id: container.id), body: .json(.init(command: ["sh", "-c", "echo oops >&2; exit 3"]))
            ).ok.body.json
            #expect(failed.exitCode == 3 && failed.stderr == "oops\n")

            var streamed: [Components.Schemas.ExecEvent] = []
            for try await event in try await ociman.execEvents(container: container.id, .init(command: ["sh", "-c", "echo one; echo two >&2; exit 4"])) {
                streamed.append(event)
            }
            let stdout = streamed.compactMap { if case .stdout(let output) = $0 { output.data } else { nil } }.joined()
            let stderr = streamed.compactMap { if case .stderr(let output) = $0 { output.data } else { nil } }.joined()
            #expect(stdout == "one\n" && stderr == "two\n")
            guard case .exit(let exit) = streamed.last else { throw TestSupportError("exec stream did not end in exit: \(streamed)") }
            #expect(exit.exitCode == 4)

            var lines: [Components.Schemas.LogEvent] = []
            for try await event in try await ociman.logEvents(container: container.id, timestamps: true) { lines.append(event) }
            guard case .stdout(let first) = lines.first, case .end = lines.last else { throw TestSupportError("logs: \(lines)") }
            #expect(first.line == "started")
            #expect(abs(try #require(first.timestamp).timeIntervalSinceNow) < 120)

            let built = try await Self.result(
                try await ociman.buildEvents(.init(context: .init(instructions: "FROM \(Self.image)\nRUN echo json > /from\n"), tag: tag)))
            #expect(built.reference == tag && !built.cached)
            let tar = tarArchive([("Dockerfile", Array("FROM \(Self.image)\nRUN echo tar > /from\n".utf8))])
            let fromTar = try await Self.result(
                try await ociman.buildEvents(tar: HTTPBody(tar), .init(labels: ["\(fixture.labelKey)=\(fixture.runID)"], tag: tarTag)))
            #expect(fromTar.reference == tarTag)

            let image = try await ociman.inspectImage(path: .init(reference: tarTag)).ok.body.json
            #expect(image.references.contains(tarTag) && image.labels.additionalProperties[fixture.labelKey] == fixture.runID)
            _ = try await ociman.checkImage(path: .init(reference: tarTag)).ok
            _ = try await ociman.tagImage(path: .init(reference: tarTag), body: .json(.init(target: extraTag))).created
            _ = try await ociman.removeImage(path: .init(reference: extraTag)).noContent
            _ = try await ociman.checkImage(path: .init(reference: extraTag)).notFound

            // Ending the session removes its container.
            let ended = try await ociman.deleteSession(path: .init(id: session.id)).ok.body.json
            #expect(ended.removedContainers == 1)
            _ = try await ociman.inspectContainer(path: .init(id: container.id)).notFound
        }
    }

    @Test("over a unix socket, with the token from a file, configured from the environment", arguments: TestEngines.available)
    func unixSocketAndToken(engine: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ociman-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("ocimand.sock").path
        let tokenFile = directory.appendingPathComponent("token").path
        try "client-test-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let server = try await OcimandProcess.start(engine: engine, arguments: ["--token-file", tokenFile], unixSocket: socket)
        defer { server.stop() }

        let ociman = try Client.fromEnvironment(["OCIMAN_HOST": "unix://\(socket)", "OCIMAN_TOKEN_FILE": tokenFile])
        let backend = try await ociman.getBackend().ok.body.json
        #expect(backend.kind.rawValue == engine)
        _ = try await Client(host: .unix(socket)).getBackend().unauthorized

        #expect(throws: OcimanClientError.self) { try Client.fromEnvironment(["OCIMAN_HOST": "http://127.0.0.1:8420"]) }
        #expect(throws: OcimanClientError.self) { try Client.fromEnvironment(["OCIMAN_HOST": "unix://relative.sock"]) }
    }

    @Test("a consumer that leaves a followed log stream releases it in ocimand", arguments: TestEngines.available)
    func leavingAStreamReleasesIt(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let server = try await OcimandProcess.start(engine: engine)
            defer { server.stop() }
            let ociman = server.swiftClient
            let container = try await ociman.runContainer(
                body: .json(
                    .init(
                        image: Self.image, command: ["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
                        labels: .init(additionalProperties: fixture.labels), ttlSeconds: 300))
            ).created.body.json
            var seen = 0
            var openWhileReading = 0
            for try await event in try await ociman.logEvents(container: container.id, follow: true) {
                if case .stdout = event { seen += 1 }
                if seen == 2 { openWhileReading = try await Self.openLogStreams(ociman) }
                if seen == 3 { break }
            }
            #expect(seen == 3)
            #expect(openWhileReading == 1)
            let released = try await waitUntil(within: .seconds(10)) {
                try await Self.openLogStreams(ociman) == 0
            }
            #expect(released, "the log stream is still open in ocimand after the client left")
            _ = try await ociman.removeContainer(path: .init(id: container.id), query: .init(force: true)).noContent
        }
    }

    private static func result(
        _ events: Client.EventStream<Components.Schemas.BuildEvent>
    ) async throws -> Components.Schemas.BuildResultEvent {
        var last: Components.Schemas.BuildEvent?
        for try await event in events { last = event }
        guard case .result(let result) = last else { throw TestSupportError("the build did not end in a result: \(String(describing: last))") }
        return result
    }

    /// `ociman_http_response_streams_open` of the logs route, from /metrics.
    private static func openLogStreams(_ ociman: Client) async throws -> Int {
        let body = try await ociman.getMetrics().ok.body.plainText
        let text = try await String(collecting: body, upTo: 1 << 20)
        let sample = text.split(separator: "\n").first {
            $0.hasPrefix("ociman_http_response_streams_open{") && $0.contains(#"route="/containers/{id}/logs""#)
        }
        return sample.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int($0) } ?? 0
    }
}
