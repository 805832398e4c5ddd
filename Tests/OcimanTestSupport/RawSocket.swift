import Glibc

/// A plain non-blocking client socket for what `HTTPTestConnection` cannot do: send bytes no
/// HTTP client would (NUL, conflicting framing), choose the source address, half-close, and open
/// thousands of idle connections cheaply. Reads poll and sleep, so a test never blocks a thread.
public final class RawSocket: @unchecked Sendable {
    public let descriptor: Int32

    private init(_ descriptor: Int32) { self.descriptor = descriptor }

    deinit { Glibc.close(descriptor) }

    /// Connects over TCP to `host:port` (IPv4), from `source` when given (any 127.x address on loopback).
    public static func connect(host: String = "127.0.0.1", port: Int, from source: String? = nil) throws -> RawSocket {
        let socket = RawSocket(Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        guard socket.descriptor >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        if let source {
            var local = try address(source, port: 0)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw TestSupportError("bind \(source): \(String(cString: strerror(errno)))") }
        }
        var remote = try address(host, port: port)
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSupportError("connect \(host):\(port): \(String(cString: strerror(errno)))") }
        socket.makeNonBlocking()
        return socket
    }

    public static func connect(unixPath: String) throws -> RawSocket {
        let socket = RawSocket(Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        guard socket.descriptor >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
        var remote = sockaddr_un()
        remote.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &remote.sun_path) { buffer in
            for (index, byte) in unixPath.utf8.prefix(buffer.count - 1).enumerated() { buffer[index] = byte }
        }
        let connected = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket.descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw TestSupportError("connect \(unixPath): \(String(cString: strerror(errno)))") }
        socket.makeNonBlocking()
        return socket
    }

    private static func address(_ host: String, port: Int) throws -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw TestSupportError("not an IPv4 address: \(host)") }
        return address
    }

    private func makeNonBlocking() {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    /// Sends all of `bytes` (they fit in an empty socket buffer in every test).
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                guard errno == EAGAIN else { throw TestSupportError("send: \(String(cString: strerror(errno)))") }
                usleep(1000)
                continue
            }
            offset += sent
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Shuts the sending side only: the server sees end-of-file, the client still reads.
    public func shutdownWrite() { _ = shutdown(descriptor, Int32(SHUT_WR)) }

    /// Everything the server sends until it closes the connection or `timeout` passes.
    public func readUntilClose(timeout: Duration) async -> (bytes: [UInt8], closed: Bool) {
        await read(timeout: timeout) { _ in false }
    }

    /// The first response, once it is whole (head and Content-Length body), the server closed, or `timeout` passed.
    public func readResponse(timeout: Duration) async -> RawResponse? {
        RawResponse(await read(timeout: timeout) { RawResponse($0)?.isComplete == true }.bytes)
    }

    private func read(timeout: Duration, until done: ([UInt8]) -> Bool) async -> (bytes: [UInt8], closed: Bool) {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while ContinuousClock.now < deadline, !done(received) {
            let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[..<count]
            } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                return (received, true)
            } else {
                // Waiting in poll (at most 10 ms, then a yield) shows when an answer arrives to the
                // millisecond; the server is another process or runs on libmicrohttpd's threads.
                var ready = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                _ = poll(&ready, 1, 10)
                await Task.yield()
            }
        }
        return (received, false)
    }
}

/// The first response in some received bytes, and what follows it.
public struct RawResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]
    /// Bytes after this response's body: a second answer, which must never come after a refusal.
    public let rest: [UInt8]
    public let isComplete: Bool

    public init?(_ bytes: [UInt8]) {
        guard let end = bytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        let lines = String(decoding: bytes[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let words = lines[0].split(separator: " ")
        guard words.count >= 2, words[0].hasPrefix("HTTP/"), let status = Int(words[1]) else { return nil }
        self.status = status
        headers = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingSpaces())
        }
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
        let bodyStart = end.upperBound
        let available = bytes.count - bodyStart
        isComplete = available >= length
        body = Array(bytes[bodyStart..<(bodyStart + min(length, available))])
        rest = isComplete ? Array(bytes[(bodyStart + length)...]) : []
    }

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

extension String {
    fileprivate func components(separatedBy separator: String) -> [String] {
        split(separator: separator, omittingEmptySubsequences: false).map(String.init)
    }

    fileprivate func trimmingSpaces() -> String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}

/// Raises this process's soft descriptor limit to at least `count` (tests that open thousands of sockets).
public func raiseOpenFileLimit(to count: Int) {
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(count) else { return }
    limit.rlim_cur = min(rlim_t(count), limit.rlim_max)
    _ = setrlimit(resource, &limit)
}
