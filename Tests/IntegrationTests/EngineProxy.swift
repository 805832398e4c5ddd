import Foundation
import OcimanTestSupport
import Synchronization

/// A unix-socket relay in front of an engine socket, for fault and disconnect tests: `stop()`
/// makes the engine vanish for whoever uses the relay (connections cut, socket file gone) without
/// touching the engine other tests share, `start()` brings it back on the same path. It also
/// notes the last request line sent on each open connection, so a test can ask the engine side
/// whether a long request (a wait, a followed log) is still there. `freeze()` makes the engine
/// hang (connections stay open, nothing is relayed) and `failNext` answers chosen requests with a
/// canned engine error instead of relaying them.
final class EngineProxy: Sendable {
    let path: String
    let upstream: String

    private struct Link {
        var client: Int32
        var engine: Int32
        /// The request line last sent towards the engine.
        var lastRequest: String?
    }

    private struct State {
        var listener: Int32 = -1
        var links: [Int: Link] = [:]
        var nextID = 0
        var frozen = false
        /// Every request line relayed towards the engine, in order.
        var seen: [String] = []
        var failures: [Failure] = []
    }

    /// Requests whose request line contains `matching` are answered `response` (`count` times).
    private struct Failure {
        var matching: String
        var response: [UInt8]
        var count: Int
    }

    private let state = Mutex(State())

    init(upstream: String) {
        self.upstream = upstream
        path = NSTemporaryDirectory() + "ociman-proxy-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    var endpoint: String { "unix://\(path)" }

    /// A started relay in front of `engine`'s shared socket; `stop()` it when done.
    static func started(for engine: String) throws -> EngineProxy {
        let proxy = EngineProxy(upstream: TestEngines.socket(for: engine))
        try proxy.start()
        return proxy
    }

    /// The environment that points an ocimand for `engine` at this relay.
    func environment(for engine: String) -> [String: String] {
        [engine == "podman" ? "CONTAINER_HOST" : "DOCKER_HOST": endpoint]
    }

    func start() throws {
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw ProxyError("socket: \(errno)") }
        unlink(path)
        var address = Self.address(path)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            close(listener)
            throw ProxyError("bind \(path): \(errno)")
        }
        state.withLock { $0.listener = listener }
        Thread.detachNewThread { [self] in acceptLoop(listener) }
    }

    /// The engine "goes away": no more connections, open ones cut, the socket file removed.
    func stop() {
        // The pumps notice the shutdowns below, then drop their links and close the descriptors.
        let (listener, links) = state.withLock { state in
            defer { state.listener = -1 }
            return (state.listener, Array(state.links.values))
        }
        if listener >= 0 {
            shutdown(listener, Int32(SHUT_RDWR))
            close(listener)
        }
        unlink(path)
        for link in links {
            shutdown(link.client, Int32(SHUT_RDWR))
            shutdown(link.engine, Int32(SHUT_RDWR))
        }
    }

    /// A hung engine: bytes already sent or sent from now on are held, not relayed, until `thaw()`.
    func freeze() { state.withLock { $0.frozen = true } }
    func thaw() { state.withLock { $0.frozen = false } }

    /// Answers the next `count` requests whose request line contains `matching` with `status` and
    /// a JSON body `{"message": message}` (how both engines word errors), without relaying them.
    func failNext(_ count: Int, matching: String, status: Int, message: String) {
        let body = try! JSONSerialization.data(withJSONObject: ["message": message])
        let head = "HTTP/1.1 \(status) Injected\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        state.withLock { $0.failures.append(Failure(matching: matching, response: Array(head.utf8) + Array(body), count: count)) }
    }

    /// Every request line sent towards the engine so far.
    var seenRequests: [String] { state.withLock { $0.seen } }

    /// The last request line of each connection still open (a pooled idle connection shows the
    /// request it served last).
    var openRequests: [String] { state.withLock { $0.links.values.compactMap(\.lastRequest) } }

    private func acceptLoop(_ listener: Int32) {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let engine = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = Self.address(upstream)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(engine, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0 else {
                close(engine)
                close(client)
                continue
            }
            let id: Int? = state.withLock { state in
                guard state.listener == listener else { return nil }
                state.nextID += 1
                state.links[state.nextID] = Link(client: client, engine: engine)
                return state.nextID
            }
            guard let id else {
                close(engine)
                close(client)
                return
            }
            Thread.detachNewThread { [self] in pump(id, from: client, to: engine, towardsEngine: true) }
            Thread.detachNewThread { [self] in pump(id, from: engine, to: client, towardsEngine: false) }
        }
    }

    private func pump(_ id: Int, from source: Int32, to destination: Int32, towardsEngine: Bool) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = read(source, &buffer, buffer.count)
            if count <= 0 { break }
            while state.withLock({ $0.frozen && $0.links[id] != nil }) { usleep(20_000) }
            if towardsEngine {
                let text = String(decoding: buffer[0..<min(count, 512)], as: UTF8.self)
                let firstLine = text.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
                let methods = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD "]
                if methods.contains(where: firstLine.hasPrefix) {
                    state.withLock { state in
                        state.links[id]?.lastRequest = firstLine
                        state.seen.append(firstLine)
                    }
                }
                // Only requests without a body are failed this way (the whole request is in this read).
                let canned: [UInt8]? = state.withLock { state in
                    guard let index = state.failures.firstIndex(where: { $0.count > 0 && firstLine.contains($0.matching) }) else {
                        return nil
                    }
                    state.failures[index].count -= 1
                    return state.failures[index].response
                }
                if let canned {
                    _ = canned.withUnsafeBytes { write(source, $0.baseAddress, $0.count) }
                    continue
                }
            }
            var offset = 0
            while offset < count {
                let written = buffer[offset..<count].withUnsafeBytes { write(destination, $0.baseAddress, $0.count) }
                if written <= 0 { break }
                offset += written
            }
            if offset < count { break }
        }
        // Either side ending ends the link: that is how the engine sees a cancelled request.
        let closeBoth = state.withLock { $0.links.removeValue(forKey: id) != nil }
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
        if closeBoth {
            // The other pump wakes from its read and finds the link gone; give it a moment before closing.
            Thread.sleep(forTimeInterval: 0.2)
            close(source)
            close(destination)
        }
    }

    private static func address(_ path: String) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8).prefix($0.count - 1)) }
        return address
    }

    struct ProxyError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
