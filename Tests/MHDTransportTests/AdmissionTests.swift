import Foundation
import HTTPTypes
import MHDTransport
import OcimanTestSupport
import OpenAPIRuntime
import Testing

/// The transport's guards against unwanted and slow clients: the `admit` hook (answered before a
/// handler runs or a body byte is read), the request deadline, and header/URL size caps.
/// (Slow request lines, connection caps and malformed framing: `HostileClientTests`.)
@Suite(.serialized, .timeLimit(.minutes(1))) struct AdmissionTests {
    /// Refuses requests carrying `X-Refuse`, with its value as the status.
    static func refuseMarked(_ request: HTTPRequest, _ template: String, _ hasBody: Bool) -> (status: Int, detail: String)? {
        guard let value = request.headerFields[HTTPField.Name("X-Refuse")!], let status = Int(value) else { return nil }
        return (status, "refused on \(template) (body: \(hasBody))")
    }

    /// Counts requests served with their whole body.
    static func counting(_ calls: Counter) -> MHDServer.Handler {
        { _, body, _ in
            if let body { _ = try await [UInt8](collecting: body, upTo: 1 << 30) }
            calls.increment()
            return text("served")
        }
    }

    @Test func refusedRequestWithoutBodyIsAProblemAndKeepsTheConnection() async throws {
        let calls = Counter()
        try await withServer(
            configure: { $0.admit = Self.refuseMarked }, routes: [(.get, "/things/{id}", Self.counting(calls))]
        ) { server in
            try await withConnection(server) { connection in
                let refused = try await connection.request("GET", "/things/7", headers: [("X-Refuse", "403")])
                #expect(refused.status == 403)
                #expect(refused.header("Content-Type") == "application/problem+json")
                #expect(refused.text.contains("(body: false)"))
                // The same connection serves the next request: nothing was left unread.
                let served = try await connection.request("GET", "/things/7")
                #expect(served.status == 200)
                #expect(calls.count == 1)
            }
        }
    }

    @Test(arguments: [false, true])
    func refusedRequestWithBodyIsAnsweredBeforeTheBody(chunked: Bool) async throws {
        let calls = Counter()
        try await withServer(
            configure: { $0.admit = Self.refuseMarked }, routes: [(.post, "/upload", Self.counting(calls))]
        ) { server in
            try await withConnection(server) { connection in
                let framing = chunked ? ("Transfer-Encoding", "chunked") : ("Content-Length", String(1 << 30))
                // Not one body byte is sent: the answer must not wait for any.
                try await connection.sendHead("POST", "/upload", headers: [framing, ("X-Refuse", "415")])
                let response = try await connection.readResponse(timeout: .seconds(3))
                #expect(response.status == 415)
                #expect(response.text.contains("(body: true)"))
                #expect(calls.count == 0)
                #expect(await connection.waitForServerClose(timeout: .seconds(2)))
            }
        }
    }

    @Test func admittedRequestsReachTheHandler() async throws {
        let calls = Counter()
        try await withServer(
            configure: { $0.admit = Self.refuseMarked }, routes: [(.post, "/upload", Self.counting(calls))]
        ) { server in
            try await withConnection(server) { connection in
                let response = try await connection.request("POST", "/upload", body: Array("{}".utf8))
                #expect(response.status == 200)
                #expect(calls.count == 1)
            }
        }
    }

    // MARK: - Request deadline

    @Test func clientDrippingItsBodyIsCutOffWhileOthersAreServed() async throws {
        let calls = Counter()
        try await withServer(
            configure: {
                $0.requestTimeout = .seconds(1)
                $0.threadPoolSize = 1
            },
            routes: [(.post, "/upload", Self.counting(calls)), (.get, "/health", MHDServerTests.named("ok"))]
        ) { server in
            let dripper = try await server.connect()
            try await dripper.sendHead("POST", "/upload", headers: [("Content-Length", "100")])
            let started = ContinuousClock.now
            // One byte every 200 ms never trips the idle timeout (it counts inactivity).
            let drip = Task {
                for _ in 0..<100 {
                    do { try await dripper.write([0x20]) } catch { return }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            try await withConnection(server) { other in
                for _ in 0..<5 {
                    let response = try await other.request("GET", "/health", timeout: .seconds(2))
                    #expect(response.status == 200)
                }
            }
            // Answered 408 (a problem document), then closed.
            let answer = try await dripper.readResponse(timeout: .seconds(4))
            #expect(answer.status == 408)
            #expect(answer.header("Content-Type") == "application/problem+json")
            #expect(await dripper.waitForServerClose(timeout: .seconds(1)))
            let cutAfter = ContinuousClock.now - started
            #expect(cutAfter >= .milliseconds(900) && cutAfter < .seconds(3), "cut after \(cutAfter)")
            drip.cancel()
            await dripper.close()
            // The handler saw its body fail, never a complete (truncated) body.
            #expect(calls.count == 0)
            #expect(await MHDServerTests.waitForNoRequests(server.server))
        }
    }

    @Test func clientDrippingItsHeadIsCutOff() async throws {
        try await withServer(configure: { $0.requestTimeout = .seconds(1) }, routes: [(.get, "/health", MHDServerTests.named("ok"))]) {
            server in
            let dripper = try await server.connect()
            try await dripper.write(Array("GET /health HTTP/1.1\r\nHost: localhost\r\n".utf8))
            let drip = Task {
                for index in 0..<100 {
                    do { try await dripper.write(Array("X-\(index): y\r\n".utf8)) } catch { return }
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            #expect(try await dripper.readResponse(timeout: .seconds(4)).status == 408)
            #expect(await dripper.waitForServerClose(timeout: .seconds(1)))
            drip.cancel()
            await dripper.close()
        }
    }

    @Test func bodyLargerThanTheBufferIsNotUnderTheDeadline() async throws {
        // A tar upload may be paused by the handler's backpressure: only idle time counts against it.
        let body = [UInt8](repeating: 0x61, count: 3000)
        try await withServer(
            configure: {
                $0.requestTimeout = .milliseconds(500)
                $0.requestBodyBufferBytes = 1024
                $0.bodyLimit = { _, _ in 1 << 20 }
            },
            routes: [(.post, "/echo", MHDServerTests.echoBody)]
        ) { server in
            try await withConnection(server) { connection in
                try await connection.sendInPieces("POST", "/echo", body: body, pieces: 4, delay: .milliseconds(300))
                let response = try await connection.readResponse(timeout: .seconds(5))
                #expect(response.status == 200)
                #expect(response.body == body)
            }
        }
    }

    @Test func slowButCompleteRequestWithinTheDeadlineIsServed() async throws {
        let body = [UInt8](repeating: 0x62, count: 300)
        try await withServer(configure: { $0.requestTimeout = .seconds(3) }, routes: [(.post, "/echo", MHDServerTests.echoBody)]) {
            server in
            try await withConnection(server) { connection in
                try await connection.sendInPieces("POST", "/echo", body: body, pieces: 3, delay: .milliseconds(300))
                let response = try await connection.readResponse(timeout: .seconds(5))
                #expect(response.status == 200)
                #expect(response.body == body)
                // The deadline is per request: a kept-alive connection idle past it stays open.
                try await Task.sleep(for: .seconds(3.5))
                #expect(await !connection.serverClosed)
                #expect(try await connection.request("POST", "/echo", body: body).status == 200)
            }
        }
    }

    // MARK: - Head and URL size caps

    @Test func oversizeHeaderAndURLAreRefusedNotHung() async throws {
        let big = String(repeating: "a", count: 100 * 1024)
        try await withServer(routes: [(.get, "/health", MHDServerTests.named("ok"))]) { server in
            // Too big even for libmicrohttpd's memory pool (connectionMemoryLimit): the gate
            // refuses them before libmicrohttpd (which would answer in HTML) reads a byte.
            try await withConnection(server) { connection in
                let response = try await connection.request("GET", "/health", headers: [("X-Big", big)], timeout: .seconds(3))
                #expect(response.status == 431)
                #expect(response.header("Content-Type") == "application/problem+json")
                #expect(await connection.waitForServerClose(timeout: .seconds(2)))
            }
            try await withConnection(server) { connection in
                let response = try await connection.request("GET", "/health?x=" + big, timeout: .seconds(3))
                #expect(response.status == 414)
                #expect(response.header("Content-Type") == "application/problem+json")
                #expect(await connection.waitForServerClose(timeout: .seconds(2)))
            }
            // Headers that fit are fine.
            try await withConnection(server) { connection in
                let response = try await connection.request("GET", "/health", headers: [("X-Big", String(big.prefix(16 * 1024)))])
                #expect(response.status == 200)
            }
        }
    }
}
