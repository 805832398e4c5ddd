import Foundation
import OcimanTestSupport
import Testing

/// Issue 11: ocimand ends the exec processes it started when nobody can read them any more:
/// on SIGTERM before it exits, and after a SIGKILL on its next start (from the state directory).
@Suite("Exec lifetime", .timeLimit(.minutes(5)))
struct ExecLifetimeTests {
    @Test("SIGTERM ends the exec processes still running", arguments: TestEngines.available)
    func sigtermEndsExecs(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let id = try await fixture.startBusybox(["sleep", "3600"])
            let state = try StateDirectory()
            let server = try await OcimandProcess.start(engine: engine, arguments: state.arguments + ["--shutdown-grace", "1"])
            defer { server.stop() }
            let reader = try Self.startSleeper(id, seconds: 311, on: server)
            defer { reader.close() }
            #expect(await eventually(timeout: .seconds(10)) { !hostProcesses(named: "sleep", inContainer: id, argument: "311").isEmpty })
            kill(server.processIdentifier, SIGTERM)
            let ended = await eventually(timeout: .seconds(10)) { hostProcesses(named: "sleep", inContainer: id, argument: "311").isEmpty }
            #expect(ended, "the exec outlived ocimand's SIGTERM")
        }
    }

    @Test("after SIGKILL, the next start ends what the killed ocimand left running", arguments: TestEngines.available)
    func restartEndsLeftovers(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let id = try await fixture.startBusybox(["sleep", "3600"])
            let state = try StateDirectory()
            let first = try await OcimandProcess.start(engine: engine, arguments: state.arguments)
            let reader = try Self.startSleeper(id, seconds: 312, on: first)
            defer { reader.close() }
            #expect(await eventually(timeout: .seconds(10)) { !hostProcesses(named: "sleep", inContainer: id, argument: "312").isEmpty })
            kill(first.processIdentifier, SIGKILL)
            first.stop()
            // Nothing ends it by itself: the engine keeps an exec running when its client dies.
            try await Task.sleep(for: .seconds(2))
            #expect(!hostProcesses(named: "sleep", inContainer: id, argument: "312").isEmpty)
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let ended = await eventually(timeout: .seconds(10)) { hostProcesses(named: "sleep", inContainer: id, argument: "312").isEmpty }
                #expect(ended, "the next ocimand did not end the leftover exec")
                let health = try await client.get("/health")
                #expect(health.status == 200)
            }
        }
    }

    @Test("after SIGKILL, the next start ends a build step the killed ocimand left running", arguments: TestEngines.available)
    func restartEndsLeftoverBuildSteps(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let tag = "localhost/ociman-test-\(fixture.runID):killed"
        try await fixture.withCleanup(images: [tag]) {
            let state = try StateDirectory()
            let first = try await OcimandProcess.start(engine: engine, arguments: state.arguments)
            let body = try JSONSerialization.data(withJSONObject: [
                "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN sleep 53\n"],
                "tag": tag, "labels": fixture.labels, "no_cache": true,
            ])
            let reader = try StalledReader(
                port: first.port,
                request: Array("POST /images/build HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + [UInt8](body))
            defer { reader.close() }
            #expect(await eventually(timeout: .seconds(30)) { !hostProcesses(named: "sleep", argument: "53").isEmpty })
            kill(first.processIdentifier, SIGKILL)
            first.stop()
            reader.close()
            // Docker cancels a build whose connection closed; Podman runs the step on.
            if engine == "podman" {
                try await Task.sleep(for: .seconds(1))
                #expect(!hostProcesses(named: "sleep", argument: "53").isEmpty, "nothing else ends Podman's step")
            }
            try await withOcimand(engine: engine, arguments: state.arguments) { _, _ in
                let ended = await eventually(timeout: .seconds(10)) { hostProcesses(named: "sleep", argument: "53").isEmpty }
                #expect(ended, "the build step outlived the restart")
            }
        }
    }

    /// A streamed exec of `sleep N` whose client stays connected and reads nothing.
    static func startSleeper(_ id: String, seconds: Int, on server: OcimandProcess) throws -> StalledReader {
        let reader = try StalledReader(
            port: server.port,
            request: StalledReader.request(
                "POST", "/containers/\(id)/exec", json: ["command": ["sleep", String(seconds)]], accept: "application/x-ndjson"))
        _ = try reader.readHead()
        return reader
    }
}
