import Foundation
import HTTPTypes
import MHDTransport
import OcimanTestSupport
import OpenAPIRuntime
import Testing

/// End-to-end tests of the transport: a real libmicrohttpd daemon, real sockets, a raw client.
/// Serialized because several tests measure timing, which two cores under parallel load blur.
@Suite(.serialized, .timeLimit(.minutes(1))) struct MHDServerTests {
    /// Echoes the route template's parameters and the raw target.
    static let echoParameters: MHDServer.Handler = { request, _, metadata in
        let parameters = metadata.pathParameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        return text(parameters.joined(separator: "&") + " " + (request.path ?? ""))
    }

    static func named(_ name: String) -> MHDServer.Handler {
        { _, _, _ in text(name) }
    }

    static let echoBody: MHDServer.Handler = { _, body, _ in
        var bytes: [UInt8] = []
        if let body { bytes = try await [UInt8](collecting: body, upTo: 1 << 30) }
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "application/octet-stream"
        return (response, HTTPBody(bytes))
    }

    // MARK: - Routing

    @Test func routesOnTheRawPathWithParameters() async throws {
        let routes: [(HTTPRequest.Method, String, MHDServer.Handler)] = [
            (.get, "/images/{reference}", Self.echoParameters),
            (.post, "/images/{reference}/tag", Self.echoParameters),
        ]
        try await withServer(routes: routes) { server in
            try await withConnection(server) { connection in
                var response = try await connection.request("GET", "/images/a%2Fb:1")
                #expect(response.status == 200)
                #expect(response.text == "reference=a%2Fb:1 /images/a%2Fb:1")

                response = try await connection.request("POST", "/images/localhost%3A5000%2Fx%3Av2/tag?force=1", body: [])
                #expect(response.status == 200)
                #expect(response.text == "reference=localhost%3A5000%2Fx%3Av2 /images/localhost%3A5000%2Fx%3Av2/tag?force=1")
            }
        }
    }

    @Test func literalBeatsParameterAndTrailingSlashMatches() async throws {
        let routes: [(HTTPRequest.Method, String, MHDServer.Handler)] = [
            (.get, "/images/{reference}", Self.named("parameter")),
            (.get, "/images/json", Self.named("literal")),
            (.get, "/health", Self.named("health")),
        ]
        try await withServer(routes: routes) { server in
            try await withConnection(server) { connection async throws in
                #expect(try await connection.request("GET", "/images/json").text == "literal")
                #expect(try await connection.request("GET", "/images/json/").text == "literal")
                #expect(try await connection.request("GET", "/images/jsonx").text == "parameter")
                #expect(try await connection.request("GET", "/health/").text == "health")
                #expect(try await connection.request("GET", "/health?verbose=1").text == "health")
            }
        }
    }

    @Test func unknownRouteIsProblemJSON404() async throws {
        try await withServer(routes: [(.get, "/health", Self.named("health"))]) { server in
            try await withConnection(server) { connection in
                let response = try await connection.request("GET", "/nope/here")
                #expect(response.status == 404)
                #expect(response.header("Content-Type") == "application/problem+json")
                let problem = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
                #expect(problem["status"] as? Int == 404)
                #expect((problem["detail"] as? String)?.contains("/nope/here") == true)
                // Transport errors do not cost the client its connection.
                #expect(response.head.keepAlive)
                #expect(try await connection.request("GET", "/health").status == 200)
            }
        }
    }

    @Test func wrongMethodIs405WithAllow() async throws {
        let routes: [(HTTPRequest.Method, String, MHDServer.Handler)] = [
            (.get, "/things", Self.named("list")),
            (.post, "/things", Self.named("create")),
        ]
        try await withServer(routes: routes) { server in
            try await withConnection(server) { connection in
                let response = try await connection.request("DELETE", "/things")
                #expect(response.status == 405)
                #expect(response.header("Allow") == "GET, POST")
                #expect(response.header("Content-Type") == "application/problem+json")
                let problem = try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
                #expect(problem["status"] as? Int == 405)
            }
        }
    }

    // MARK: - Connections

    @Test func keepAliveAcrossThreeSequentialRequests() async throws {
        let calls = Counter()
        let handler: MHDServer.Handler = { _, _, _ in
            calls.increment()
            return text("call")
        }
        try await withServer(routes: [(.get, "/ping", handler), (.post, "/echo", Self.echoBody)]) { server in
            try await withConnection(server) { connection in
                for index in 0..<3 {
                    let response =
                        index == 1
                        ? try await connection.request("POST", "/echo", body: Array("body".utf8))
                        : try await connection.request("GET", "/ping")
                    #expect(response.status == 200)
                    #expect(response.head.keepAlive, "request \(index) announced a close")
                    #expect(await !connection.serverClosed, "closed after request \(index)")
                }
                #expect(calls.count == 2)
                // Still open a moment later: the next request could reuse it.
                #expect(await !connection.waitForServerClose(timeout: .milliseconds(300)))
            }
        }
    }

    // MARK: - Request bodies

    @Test func bodyArrivingInSlowPiecesIsDeliveredWhole() async throws {
        let body = (0..<3000).map { UInt8(truncatingIfNeeded: $0) }
        try await withServer(configure: { $0.bodyLimit = { _, _ in 4096 } }, routes: [(.post, "/echo", Self.echoBody)]) {
            server in
            try await withConnection(server) { connection in
                for chunked in [false, true] {
                    try await connection.sendInPieces(
                        "POST", "/echo", body: body, pieces: 3, delay: .milliseconds(100), chunked: chunked)
                    let response = try await connection.readResponse()
                    #expect(response.status == 200)
                    #expect(response.body == body, "chunked: \(chunked)")
                }
            }
        }
    }

    @Test func handlerAnsweringBeforeReadingTheBodyIsStillAnswered() async throws {
        // 8 MiB is far past the request-body buffer, so the connection is paused for
        // backpressure while nobody reads: the transport must drop the rest and still answer.
        let body = [UInt8](repeating: 7, count: 8 << 20)
        let refuse: MHDServer.Handler = { _, _, _ in text("refused", status: .badRequest) }
        try await withServer(configure: { $0.bodyLimit = { _, _ in 64 << 20 } }, routes: [(.post, "/refuse", refuse)]) {
            server in
            try await withConnection(server) { connection in
                try await connection.send("POST", "/refuse", body: body)
                let response = try await connection.readResponse(timeout: .seconds(10))
                #expect(response.status == 400)
                #expect(response.text == "refused")
                // The connection survives for the next request.
                let again = try await connection.request("POST", "/refuse", body: [1, 2, 3])
                #expect(again.status == 400)
            }
        }
    }

    @Test func declaredOversizeBodyIs413WithoutReadingIt() async throws {
        let calls = Counter()
        let handler: MHDServer.Handler = { request, body, metadata in
            calls.increment()
            return try await Self.echoBody(request, body, metadata)
        }
        try await withServer(configure: { $0.bodyLimit = { _, _ in 1024 } }, routes: [(.post, "/upload", handler)]) {
            server in
            try await withConnection(server) { connection in
                let started = ContinuousClock.now
                try await connection.sendHead("POST", "/upload", headers: [("Content-Length", String(10 << 20))])
                // Only a sliver of the 10 MiB is ever sent; the server may hang up before it arrives.
                try? await connection.write([UInt8](repeating: 0x61, count: 1024))
                let response = try await connection.readResponse(timeout: .seconds(5))
                let elapsed = ContinuousClock.now - started
                #expect(response.status == 413)
                #expect(response.header("Content-Type") == "application/problem+json")
                #expect(elapsed < .milliseconds(500), "413 took \(elapsed)")
                #expect(calls.count == 0)
                // The unread body makes the connection unusable, so the server must close it.
                #expect(await connection.waitForServerClose(timeout: .seconds(2)))
            }
        }
    }

    @Test func declaredOversizeBodyIs413BeforeAnyBodyByte() async throws {
        try await withServer(configure: { $0.bodyLimit = { _, _ in 1024 } }, routes: [(.post, "/upload", Self.echoBody)]) {
            server in
            try await withConnection(server) { connection in
                // What curl does for large uploads: wait for 100 Continue (or an early answer).
                try await connection.sendHead(
                    "POST", "/upload", headers: [("Content-Length", String(10 << 20)), ("Expect", "100-continue")])
                let head = try await connection.readHead(timeout: .seconds(3))
                #expect(head.status == 413)
            }
        }
    }

    @Test func chunkedBodyOverTheCapIs413() async throws {
        let sawTooLarge = Event()
        let handler: MHDServer.Handler = { request, body, metadata in
            do {
                return try await Self.echoBody(request, body, metadata)
            } catch {
                sawTooLarge.fire()
                throw error
            }
        }
        try await withServer(configure: { $0.bodyLimit = { _, _ in 1024 } }, routes: [(.post, "/upload", handler)]) {
            server in
            try await withConnection(server) { connection in
                let started = ContinuousClock.now
                try await connection.sendHead("POST", "/upload", headers: [("Transfer-Encoding", "chunked")])
                // 8 × 512 bytes against a 1 KiB cap. libmicrohttpd 0.9.75 can answer only once the
                // body has ended, so the server drops the excess and answers then.
                for _ in 0..<8 {
                    try await connection.writeChunk([UInt8](repeating: 0x62, count: 512))
                    try await Task.sleep(for: .milliseconds(20))
                }
                try await connection.finishChunkedBody()
                let response = try await connection.readResponse(timeout: .seconds(5))
                #expect(response.status == 413)
                #expect(response.header("Content-Type") == "application/problem+json")
                #expect(ContinuousClock.now - started < .seconds(2))
                // The handler's body iteration failed instead of seeing a silently cut body.
                #expect(await sawTooLarge.wait(timeout: .seconds(2)) != nil)
            }
        }
    }

    @Test func endlessChunkedBodyOverTheCapLosesTheConnection() async throws {
        try await withServer(configure: { $0.bodyLimit = { _, _ in 1024 } }, routes: [(.post, "/upload", Self.echoBody)]) {
            server in
            try await withConnection(server) { connection in
                try await connection.sendHead("POST", "/upload", headers: [("Transfer-Encoding", "chunked")])
                // Far past what the server is willing to discard: it must hang up, not read forever.
                let piece = [UInt8](repeating: 0x63, count: 64 << 10)
                for _ in 0..<(32 << 20) / piece.count {
                    do { try await connection.writeChunk(piece) } catch { break }
                }
                #expect(await connection.waitForServerClose(timeout: .seconds(5)))
            }
        }
    }

    @Test func unknownRouteWithABodyIsStillAnswered() async throws {
        try await withServer(routes: [(.get, "/health", Self.named("health"))]) { server in
            try await withConnection(server) { connection in
                let response = try await connection.request("POST", "/nope", body: Array(repeating: 0x64, count: 2000))
                #expect(response.status == 404)
                let wrongMethod = try await connection.request("POST", "/health", body: Array("x".utf8))
                #expect(wrongMethod.status == 405)
                #expect(wrongMethod.header("Allow") == "GET")
            }
        }
    }

    // MARK: - Streamed responses

    @Test func streamedChunksArriveWhileTheHandlerIsStillProducing() async throws {
        let handler: MHDServer.Handler = { _, _, _ in
            let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPBody.ByteChunk.self)
            let producer = Task {
                continuation.yield(ArraySlice("first\n".utf8))
                try? await Task.sleep(for: .milliseconds(300))
                continuation.yield(ArraySlice("second\n".utf8))
                continuation.finish()
            }
            continuation.onTermination = { _ in producer.cancel() }
            var response = HTTPResponse(status: .ok)
            response.headerFields[.contentType] = "application/x-ndjson"
            return (response, HTTPBody(stream, length: .unknown))
        }
        try await withServer(routes: [(.get, "/stream", handler)]) { server in
            try await withConnection(server) { connection in
                try await connection.send("GET", "/stream")
                let head = try await connection.readHead()
                #expect(head.status == 200)
                #expect(head.isChunked)
                let first = try #require(try await connection.readBodyChunk())
                let second = try #require(try await connection.readBodyChunk())
                #expect(try await connection.readBodyChunk() == nil)
                #expect(String(decoding: first.bytes, as: UTF8.self) == "first\n")
                #expect(String(decoding: second.bytes, as: UTF8.self) == "second\n")
                let gap = second.arrivedAt - first.arrivedAt
                #expect(gap > .milliseconds(200), "first chunk arrived only \(gap) before the second")
                // The connection survives a streamed response.
                #expect(head.keepAlive)
                #expect(await !connection.serverClosed)
            }
        }
    }

    @Test func clientLeavingMidStreamStopsTheProducer() async throws {
        let terminated = Event()
        let handler: MHDServer.Handler = { _, _, _ in
            let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPBody.ByteChunk.self)
            let producer = Task {
                // Endless, like a followed log: only the client leaving ends it.
                while !Task.isCancelled {
                    if case .terminated = continuation.yield(ArraySlice(repeating: 0x6C, count: 1024)) { break }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            continuation.onTermination = { _ in
                terminated.fire()
                producer.cancel()
            }
            return (HTTPResponse(status: .ok), HTTPBody(stream, length: .unknown))
        }
        try await withServer(routes: [(.get, "/follow", handler)]) { server in
            let connection = try await server.connect()
            try await connection.send("GET", "/follow")
            #expect(try await connection.readHead().status == 200)
            #expect(try await connection.readBodyChunk() != nil)
            let closedAt = ContinuousClock.now
            await connection.close()
            let firedAt = try #require(await terminated.wait(timeout: .seconds(3)), "the producer never saw the client leave")
            #expect(firedAt - closedAt < .seconds(1), "took \(firedAt - closedAt)")
            #expect(await Self.waitForNoRequests(server.server))
        }
    }

    @Test func waitingHandlerIsCancelledWhenTheClientLeaves() async throws {
        let started = Event()
        let cancelled = Event()
        let finished = Event()
        let handler: MHDServer.Handler = { _, _, _ in
            started.fire()
            do {
                try await Task.sleep(for: .seconds(2))
            } catch {
                cancelled.fire()
                throw error
            }
            finished.fire()
            return text("too late")
        }
        try await withServer(routes: [(.post, "/wait", handler)]) { server in
            let connection = try await server.connect()
            try await connection.send("POST", "/wait", body: [])
            #expect(await started.wait(timeout: .seconds(2)) != nil)
            try await Task.sleep(for: .milliseconds(100))
            let closedAt = ContinuousClock.now
            await connection.close()
            let cancelledAt = try #require(await cancelled.wait(timeout: .seconds(3)), "the handler was not cancelled")
            #expect(cancelledAt - closedAt < .seconds(1), "took \(cancelledAt - closedAt)")
            #expect(finished.firedAt == nil)
            #expect(await Self.waitForNoRequests(server.server))
        }
    }

    @Test(arguments: [false, true])
    func largeStreamedResponseArrivesIntact(knownLength: Bool) async throws {
        let chunkSize = 1 << 20
        let chunkCount = 20
        let pattern = (0..<chunkSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) }
        // Each chunk is the pattern stamped with its index, so loss, duplication or reordering shows.
        @Sendable func chunk(_ index: Int) -> ArraySlice<UInt8> {
            var bytes = pattern[...]
            bytes[0] = UInt8(index)
            bytes[chunkSize / 2] = UInt8(index)
            return bytes
        }
        let handler: MHDServer.Handler = { _, _, _ in
            let (stream, continuation) = AsyncThrowingStream.makeStream(of: HTTPBody.ByteChunk.self)
            let producer = Task {
                for index in 0..<chunkCount {
                    if case .terminated = continuation.yield(chunk(index)) { return }
                    await Task.yield()
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in producer.cancel() }
            let length: HTTPBody.Length = knownLength ? .known(Int64(chunkSize * chunkCount)) : .unknown
            return (HTTPResponse(status: .ok), HTTPBody(stream, length: length))
        }
        try await withServer(routes: [(.get, "/big", handler)]) { server in
            try await withConnection(server) { connection in
                let response = try await connection.request("GET", "/big", timeout: .seconds(60))
                #expect(response.status == 200)
                let body = response.body
                #expect(body.count == chunkSize * chunkCount)
                if body.count == chunkSize * chunkCount {
                    for index in 0..<chunkCount {
                        let piece = body[(index * chunkSize)..<((index + 1) * chunkSize)]
                        #expect(piece.elementsEqual(chunk(index)), "chunk \(index) differs")
                    }
                }
                // And the connection is still usable.
                #expect(await !connection.serverClosed)
            }
        }
    }

    // MARK: - Unix socket and shutdown

    @Test func unixSocketIsOwnerOnly() async throws {
        let path = NSTemporaryDirectory() + "ocimand-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        try await withServer(listen: .unix(path: path), routes: [(.get, "/health", Self.named("ok"))]) { server in
            #expect(server.address == .unix(path: path))
            var status = stat()
            #expect(lstat(path, &status) == 0)
            #expect(status.st_mode & S_IFMT == S_IFSOCK)
            #expect(status.st_mode & 0o777 == 0o600)
            try await withConnection(server) { connection in
                let response = try await connection.request("GET", "/health")
                #expect(response.status == 200)
                #expect(response.text == "ok")
            }
        }
        // Shutdown removes the socket file.
        var status = stat()
        #expect(lstat(path, &status) != 0)
    }

    @Test func gracefulShutdownFinishesTheInFlightRequest() async throws {
        let handler: MHDServer.Handler = { _, _, _ in
            try await Task.sleep(for: .milliseconds(500))
            return text("finished")
        }
        let server = try TestServer.start(routes: [(.get, "/slow", handler)])
        let connection = try await server.connect()
        try await connection.send("GET", "/slow")
        try await Task.sleep(for: .milliseconds(100))
        #expect(server.server.inFlightRequestCount == 1)
        let shutdownStarted = ContinuousClock.now
        let shutdown = Task { await server.server.shutdown(gracePeriod: .seconds(5)) }
        let response = try await connection.readResponse(timeout: .seconds(5))
        #expect(response.status == 200)
        #expect(response.text == "finished")
        await shutdown.value
        let took = ContinuousClock.now - shutdownStarted
        // The request was in flight when shutdown began (asserted above) and still got its full
        // answer, so shutdown waited for it; how long that took depends on the machine's load.
        #expect(took < .seconds(3))
        #expect(server.server.inFlightRequestCount == 0)
        // The kept-alive connection is closed and the port no longer accepts.
        #expect(await connection.waitForServerClose(timeout: .seconds(2)))
        await connection.close()
        await #expect(throws: HTTPTestConnection.ClientError.self) {
            _ = try await HTTPTestConnection.connect(port: server.port, timeout: .seconds(2))
        }
    }

    @Test func shutdownCancelsWhatOutlivesTheGracePeriod() async throws {
        let cancelled = Event()
        let handler: MHDServer.Handler = { _, _, _ in
            do {
                try await Task.sleep(for: .seconds(20))
            } catch {
                cancelled.fire()
                throw error
            }
            return text("never")
        }
        let server = try TestServer.start(routes: [(.get, "/forever", handler)])
        let connection = try await server.connect()
        try await connection.send("GET", "/forever")
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        await server.server.shutdown(gracePeriod: .milliseconds(300))
        let took = ContinuousClock.now - started
        #expect(took < .seconds(2), "shutdown took \(took)")
        #expect(await cancelled.wait(timeout: .seconds(2)) != nil)
        // The client gets no answer, just the end of the connection.
        await #expect(throws: HTTPTestConnection.ClientError.self) { _ = try await connection.readResponse(timeout: .seconds(2)) }
        await connection.close()
    }

    // MARK: - Helpers

    /// libmicrohttpd completes a request on its own thread shortly after the socket event.
    static func waitForNoRequests(_ server: MHDServer, timeout: Duration = .seconds(2)) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while server.inFlightRequestCount > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return server.inFlightRequestCount == 0
    }
}
