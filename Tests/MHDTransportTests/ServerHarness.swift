import Foundation
import HTTPTypes
import MHDTransport
import OcimanTestSupport
import OpenAPIRuntime
import Synchronization

/// A real MHDServer on an ephemeral loopback port (or a unix socket) with toy handlers.
struct TestServer: Sendable {
    let server: MHDServer
    let address: ListenAddress

    var port: Int {
        if case .tcp(_, let port) = address { return Int(port) }
        return -1
    }

    static func problem(_ status: Int, _ detail: String) -> (String, [UInt8]) {
        let object: [String: Any] = ["type": "about:blank", "title": "HTTP \(status)", "status": status, "detail": detail]
        return ("application/problem+json", Array(try! JSONSerialization.data(withJSONObject: object)))
    }

    static func start(
        listen: ListenAddress = .tcp(host: "127.0.0.1", port: 0),
        configure: (inout MHDServerConfiguration) -> Void = { _ in },
        routes: [(HTTPRequest.Method, String, MHDServer.Handler)]
    ) throws -> TestServer {
        var configuration = MHDServerConfiguration(listen: listen, renderProblem: problem)
        configuration.threadPoolSize = 2
        configure(&configuration)
        let server = MHDServer(configuration: configuration)
        for (method, path, handler) in routes { try server.register(handler, method: method, path: path) }
        return TestServer(server: server, address: try server.start())
    }

    func connect() async throws -> HTTPTestConnection {
        switch address {
        case .tcp(let host, let port): try await HTTPTestConnection.connect(host: host, port: Int(port))
        case .unix(let path): try await HTTPTestConnection.connect(unixPath: path)
        case .inherited: fatalError("not used in tests")
        }
    }

    func stop() async { await server.shutdown(gracePeriod: .seconds(2)) }
}

/// Starts a server, runs `body`, and shuts the server down whatever happened.
func withServer<T>(
    listen: ListenAddress = .tcp(host: "127.0.0.1", port: 0),
    configure: (inout MHDServerConfiguration) -> Void = { _ in },
    routes: [(HTTPRequest.Method, String, MHDServer.Handler)],
    _ body: (TestServer) async throws -> T
) async throws -> T {
    let server = try TestServer.start(listen: listen, configure: configure, routes: routes)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// Opens a connection, runs `body`, closes it.
func withConnection<T>(_ server: TestServer, _ body: (HTTPTestConnection) async throws -> T) async throws -> T {
    let connection = try await server.connect()
    do {
        let result = try await body(connection)
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw error
    }
}

func text(_ string: String, status: HTTPResponse.Status = .ok) -> (HTTPResponse, HTTPBody?) {
    var response = HTTPResponse(status: status)
    response.headerFields[.contentType] = "text/plain"
    return (response, HTTPBody(string))
}

/// A moment something happened, recorded from a handler and awaited by the test.
final class Event: Sendable {
    private let instant = Mutex<ContinuousClock.Instant?>(nil)

    func fire() { instant.withLock { $0 = $0 ?? .now } }
    var firedAt: ContinuousClock.Instant? { instant.withLock { $0 } }

    /// Polls until fired or `timeout`; the time it fired, or nil.
    func wait(timeout: Duration) async -> ContinuousClock.Instant? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let firedAt { return firedAt }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return firedAt
    }
}

final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
