import Foundation
import Glibc

/// A client that sends a request and then stops reading, with a receive buffer as small as the
/// kernel allows, so nothing but ocimand itself can absorb what it is sent. A blocking socket
/// used from one test at a time: simple enough to trust when measuring the server.
public final class StalledReader: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    private let descriptor: Int32
    private var received: [UInt8] = []

    /// Connects with a tiny `SO_RCVBUF` and sends `request` (a complete HTTP request) whole.
    public init(port: Int, request: [UInt8]) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var size: Int32 = 4096
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            throw Failure(description: "connect: errno \(errno)")
        }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += count
        }
    }

    /// An HTTP/1.1 request with a JSON body.
    public static func request(_ method: String, _ target: String, json: Any? = nil, accept: String? = nil) throws -> [UInt8] {
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if json != nil { head += "Content-Type: application/json\r\n" }
        if let accept { head += "Accept: \(accept)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        return Array(head.utf8) + [UInt8](body)
    }

    /// Reads until the response head is in (the body may have begun).
    public func readHead() throws -> String {
        while true {
            if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
                received.removeSubrange(..<end.upperBound)
                return head
            }
            guard try receiveSome() else { throw Failure(description: "closed before the response head") }
        }
    }

    /// Reads the rest of a chunked body to its end and returns it de-chunked.
    public func readChunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        var offset = 0
        while true {
            // Chunk size line.
            guard let lineEnd = received[offset...].firstRange(of: Array("\r\n".utf8)) else {
                guard try receiveSome() else { throw Failure(description: "closed inside a chunk header") }
                continue
            }
            let sizeText = String(decoding: received[offset..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else {
                throw Failure(description: "bad chunk size \(sizeText.prefix(20))")
            }
            let needed = lineEnd.upperBound + size + 2
            while received.count < needed {
                guard try receiveSome() else { throw Failure(description: "closed inside a chunk") }
            }
            if size == 0 { return body }
            body += received[lineEnd.upperBound..<(lineEnd.upperBound + size)]
            offset = needed
            if offset > 1 << 20 {
                received.removeSubrange(..<offset)
                offset = 0
            }
        }
    }

    private func receiveSome() throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count < 0 { throw Failure(description: "recv: errno \(errno)") }
        received += buffer[..<count]
        return count > 0
    }

    private var closed = false

    public func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(descriptor)
    }

    deinit { close() }
}

/// Resident memory of a process in bytes, from `/proc/PID/status`.
public func residentBytes(of pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
    return line?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
}
