import Foundation
import OcimanTestSupport
import Testing

/// Issue 11, transport level, against a real ocimand: clients that are slow, greedy, send bytes no
/// HTTP client should, half-close or cut a stream. After each, the process is alive and serving.
@Suite("Hostile and broken clients", .serialized, .timeLimit(.minutes(5)))
struct HostileClients {
    static let image = TestEngines.baseImage

    static func head(_ lines: String...) -> [UInt8] { Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) }

    /// The process is alive and answers.
    static func expectServing(_ server: OcimandProcess, _ client: OcimandClient) async throws {
        #expect(processExists(server.processIdentifier), "ocimand died:\n\(server.log)")
        #expect(try await client.get("/health").status == 200)
    }

    /// A running busybox container of the fixture's, by id.
    static func runContainer(_ client: OcimandClient, _ fixture: EngineFixture) async throws -> String {
        let run = try await client.post(
            "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["sleep", "300"]])
        #expect(run.status == 201, "\(run.text)")
        return try #require(try run.object()["id"] as? String)
    }

    // MARK: - Slow heads

    @Test("a client dripping its request line gets 408 and is closed at --header-timeout")
    func slowRequestLine() async throws {
        let engine = try #require(TestEngines.available.first)
        try await withOcimand(engine: engine, arguments: ["--header-timeout", "2"]) { server, client in
            let dripper = try RawSocket.connect(port: server.port)
            let started = ContinuousClock.now
            try dripper.send("GET /")
            let drip = Task {
                for byte in "health HTTP/1.1\r\nHost: localhost".utf8 {
                    try? await Task.sleep(for: .seconds(1))
                    guard (try? dripper.send([byte])) != nil else { return }
                }
            }
            let (received, closed) = await dripper.readUntilClose(timeout: .seconds(6))
            drip.cancel()
            let elapsed = ContinuousClock.now - started
            let answer = try #require(RawResponse(received), "no answer within 6 s")
            #expect(answer.status == 408)
            #expect(answer.header("Content-Type") == "application/problem+json")
            #expect(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any] != nil)
            #expect(closed)
            #expect(elapsed >= .milliseconds(1900) && elapsed < .milliseconds(3500), "answered after \(elapsed)")
            try await Self.expectServing(server, client)
        }
    }

    // MARK: - Connection caps

    @Test("2,000 idle sockets from one address: a 503 each past the cap, and another client's /health within 50 ms")
    func idleSocketFlood() async throws {
        let engine = try #require(TestEngines.available.first)
        raiseOpenFileLimit(to: 4096)
        try await withOcimand(engine: engine) { server, client in
            var idle: [RawSocket] = []
            defer { idle.removeAll() }
            for _ in 0..<2000 { idle.append(try RawSocket.connect(port: server.port, from: "127.0.0.1")) }
            // The first 64 (the default per-client cap) are open and waiting; every later one was
            // answered 503 and closed at once, without sending a byte.
            for socket in idle.suffix(20) {
                let (received, closed) = await socket.readUntilClose(timeout: .seconds(2))
                let answer = RawResponse(received)
                #expect(answer?.status == 503)
                #expect(answer?.header("Content-Type") == "application/problem+json")
                #expect(closed)
            }
            #expect(await idle[0].readUntilClose(timeout: .milliseconds(200)).bytes.isEmpty)

            var slowest = Duration.zero
            var timings: [Duration] = []
            for _ in 0..<5 {
                let started = ContinuousClock.now
                let other = try RawSocket.connect(port: server.port, from: "127.0.0.2")
                try other.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
                let answer = await other.readResponse(timeout: .seconds(2))
                let took = ContinuousClock.now - started
                #expect(answer?.status == 200)
                slowest = max(slowest, took)
                timings.append(took)
            }
            #expect(slowest < .milliseconds(50), "slowest /health from 127.0.0.2 took \(slowest)")
            print("idle-socket flood: /health from 127.0.0.2 took \(timings)")
            // (From 127.0.0.2: this test's own address, 127.0.0.1, is at its cap.)
            let scrape = try RawSocket.connect(port: server.port, from: "127.0.0.2")
            try scrape.send(Self.head("GET /metrics HTTP/1.1", "Host: localhost"))
            let metrics = await scrape.readResponse(timeout: .seconds(5))?.text ?? ""
            let open = metrics.split(separator: "\n").first { $0.hasPrefix("ociman_http_connections_open ") }
            #expect(open.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 <= 70 } == true, "\(open ?? "none")")
            idle.removeAll()
            // Closing them frees the address's slots.
            #expect(await eventually(timeout: .seconds(5)) { (try? await client.get("/health").status) == 200 })
            try await Self.expectServing(server, client)
        }
    }

    // MARK: - Framing

    /// A POST whose framing hides a second request that would force-remove the container.
    static func smuggling(_ framing: String, container id: String) -> [UInt8] {
        let smuggled = "DELETE /containers/\(id)?force=true HTTP/1.1\r\nHost: localhost\r\n\r\n"
        switch framing {
        case "CL.CL":
            return head("POST /hash HTTP/1.1", "Host: localhost", "Content-Type: application/json", "Content-Length: 2",
                "Content-Length: \(2 + smuggled.utf8.count)") + Array("{}".utf8) + Array(smuggled.utf8)
        default:  // CL.TE
            return head("POST /hash HTTP/1.1", "Host: localhost", "Content-Type: application/json", "Content-Length: 60",
                "Transfer-Encoding: chunked") + Array("2\r\n{}\r\n0\r\n\r\n".utf8) + Array(smuggled.utf8)
        }
    }

    @Test(
        "a smuggled request is never answered or acted on; a NUL in the target is refused, not truncated",
        arguments: TestEngines.available)
    func ambiguousRequests(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, client in
                let id = try await Self.runContainer(client, fixture)
                var attacks = ["CL.CL", "CL.TE"].map { ($0, Self.smuggling($0, container: id)) }
                // Acted on as DELETE /containers/<id> before: the NUL truncated the target and the query was dropped.
                attacks.append(("NUL", Array("DELETE /containers/\(id)\0/anything?force=true HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)))
                for (name, bytes) in attacks {
                    let socket = try RawSocket.connect(port: server.port)
                    try socket.send(bytes)
                    let (received, closed) = await socket.readUntilClose(timeout: .seconds(5))
                    let answer = try #require(RawResponse(received), "\(name): no answer")
                    #expect(answer.status == 400, "\(name): \(answer.text)")
                    #expect(answer.header("Content-Type") == "application/problem+json", "\(name)")
                    #expect(answer.rest.isEmpty, "\(name): a second answer: \(String(decoding: answer.rest, as: UTF8.self))")
                    #expect(closed, "\(name)")
                }
                let inspect = try await client.get("/containers/\(id)")
                #expect(inspect.status == 200)
                #expect((try inspect.object()["state"] as? [String: Any])?["running"] as? Bool == true)
                try await Self.expectServing(server, client)
            }
        }
    }

    /// Heads libmicrohttpd 0.9.75 would answer itself, with an HTML body, before any callback of
    /// ocimand runs: the connection gate refuses them first, each with one problem document.
    @Test("heads libmicrohttpd cannot parse are one problem document each, then a close")
    func unparsableHeads() async throws {
        let engine = try #require(TestEngines.available.first)
        try await withOcimand(engine: engine) { server, client in
            let cases: [(String, [UInt8], Int)] = [
                ("request line of the method only", Array("GET\r\n\r\n".utf8), 400),
                ("request line without a version", Self.head("GET /health"), 400),
                ("two spaces in the request line", Self.head("GET  /health HTTP/1.1", "Host: localhost"), 400),
                ("garbage bytes", [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x0D, 0x0A, 0x0D, 0x0A], 400),
                ("header line without a colon", Self.head("GET /health HTTP/1.1", "Host: localhost", "no colon"), 400),
                ("header line with an empty name", Self.head("GET /health HTTP/1.1", "Host: localhost", ": value"), 400),
                ("space before the colon", Self.head("GET /health HTTP/1.1", "Host : localhost"), 400),
                ("Content-Length not a number", Self.head("GET /health HTTP/1.1", "Host: localhost", "Content-Length: abc"), 400),
                ("Content-Length negative", Self.head("POST /hash HTTP/1.1", "Host: localhost", "Content-Length: -1"), 400),
                ("Content-Length beyond 64 bits", Self.head("POST /hash HTTP/1.1", "Host: localhost", "Content-Length: 99999999999999999999999"), 400),
                ("HTTP/2.0 request line", Self.head("GET /health HTTP/2.0", "Host: localhost"), 505),
                ("HTTP/1.2 request line", Self.head("GET /health HTTP/1.2", "Host: localhost"), 505),
                ("HTTP/0.9 request line", Self.head("GET /health HTTP/0.9"), 505),
                ("target bigger than the connection's pool", Self.head("GET /health?x=" + String(repeating: "a", count: 100 * 1024) + " HTTP/1.1", "Host: localhost"), 414),
                ("head bigger than the connection's pool", Self.head("GET /health HTTP/1.1", "Host: localhost", "X-Big: " + String(repeating: "a", count: 100 * 1024)), 431),
                (
                    "many headers",
                    Array(("GET /health HTTP/1.1\r\nHost: localhost\r\n" + (0..<4000).map { "X-\($0): y\r\n" }.joined() + "\r\n").utf8), 431
                ),
                (
                    "bad chunk size",
                    Self.head("POST /hash HTTP/1.1", "Host: localhost", "Content-Type: application/json", "Transfer-Encoding: chunked")
                        + Array("zz\r\n{}\r\n0\r\n\r\n".utf8), 400
                ),
            ]
            for (name, bytes, status) in cases {
                let socket = try RawSocket.connect(port: server.port)
                try socket.send(bytes)
                let (received, closed) = await socket.readUntilClose(timeout: .seconds(3))
                let answer = try #require(RawResponse(received), "\(name): \(String(decoding: received.prefix(80), as: UTF8.self))")
                #expect(answer.status == status, "\(name): \(answer.text)")
                #expect(answer.header("Content-Type") == "application/problem+json", "\(name)")
                let document = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
                #expect(document?["status"] as? Int == status, "\(name): \(answer.text)")
                #expect((document?["detail"] as? String)?.isEmpty == false, "\(name): \(answer.text)")
                #expect(answer.rest.isEmpty, "\(name): a second answer")
                #expect(closed, "\(name)")
            }
            try await Self.expectServing(server, client)
        }
    }

    /// The gap left (README, "Hostile and broken clients"): a later request on a kept-alive
    /// connection is parsed by libmicrohttpd alone, which answers what it cannot parse itself
    /// (in HTML); still one answer, then a close, and the server is unharmed.
    @Test("a malformed request after the first on a connection is answered once and closed")
    func malformedKeptAliveRequest() async throws {
        let engine = try #require(TestEngines.available.first)
        try await withOcimand(engine: engine) { server, client in
            let socket = try RawSocket.connect(port: server.port)
            try socket.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
            #expect(await socket.readResponse(timeout: .seconds(3))?.status == 200)
            try socket.send(Self.head("GET /health HTTP/2.0", "Host: localhost"))
            let (received, closed) = await socket.readUntilClose(timeout: .seconds(3))
            let answer = try #require(RawResponse(received))
            #expect(answer.status == 505)
            #expect(answer.rest.isEmpty)
            #expect(closed)
            try await Self.expectServing(server, client)
        }
    }

    // MARK: - Half-closed clients and cut streams

    @Test("a client that half-closes after its request gets the whole answer", arguments: TestEngines.available)
    func halfClosedClient(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, client in
                let id = try await Self.runContainer(client, fixture)
                // Longer than several disconnect checks: the answer comes well after the client's FIN.
                let body = Array(#"{"command": ["sh", "-c", "sleep 1; echo half-closed"]}"#.utf8)
                let socket = try RawSocket.connect(port: server.port)
                try socket.send(
                    Self.head(
                        "POST /containers/\(id)/exec HTTP/1.1", "Host: localhost", "Content-Type: application/json",
                        "Content-Length: \(body.count)") + body)
                socket.shutdownWrite()
                let (received, closed) = await socket.readUntilClose(timeout: .seconds(15))
                let text = String(decoding: received, as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 200 "), "\(text)\n\(server.log)")
                #expect(text.contains("half-closed\\n"), "\(text)")
                #expect(text.contains("\"exit_code\":0"), "\(text)")
                #expect(closed)
                try await Self.expectServing(server, client)
            }
        }
    }

    @Test("a followed log the client cuts is logged and counted abandoned", arguments: TestEngines.available)
    func cutStreamIsAbandoned(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, client in
                let id = try await Self.runContainer(client, fixture)
                let requestID = "itest-cut-\(engine)"
                let following = try await HTTPTestConnection.connect(port: server.port)
                try await following.send("GET", "/containers/\(id)/logs?follow=true", headers: [("X-Request-Id", requestID)])
                #expect(try await following.readHead(timeout: .seconds(10)).status == 200)
                await following.close()
                let line = { server.log.split(separator: "\n").first { $0.contains("request_id=\(requestID)") } }
                #expect(await eventually(timeout: .seconds(5)) { line() != nil }, "\(server.log)")
                #expect(line()?.contains("stream=abandoned") == true, "\(line() ?? "")")
                let metrics = try await client.get("/metrics").text
                #expect(metrics.contains(#"ociman_http_response_streams_total{route="/containers/{id}/logs",outcome="abandoned"} 1"#), "\(metrics)")
                #expect(!metrics.contains(#"route="/containers/{id}/logs",outcome="completed""#))
                try await Self.expectServing(server, client)
            }
        }
    }
}
