import ArgumentParser
import Foundation
import Glibc
import MHDTransport

/// `ocimand healthcheck`: asks a running ocimand for `GET /health` (or `/ready`) and exits 0 when it
/// answers 200, 1 otherwise. For container HEALTHCHECKs and exec probes, where images carry no curl.
struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Exit 0 when the ocimand at the listen address answers GET /health (or /ready) with 200, else 1.",
        discussion: """
            Takes the server's options and environment (--listen/OCIMAN_LISTEN, the token), so inside a \
            container it needs no arguments. A wildcard listen address (0.0.0.0, ::) is probed on loopback.
            """
    )

    /// The server's own options (`--listen`, ...), so the probe goes where the server listens.
    @ParentCommand var server: Ocimand

    @Option(help: "/health (the process serves) or /ready (and its engine answers).")
    var path: ProbePath = .health

    @Option(help: "Seconds to wait for the answer.")
    var timeout: Int = 5

    enum ProbePath: String, ExpressibleByArgument, CaseIterable {
        case health = "/health"
        case ready = "/ready"
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        do {
            let settings = try Settings(command: server, environment: environment)
            // The server's own resolution of every option (--listen, --token-file, the environment),
            // so the probe goes where the server listens with the token the server checks.
            let status = try HealthProbe.status(
                of: settings.listen, path: path.rawValue, token: settings.token, timeoutSeconds: max(1, timeout))
            guard status == 200 else {
                FileHandle.standardError.write(Data("unhealthy: GET \(path.rawValue) answered \(status)\n".utf8))
                throw ExitCode(1)
            }
            print("healthy")
        } catch let exit as ExitCode {
            throw exit
        } catch {
            FileHandle.standardError.write(Data("unhealthy: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// One HTTP/1.1 GET over a blocking socket: the healthcheck must not need an HTTP client library.
enum HealthProbe {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func status(of address: ListenAddress, path: String, token: String?, timeoutSeconds: Int) throws -> Int {
        let socket = try connect(address, timeoutSeconds: timeoutSeconds)
        defer { close(socket) }
        var request = "GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        try sendAll(Array(request.utf8), on: socket)
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        // The status line is all that matters; stop once it is in.
        while !response.contains(UInt8(ascii: "\n")) {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count < 0 && errno == EINTR { continue }
            if count < 0 { throw Failure(description: "no answer: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            response.append(contentsOf: buffer[0..<count])
        }
        let statusLine = String(decoding: response.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw Failure(description: "not an HTTP answer: \"\(statusLine)\"")
        }
        return status
    }

    private static func connect(_ address: ListenAddress, timeoutSeconds: Int) throws -> Int32 {
        switch address {
        case .inherited:
            throw Failure(description: "an inherited socket has no address to probe: pass --listen")
        case .unix(let path):
            let socket = try open(family: AF_UNIX, timeoutSeconds: timeoutSeconds)
            var storage = sockaddr_un()
            storage.sun_family = sa_family_t(AF_UNIX)
            let capacity = MemoryLayout.size(ofValue: storage.sun_path)
            guard path.utf8.count < capacity else {
                close(socket)
                throw Failure(description: "unix socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &storage.sun_path) { raw in
                raw.copyBytes(from: path.utf8)
                raw[path.utf8.count] = 0
            }
            let result = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard result == 0 else {
                let reason = String(cString: strerror(errno))
                close(socket)
                throw Failure(description: "cannot connect to unix:\(path): \(reason)")
            }
            return socket
        case .tcp(let host, let port):
            // A server listening on every address is reachable on loopback.
            let target = host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "::1" : host
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var found: UnsafeMutablePointer<addrinfo>?
            let lookup = getaddrinfo(target, String(port), &hints, &found)
            guard lookup == 0, let first = found else {
                throw Failure(description: "cannot resolve \(target): \(String(cString: gai_strerror(lookup)))")
            }
            defer { freeaddrinfo(found) }
            var lastError = "no address"
            var candidate: UnsafeMutablePointer<addrinfo>? = first
            while let info = candidate {
                candidate = info.pointee.ai_next
                guard let socket = try? open(family: info.pointee.ai_family, timeoutSeconds: timeoutSeconds) else { continue }
                if Glibc.connect(socket, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return socket }
                lastError = String(cString: strerror(errno))
                close(socket)
            }
            throw Failure(description: "cannot connect to \(address): \(lastError)")
        }
    }

    /// A blocking socket whose connect, send and receive each give up after the timeout.
    private static func open(family: Int32, timeoutSeconds: Int) throws -> Int32 {
        let socket = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(socket, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        return socket
    }

    private static func sendAll(_ bytes: [UInt8], on socket: Int32) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            offset += sent
        }
    }
}
