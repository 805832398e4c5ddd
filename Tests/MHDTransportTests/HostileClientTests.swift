import Foundation
import HTTPTypes
import MHDTransport
import OcimanTestSupport
import OpenAPIRuntime
import Testing

/// Issue 11 at the transport: clients that are slow, greedy, half-closed or send what no HTTP
/// client should. Every refusal is one problem document followed by a close.
@Suite(.serialized, .timeLimit(.minutes(2))) struct HostileClientTests {
    /// One exchange on a fresh raw connection: everything the server sends until it closes.
    static func exchange(_ server: TestServer, _ bytes: [UInt8], timeout: Duration = .seconds(3)) async throws
        -> (response: RawResponse?, closed: Bool)
    {
        let socket = try RawSocket.connect(port: server.port)
        try socket.send(bytes)
        let (received, closed) = await socket.readUntilClose(timeout: timeout)
        return (RawResponse(received), closed)
    }

    static func head(_ lines: String...) -> [UInt8] { head(lines) }
    static func head(_ lines: [String]) -> [UInt8] { Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) }

    /// One problem document: JSON with the status it was sent with and a detail.
    static func expectProblem(_ answer: RawResponse, _ name: String) {
        #expect(answer.header("Content-Type") == "application/problem+json", "\(name)")
        #expect(answer.header("Connection") == "close", "\(name)")
        let document = try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]
        #expect(document?["status"] as? Int == answer.status, "\(name): \(answer.text)")
        #expect((document?["detail"] as? String)?.isEmpty == false, "\(name): \(answer.text)")
    }

    // MARK: - Slow heads

    @Test func requestLineDrippedByteByByteGets408AndClose() async throws {
        try await withServer(
            configure: { $0.headerTimeout = .seconds(1) }, routes: [(.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            let dripper = try RawSocket.connect(port: server.port)
            let started = ContinuousClock.now
            try dripper.send("GET /")
            // Before libmicrohttpd has a request line: only the connection's own deadline can see this client.
            let drip = Task {
                for byte in "health HTTP/1.1".utf8 {
                    try? await Task.sleep(for: .milliseconds(250))
                    guard (try? dripper.send([byte])) != nil else { return }
                }
            }
            // Others are served meanwhile.
            try await withConnection(server) { other in
                let response = try await other.request("GET", "/health")
                #expect(response.status == 200)
            }
            let (received, closed) = await dripper.readUntilClose(timeout: .seconds(4))
            drip.cancel()
            let elapsed = ContinuousClock.now - started
            let response = try #require(RawResponse(received))
            #expect(response.status == 408)
            #expect(response.header("Content-Type") == "application/problem+json")
            #expect(response.header("Connection") == "close")
            #expect(response.rest.isEmpty)
            #expect(closed)
            #expect(elapsed >= .milliseconds(900) && elapsed < .seconds(2), "answered after \(elapsed)")
        }
    }

    @Test func nextHeadOnAKeptAliveConnectionHasIdlePlusHeaderTime() async throws {
        try await withServer(
            configure: {
                $0.headerTimeout = .seconds(1)
                $0.idleTimeoutSeconds = 1
            },
            routes: [(.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            let socket = try RawSocket.connect(port: server.port)
            try socket.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
            #expect(await socket.readResponse(timeout: .seconds(2))?.status == 200)
            let answered = ContinuousClock.now
            // A byte every 300 ms never trips the idle timeout, and the head never ends.
            let drip = Task {
                for byte in Array("GET /health HTTP/1.1\r\nX-Slow: ".utf8) + [UInt8](repeating: 0x61, count: 100) {
                    guard (try? socket.send([byte])) != nil else { return }
                    try? await Task.sleep(for: .milliseconds(300))
                }
            }
            let (received, closed) = await socket.readUntilClose(timeout: .seconds(5))
            drip.cancel()
            let elapsed = ContinuousClock.now - answered
            #expect(RawResponse(received)?.status == 408)
            #expect(closed)
            #expect(elapsed >= .milliseconds(1900) && elapsed < .seconds(3), "answered after \(elapsed)")
        }
    }

    // MARK: - Connection caps

    @Test func pastTheGlobalCapA503AtOnceAndTheSlotComesBack() async throws {
        try await withServer(
            configure: {
                $0.connectionLimit = 3
                $0.perAddressConnectionLimit = 0
            },
            routes: [(.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            var open: [RawSocket] = []
            for _ in 0..<3 {
                let socket = try RawSocket.connect(port: server.port)
                try socket.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
                #expect(await socket.readResponse(timeout: .seconds(2))?.status == 200)
                open.append(socket)
            }
            #expect(server.server.openConnectionCount == 3)
            // The fourth is answered without sending a byte, and promptly.
            let started = ContinuousClock.now
            let fourth = try RawSocket.connect(port: server.port)
            let (received, closed) = await fourth.readUntilClose(timeout: .seconds(2))
            #expect(ContinuousClock.now - started < .milliseconds(500))
            let refused = try #require(RawResponse(received))
            #expect(refused.status == 503)
            #expect(refused.header("Content-Type") == "application/problem+json")
            #expect(refused.text.contains("limit"))
            #expect(closed)
            // Closing one frees its slot.
            open.removeLast()
            let freed = ContinuousClock.now.advanced(by: .seconds(2))
            while server.server.openConnectionCount > 2, ContinuousClock.now < freed { try await Task.sleep(for: .milliseconds(20)) }
            #expect(server.server.openConnectionCount == 2)
            let fifth = try RawSocket.connect(port: server.port)
            try fifth.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
            #expect(await fifth.readResponse(timeout: .seconds(2))?.status == 200)
        }
    }

    @Test func pastThePerClientCapOnlyThatClientIsRefused() async throws {
        try await withServer(
            configure: {
                $0.connectionLimit = 100
                $0.perAddressConnectionLimit = 2
            },
            routes: [(.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            let first = try RawSocket.connect(port: server.port, from: "127.0.0.1")
            let second = try RawSocket.connect(port: server.port, from: "127.0.0.1")
            let third = try RawSocket.connect(port: server.port, from: "127.0.0.1")
            try third.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
            let refused = await third.readUntilClose(timeout: .seconds(2))
            #expect(RawResponse(refused.bytes)?.status == 503)
            #expect(RawResponse(refused.bytes)?.rest.isEmpty == true, "the request sent after connecting is not answered too")
            #expect(refused.closed)
            // Another address is its own client.
            let other = try RawSocket.connect(port: server.port, from: "127.0.0.2")
            try other.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
            #expect(await other.readResponse(timeout: .seconds(2))?.status == 200)
            for socket in [first, second] { try socket.send(Self.head("GET /health HTTP/1.1", "Host: localhost")) }
            #expect(await first.readResponse(timeout: .seconds(2))?.status == 200)
            #expect(await second.readResponse(timeout: .seconds(2))?.status == 200)
        }
    }

    // MARK: - Framing and bytes no client should send

    /// Each is refused on the first look at its head, answered once and closed; the bytes after
    /// it, a second request, are never read.
    static let refused: [(String, [UInt8], Int)] = [
        ("two equal Content-Length", head("POST /upload HTTP/1.1", "Host: localhost", "Content-Length: 0", "Content-Length: 0"), 400),
        ("two different Content-Length", head("POST /upload HTTP/1.1", "Host: localhost", "Content-Length: 0", "Content-Length: 45"), 400),
        (
            "Content-Length with Transfer-Encoding",
            head("POST /upload HTTP/1.1", "Host: localhost", "Content-Length: 5", "Transfer-Encoding: chunked")
                + Array("0\r\n\r\n".utf8), 400
        ),
        ("unknown transfer coding", head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: gzip"), 501),
        ("stacked transfer codings", head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: gzip, chunked"), 501),
        (
            "chunked twice", head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
            501
        ),
        ("chunked with trailing space", head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked "), 400),
        ("Transfer-Encoding in HTTP/1.0", head("POST /upload HTTP/1.0", "Transfer-Encoding: chunked"), 400),
        ("HTTP/1.1 without Host", head("GET /health HTTP/1.1"), 400),
        ("two Host", head("GET /health HTTP/1.1", "Host: localhost", "Host: localhost"), 400),
        ("NUL in the target", Array("DELETE /things/x\0/anything?force=true HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), 400),
        ("control byte in the target", Array("GET /hea\u{1}lth HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), 400),
        ("space in the target", head("GET /hea lth HTTP/1.1", "Host: localhost"), 400),
        ("two spaces after the method", head("GET  /health HTTP/1.1", "Host: localhost"), 400),
        ("NUL in a header value", Array("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n\r\n".utf8), 400),
        ("NUL before CRLF", Array("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\0\r\n\r\n".utf8), 400),
        ("control byte in a header value", head("GET /health HTTP/1.1", "Host: localhost", "X-A: a\u{7F}b"), 400),
        ("space in a header name", head("GET /health HTTP/1.1", "Host: localhost", "X A: b"), 400),
        ("folded header line", head("GET /health HTTP/1.1", "Host: localhost", "X-A: a", " b"), 400),
        ("target over the cap", head("GET /health?q=" + String(repeating: "a", count: 20 * 1024) + " HTTP/1.1", "Host: localhost"), 414),
        ("head over the cap", head("GET /health HTTP/1.1", "Host: localhost", "X-Big: " + String(repeating: "a", count: 40 * 1024)), 431),
        // What libmicrohttpd would answer itself, in HTML, were it not for the gate (`HeadSyntax`).
        ("method only", Array("GET\r\n\r\n".utf8), 400),
        ("no version", Array("GET /health\r\n\r\n".utf8), 400),
        ("garbage bytes", [0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03, 0x0D, 0x0A, 0x0D, 0x0A], 400),
        ("bare CR line ends", Array("GET /health HTTP/1.1\rHost: localhost\r\r".utf8), 400),
        ("header line without a colon", head("GET /health HTTP/1.1", "Host: localhost", "NoColon"), 400),
        ("empty header name", head("GET /health HTTP/1.1", "Host: localhost", ": value"), 400),
        ("space before the colon", head("GET /health HTTP/1.1", "Host : localhost"), 400),
        ("Content-Length abc", head("POST /upload HTTP/1.1", "Host: localhost", "Content-Length: abc"), 400),
        ("Content-Length -1", head("POST /upload HTTP/1.1", "Host: localhost", "Content-Length: -1"), 400),
        ("Content-Length overflowing", head("POST /upload HTTP/1.1", "Host: localhost", "Content-Length: 99999999999999999999999"), 400),
        ("HTTP/2.0", head("GET /health HTTP/2.0", "Host: localhost"), 505),
        ("HTTP/1.2", head("GET /health HTTP/1.2", "Host: localhost"), 505),
        ("HTTP/0.9", head("GET /health HTTP/0.9"), 505),
        ("target over libmicrohttpd's pool", head("GET /health?q=" + String(repeating: "a", count: 100 * 1024) + " HTTP/1.1", "Host: localhost"), 414),
        ("head over libmicrohttpd's pool", head("GET /health HTTP/1.1", "Host: localhost", "X-Big: " + String(repeating: "a", count: 100 * 1024)), 431),
        (
            "bad chunk size",
            head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked") + Array("zz\r\n{}\r\n0\r\n\r\n".utf8), 400
        ),
        (
            "chunk longer than its size",
            head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: chunked") + Array("1\r\n{}\r\n0\r\n\r\n".utf8), 400
        ),
        (
            "many headers",
            head(["GET /health HTTP/1.1", "Host: localhost"] + (0..<4000).map { "X-\($0): y" }), 431
        ),
    ]

    @Test(arguments: refused.indices)
    func refusedAndClosedWithoutReadingFurther(_ index: Int) async throws {
        let (name, bytes, status) = Self.refused[index]
        let calls = Counter()
        let smuggled = Counter()
        try await withServer(
            routes: [
                (.post, "/upload", AdmissionTests.counting(calls)),
                (.get, "/health", AdmissionTests.counting(calls)),
                (.delete, "/things/{id}", AdmissionTests.counting(calls)),
                (.get, "/smuggled", AdmissionTests.counting(smuggled)),
            ]
        ) { server in
            let second = Array("GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
            let (response, closed) = try await Self.exchange(server, bytes + second)
            let answer = try #require(response, "\(name): no answer")
            #expect(answer.status == status, "\(name): \(answer.text)")
            Self.expectProblem(answer, name)
            #expect(answer.rest.isEmpty, "\(name): a second answer followed: \(String(decoding: answer.rest, as: UTF8.self))")
            #expect(closed, "\(name): connection kept")
            #expect(calls.count == 0, "\(name): acted on")
            #expect(smuggled.count == 0, "\(name): the smuggled request was served")
        }
    }

    /// Unusual but well-formed: served, and the connection kept.
    static let accepted: [(String, [UInt8])] = [
        ("bare LF line ends", Array("GET /health HTTP/1.1\nHost: localhost\n\n".utf8)),
        ("HTTP/1.0 without Host", head("GET /health HTTP/1.0", "Connection: keep-alive")),
        ("empty and blank header values", head("GET /health HTTP/1.1", "Host: localhost", "X-Empty:", "X-Blank:   ")),
        ("tab and obs-text in a value", Array("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\tb\u{E9}\r\n\r\n".utf8)),
        ("query and escapes", head("GET /health?x=1&y=%20%00 HTTP/1.1", "host: localhost")),
        ("one chunked body", head("POST /upload HTTP/1.1", "Host: localhost", "Transfer-Encoding: Chunked") + Array("2\r\n{}\r\n0\r\n\r\n".utf8)),
    ]

    @Test(arguments: accepted.indices)
    func wellFormedOddRequestsAreServed(_ index: Int) async throws {
        let (name, bytes) = Self.accepted[index]
        let calls = Counter()
        try await withServer(
            routes: [(.post, "/upload", AdmissionTests.counting(calls)), (.get, "/health", AdmissionTests.counting(calls))]
        ) { server in
            let socket = try RawSocket.connect(port: server.port)
            try socket.send(bytes)
            let response = await socket.readResponse(timeout: .seconds(2))
            #expect(response?.status == 200, "\(name): \(response?.text ?? "no answer")")
            #expect(calls.count == 1, "\(name)")
        }
    }

    // MARK: - What the gate lets through

    @Test func pipelinedRequestsOnAFreshConnectionAreAllServed() async throws {
        let calls = Counter()
        try await withServer(routes: [(.get, "/health", AdmissionTests.counting(calls))]) { server in
            let socket = try RawSocket.connect(port: server.port)
            let one = Self.head("GET /health HTTP/1.1", "Host: localhost")
            try socket.send(one + one + one)
            var received: [UInt8] = []
            let deadline = ContinuousClock.now.advanced(by: .seconds(3))
            while calls.count < 3 || Self.responses(in: received).count < 3, ContinuousClock.now < deadline {
                let (bytes, _) = await socket.readUntilClose(timeout: .milliseconds(50))
                received += bytes
            }
            #expect(Self.responses(in: received).map(\.status) == [200, 200, 200])
            #expect(calls.count == 3)
        }
    }

    /// Every response in `bytes`, in order.
    static func responses(in bytes: [UInt8]) -> [RawResponse] {
        var result: [RawResponse] = []
        var rest = bytes
        while let response = RawResponse(rest), response.isComplete {
            result.append(response)
            rest = response.rest
        }
        return result
    }

    /// The first head arriving in many small segments: each is peeked anew, none is lost.
    @Test(arguments: [false, true])
    func headArrivingInPiecesIsServed(unixSocket: Bool) async throws {
        let path = NSTemporaryDirectory() + "ociman-gate-\(UUID().uuidString).sock"
        let listen: ListenAddress = unixSocket ? .unix(path: path) : .tcp(host: "127.0.0.1", port: 0)
        try await withServer(listen: listen, routes: [(.post, "/echo", MHDServerTests.echoBody)]) { server in
            let socket = try unixSocket ? RawSocket.connect(unixPath: path) : RawSocket.connect(port: server.port)
            let request = Self.head("POST /echo HTTP/1.1", "Host: localhost", "Content-Length: 5") + Array("hello".utf8)
            for byte in request {
                try socket.send([byte])
                try await Task.sleep(for: .milliseconds(2))
            }
            let response = await socket.readResponse(timeout: .seconds(3))
            #expect(response?.status == 200)
            #expect(response?.text == "hello")
            // The connection is kept, and the next request on it is libmicrohttpd's alone.
            try socket.send(Self.head("POST /echo HTTP/1.1", "Host: localhost", "Content-Length: 2") + Array("ok".utf8))
            #expect(await socket.readResponse(timeout: .seconds(3))?.text == "ok")
        }
    }

    /// IPv6 clients pass the gate too, and are counted per address like IPv4 ones.
    @Test func ipv6ClientsAreGatedAndCapped() async throws {
        try await withServer(
            listen: .tcp(host: "::1", port: 0), configure: { $0.perAddressConnectionLimit = 1 },
            routes: [(.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            let first = try await HTTPTestConnection.connect(host: "::1", port: server.port)
            #expect(try await first.request("GET", "/health").status == 200)
            let second = try await HTTPTestConnection.connect(host: "::1", port: server.port)
            // Answered at accept, before it sends a byte (sending could meet the closed socket).
            #expect(try await second.readResponse(timeout: .seconds(2)).status == 503)
            await second.close()
            await first.close()
        }
    }

    @Test func malformedHeadOnAUnixSocketIsAProblem() async throws {
        let path = NSTemporaryDirectory() + "ociman-gate-\(UUID().uuidString).sock"
        try await withServer(listen: .unix(path: path), routes: [(.get, "/health", MHDServerTests.named("ok"))]) { server in
            let socket = try RawSocket.connect(unixPath: path)
            try socket.send(Array("GET /health HTTP/2.0\r\nHost: localhost\r\n\r\n".utf8))
            let (received, closed) = await socket.readUntilClose(timeout: .seconds(3))
            let answer = try #require(RawResponse(received))
            #expect(answer.status == 505)
            Self.expectProblem(answer, "HTTP/2.0 on a unix socket")
            #expect(answer.rest.isEmpty)
            #expect(closed)
        }
    }

    /// A client that connects and leaves, or leaves half-way through its head, costs nothing:
    /// its slot is free again at once.
    @Test func clientsLeavingBeforeTheirHeadIsInFreeTheirSlot() async throws {
        try await withServer(
            configure: {
                $0.connectionLimit = 2
                $0.perAddressConnectionLimit = 0
            },
            routes: [(.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            for round in 0..<5 {
                var silent: RawSocket? = try RawSocket.connect(port: server.port)
                var partial: RawSocket? = try RawSocket.connect(port: server.port)
                try partial?.send("GET /health HTTP/1.1\r\nHo")
                try await Task.sleep(for: .milliseconds(50))
                #expect(server.server.openConnectionCount == 2, "round \(round)")
                silent = nil
                partial?.shutdownWrite()
                let freed = ContinuousClock.now.advanced(by: .seconds(2))
                while server.server.openConnectionCount > 0, ContinuousClock.now < freed { try await Task.sleep(for: .milliseconds(10)) }
                #expect(server.server.openConnectionCount == 0, "round \(round)")
                partial = nil
                _ = silent
            }
            let socket = try RawSocket.connect(port: server.port)
            try socket.send(Self.head("GET /health HTTP/1.1", "Host: localhost"))
            #expect(await socket.readResponse(timeout: .seconds(2))?.status == 200)
        }
    }

    /// During the grace the listener is closed: a new client is refused by the kernel at once.
    @Test func shutdownRefusesNewClientsAtOnceDuringTheGrace() async throws {
        let release = Event()
        let handler: MHDServer.Handler = { _, _, _ in
            while release.firedAt == nil { try await Task.sleep(for: .milliseconds(20)) }
            return text("done")
        }
        let server = try TestServer.start(routes: [(.get, "/slow", handler)])
        let busy = try RawSocket.connect(port: server.port)
        try busy.send(Self.head("GET /slow HTTP/1.1", "Host: localhost"))
        let arrived = ContinuousClock.now.advanced(by: .seconds(2))
        while server.server.inFlightRequestCount == 0, ContinuousClock.now < arrived { try await Task.sleep(for: .milliseconds(10)) }
        let shutdown = Task { await server.server.shutdown(gracePeriod: .seconds(5)) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(throws: (any Error).self) { _ = try RawSocket.connect(port: server.port) }
        release.fire()
        #expect(await busy.readResponse(timeout: .seconds(3))?.text == "done")
        await shutdown.value
    }

    // MARK: - Half-closed clients

    /// A handler that takes longer than several disconnect checks.
    static func slow(_ cancelled: Event) -> MHDServer.Handler {
        { _, _, _ in
            do {
                try await Task.sleep(for: .milliseconds(800))
            } catch {
                cancelled.fire()
                throw error
            }
            return text("slow answer")
        }
    }

    @Test(arguments: [false, true])
    func halfClosedClientGetsItsWholeAnswer(unixSocket: Bool) async throws {
        let cancelled = Event()
        let path = NSTemporaryDirectory() + "ociman-halfclose-\(UUID().uuidString).sock"
        let listen: ListenAddress = unixSocket ? .unix(path: path) : .tcp(host: "127.0.0.1", port: 0)
        try await withServer(listen: listen, routes: [(.post, "/slow", Self.slow(cancelled))]) { server in
            let socket = try unixSocket ? RawSocket.connect(unixPath: path) : RawSocket.connect(port: server.port)
            try socket.send(Self.head("POST /slow HTTP/1.1", "Host: localhost", "Content-Length: 2") + Array("{}".utf8))
            socket.shutdownWrite()
            let (received, closed) = await socket.readUntilClose(timeout: .seconds(3))
            let response = try #require(RawResponse(received))
            #expect(response.status == 200)
            #expect(response.text == "slow answer")
            #expect(closed, "the connection ends after the answer: no more requests can come")
            #expect(cancelled.firedAt == nil)
        }
    }

    /// The FIN arrives while the connection is suspended waiting for the answer: on resume,
    /// libmicrohttpd must not read it as the client leaving.
    @Test(arguments: [false, true])
    func clientHalfClosingWhileTheHandlerWorksGetsItsAnswer(unixSocket: Bool) async throws {
        let started = Event()
        let cancelled = Event()
        let handler: MHDServer.Handler = { request, body, metadata in
            started.fire()
            return try await Self.slow(cancelled)(request, body, metadata)
        }
        let path = NSTemporaryDirectory() + "ociman-halfclose-\(UUID().uuidString).sock"
        let listen: ListenAddress = unixSocket ? .unix(path: path) : .tcp(host: "127.0.0.1", port: 0)
        try await withServer(listen: listen, routes: [(.post, "/slow", handler)]) { server in
            let socket = try unixSocket ? RawSocket.connect(unixPath: path) : RawSocket.connect(port: server.port)
            try socket.send(Self.head("POST /slow HTTP/1.1", "Host: localhost", "Content-Length: 2") + Array("{}".utf8))
            #expect(await started.wait(timeout: .seconds(2)) != nil)
            try await Task.sleep(for: .milliseconds(300))
            socket.shutdownWrite()
            let (received, closed) = await socket.readUntilClose(timeout: .seconds(3))
            #expect(RawResponse(received)?.text == "slow answer", "\(String(decoding: received, as: UTF8.self))")
            #expect(closed)
            #expect(cancelled.firedAt == nil)
        }
    }

    @Test func clientClosedOnAUnixSocketCancelsTheHandler() async throws {
        let cancelled = Event()
        let path = NSTemporaryDirectory() + "ociman-close-\(UUID().uuidString).sock"
        try await withServer(listen: .unix(path: path), routes: [(.post, "/slow", Self.slow(cancelled))]) { _ in
            let connection = try await HTTPTestConnection.connect(unixPath: path)
            try await connection.send("POST", "/slow", body: [])
            try await Task.sleep(for: .milliseconds(100))
            let closedAt = ContinuousClock.now
            await connection.close()
            let cancelledAt = try #require(await cancelled.wait(timeout: .seconds(2)), "the handler was not cancelled")
            #expect(cancelledAt - closedAt < .milliseconds(600), "took \(cancelledAt - closedAt)")
        }
    }
}
