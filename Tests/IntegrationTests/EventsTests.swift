import Foundation
import OcimanTestSupport
import Testing

/// Issue 15 item 1: `GET /events` streams container and image events, normalised across the
/// engines, for changes made through ocimand and with the engine's own CLI.
@Suite("Events against real engines")
struct EventsTests {
    @Test("a container run with the engine CLI appears as create, start, die (exit code), destroy", arguments: TestEngines.available)
    func cliContainerLifecycle(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, _ in
                let stream = try await EventStream.open(server, "/events?label=\(fixture.labelKey)=\(fixture.runID)&heartbeat_seconds=60")
                let name = "ev-\(fixture.runID)"
                try CLI.run(engine, ["run", "-d", "--name", name, "--label", "\(fixture.labelKey)=\(fixture.runID)", "--label", "org.example=yes",
                    TestEngines.baseImage, "sh", "-c", "exit 3"])
                try CLI.run(engine, ["wait", name])
                try CLI.run(engine, ["rm", name])
                var seen: [[String: Any]] = []
                while seen.last?["type"] as? String != "destroy" {
                    seen.append(try #require(try await stream.next(within: .seconds(20)), "stream ended after \(seen)"))
                }
                #expect(seen.map { $0["type"] as? String } == ["create", "start", "die", "destroy"])
                for event in seen {
                    #expect(event["name"] as? String == name)
                    #expect(event["image"] as? String == TestEngines.baseImage)
                    #expect((event["labels"] as? [String: String])?["org.example"] == "yes")
                    #expect((event["time_nano"] as? Int ?? 0) > 1_700_000_000_000_000_000)
                }
                #expect(seen[2]["exit_code"] as? Int == 3)
                await stream.close()
            }
        }
    }

    @Test("an idle stream sends heartbeats", arguments: TestEngines.available)
    func heartbeats(engine: String) async throws {
        try await withOcimand(engine: engine) { server, _ in
            // A label nothing carries: only heartbeats can come.
            let stream = try await EventStream.open(server, "/events?label=ociman.test.none=\(UUID().uuidString)&heartbeat_seconds=1")
            for _ in 0..<2 {
                let line = try #require(try await stream.next(within: .seconds(5)))
                #expect(line["type"] as? String == "heartbeat")
                #expect(line["time"] is String)
            }
            await stream.close()
        }
    }

    @Test("clients that leave release their engine event streams", arguments: TestEngines.available)
    func leavingReleasesEngineStreams(engine: String) async throws {
        try await withOcimand(engine: engine) { server, client in
            let before = engineConnections(of: server.processIdentifier)
            var streams: [EventStream] = []
            for _ in 0..<8 {
                let stream = try await EventStream.open(server, "/events?heartbeat_seconds=1")
                _ = try await stream.next(within: .seconds(5))
                streams.append(stream)
            }
            let during = engineConnections(of: server.processIdentifier)
            #expect(during >= before + 8, "8 event streams hold \(during - before) engine connections")
            for stream in streams { await stream.close() }
            let released = try await eventually(timeout: .seconds(10)) {
                engineConnections(of: server.processIdentifier) <= before
            }
            #expect(released, "ocimand still holds \(engineConnections(of: server.processIdentifier)) engine connections, \(before) before")
            let metrics = try await client.get("/metrics").text
            let abandoned = metrics.split(separator: "\n").first {
                $0.hasPrefix("ociman_http_response_streams_total{") && $0.contains("route=\"/events\"")
                    && $0.contains("outcome=\"abandoned\"")
            }
            #expect(abandoned.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } } == 8, "\(abandoned ?? "no abandoned /events streams")")
        }
    }

    @Test("since, until, container and type filters replay past events and end the stream", arguments: TestEngines.available)
    func replayWithFilters(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, client in
                let since = Date().timeIntervalSince1970 - 1
                let id = try await fixture.startBusybox(["sh", "-c", "exit 7"])
                try await fixture.waitForExit(id)
                let other = try await fixture.startBusybox(["sh", "-c", "exit 0"])
                try await fixture.waitForExit(other)
                let until = Date().timeIntervalSince1970 + 1
                let answer = try await client.get("/events?container=\(id)&type=die&since=\(since)&until=\(until)")
                #expect(answer.status == 200)
                var lines = try answer.lines()
                #expect(lines.last?["type"] as? String == "end", "the stream ends at until: \(lines)")
                lines.removeLast()
                #expect(lines.count == 1, "\(lines)")
                #expect(lines.first?["type"] as? String == "die")
                #expect(lines.first?["id"] as? String == id)
                #expect(lines.first?["exit_code"] as? Int == 7)
            }
        }
    }

    @Test("image tag and removal through ocimand appear as image events", arguments: TestEngines.available)
    func imageEvents(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let reference = "localhost/ociman-events-\(fixture.runID):1"
        try await fixture.withCleanup(images: [reference]) {
            try await withOcimand(engine: engine) { _, client in
                let since = Date().timeIntervalSince1970 - 1
                let source = TestEngines.baseImage.replacingOccurrences(of: "/", with: "%2F")
                #expect(try await client.post("/images/\(source)/tag", json: ["target": reference]).status == 201)
                let encoded = reference.replacingOccurrences(of: "/", with: "%2F")
                #expect(try await client.delete("/images/\(encoded)").status == 204)
                let until = Date().timeIntervalSince1970 + 1
                let answer = try await client.get("/events?type=tag&type=untag&type=delete&since=\(since)&until=\(until)")
                let lines = try answer.lines()
                let tag = try #require(lines.first { $0["type"] as? String == "tag" && $0["name"] as? String == reference })
                // Docker names the untagged image by its id, Podman by the reference.
                let mine = lines.filter { $0["id"] as? String == tag["id"] as? String }
                #expect(mine.contains { $0["type"] as? String == "untag" || $0["type"] as? String == "delete" })
                #expect(mine.allSatisfy { $0["labels"] == nil && $0["image"] == nil })
            }
        }
    }

    @Test("bad filters are a 400 problem", arguments: TestEngines.available)
    func badFilters(engine: String) async throws {
        try await withOcimand(engine: engine) { _, client in
            for query in ["type=exploded", "since=-1", "until=1e300", "since=20&until=10", "label==x", "heartbeat_seconds=0"] {
                let answer = try await client.get("/events?\(query)")
                #expect(answer.status == 400, "\(query): \(answer.text)")
                #expect(answer.header("Content-Type")?.hasPrefix("application/problem+json") == true)
            }
        }
    }
}

/// A streamed ndjson answer, read a line at a time by one task.
final class EventStream: @unchecked Sendable {
    private let connection: HTTPTestConnection
    private var pending: [UInt8] = []

    private init(connection: HTTPTestConnection) { self.connection = connection }

    static func open(_ server: OcimandProcess, _ target: String) async throws -> EventStream {
        let connection = try await HTTPTestConnection.connect(host: server.host, port: server.port)
        try await connection.sendHead("GET", target)
        let head = try await connection.readHead()
        guard head.status == 200 else { throw TestSupportError("GET \(target) answered \(head.status)") }
        return EventStream(connection: connection)
    }

    /// The next line, nil when the stream ended.
    func next(within timeout: Duration) async throws -> [String: Any]? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[..<newline])
                pending.removeFirst(newline + 1)
                return try JSONSerialization.jsonObject(with: line) as? [String: Any]
            }
            guard let chunk = try await connection.readBodyChunk(timeout: timeout) else { return nil }
            pending += chunk.bytes
        }
    }

    func close() async { await connection.close() }
}

/// The engine's own CLI, for changes made outside ocimand.
enum CLI {
    static func run(_ engine: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [engine] + arguments
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestSupportError("\(engine) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus)")
        }
    }
}
