import Glibc

/// Where the server listens. Parsed from `HOST:PORT`, `[IPv6]:PORT` or `unix:PATH`.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: UInt16)
    case unix(path: String)
    /// A socket handed over already listening (systemd socket activation).
    case inherited(descriptor: Int32)

    public init(parsing text: String) throws {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst("unix:".count))
            guard !path.isEmpty else { throw ListenAddressError.invalid(text, "empty unix socket path") }
            self = .unix(path: path)
            return
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw ListenAddressError.invalid(text, "expected [IPv6]:PORT")
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw ListenAddressError.invalid(text, "expected HOST:PORT or unix:PATH")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { throw ListenAddressError.invalid(text, "invalid port \"\(portText)\"") }
        guard !host.isEmpty else { throw ListenAddressError.invalid(text, "empty host") }
        self = .tcp(host: String(host), port: port)
    }

    /// True when only this machine can connect: loopback addresses and unix sockets.
    public var isLocalOnly: Bool {
        switch self {
        case .unix: return true
        case .inherited: return false
        case .tcp(let host, _):
            if host == "localhost" { return true }
            var address = in_addr()
            if inet_pton(AF_INET, host, &address) == 1 {
                return UInt32(bigEndian: address.s_addr) >> 24 == 127
            }
            // Any spelling of ::1 (`0:0:0:0:0:0:0:1`, `::0001`).
            var address6 = in6_addr()
            if inet_pton(AF_INET6, host, &address6) == 1 {
                return withUnsafeBytes(of: &address6) { $0.elementsEqual([UInt8](repeating: 0, count: 15) + [1]) }
            }
            return false
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        case .inherited(let descriptor): "fd:\(descriptor)"
        }
    }
}

public enum ListenAddressError: Error, CustomStringConvertible {
    case invalid(String, String)
    case system(String, String)

    public var description: String {
        switch self {
        case .invalid(let text, let reason): "invalid listen address \"\(text)\": \(reason)"
        case .system(let what, let reason): "\(what): \(reason)"
        }
    }
}

/// A bound, listening, non-blocking socket that `ConnectionGate` accepts on.
///
/// Binding here rather than in libmicrohttpd gives one path for TCP, unix sockets and inherited
/// descriptors, and lets port 0 report the port the kernel picked.
struct ListeningSocket: Sendable {
    let descriptor: Int32
    let address: ListenAddress
    private let unixPath: String?

    static func open(_ requested: ListenAddress, socketMode: mode_t) throws -> ListeningSocket {
        switch requested {
        case .inherited(let descriptor):
            // Reported as the address it is bound to; the socket file (if any) belongs to systemd.
            let address = try requested.resolved()
            // systemd passes it inheritable; child processes (a private Podman service) must not hold it.
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            try setNonBlocking(descriptor)
            return ListeningSocket(descriptor: descriptor, address: address, unixPath: nil)
        case .unix(let path):
            return try openUnix(path: path, mode: socketMode)
        case .tcp(let host, let port):
            return try openTCP(host: host, port: port)
        }
    }

    func close() {
        _ = Glibc.close(descriptor)
        if let unixPath { unlink(unixPath) }
    }

    private static func openTCP(host: String, port: UInt16) throws -> ListeningSocket {
        let name = host == "localhost" ? "127.0.0.1" : host
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let family: Int32
        if inet_pton(AF_INET, name, &v4.sin_addr) == 1 {
            family = AF_INET
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
        } else if inet_pton(AF_INET6, name, &v6.sin6_addr) == 1 {
            family = AF_INET6
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
        } else {
            throw ListenAddressError.invalid(host, "not an IP address (use 127.0.0.1, ::1, localhost or an interface address)")
        }
        let descriptor = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw systemError("socket") }
        var enable: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &enable, socklen_t(MemoryLayout<Int32>.size))
        if family == AF_INET6 {
            setsockopt(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &enable, socklen_t(MemoryLayout<Int32>.size))
        }
        let bound: Int32 =
            family == AF_INET
            ? withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            : withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        guard bound == 0 else {
            let error = systemError("bind \(host):\(port)")
            _ = Glibc.close(descriptor)
            throw error
        }
        try listenAndConfigure(descriptor)
        return ListeningSocket(
            descriptor: descriptor,
            address: .tcp(host: host, port: boundPort(descriptor, family: family)),
            unixPath: nil
        )
    }

    private static func openUnix(path: String, mode: mode_t) throws -> ListeningSocket {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ListenAddressError.invalid(path, "unix socket path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        // A socket file left by a previous run blocks bind; anything else at that path is kept.
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else {
                throw ListenAddressError.invalid(path, "exists and is not a socket")
            }
            unlink(path)
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw systemError("socket") }
        // Created with no permissions for others from the first instant, then widened as asked.
        let previousMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(previousMask)
        guard bound == 0 else {
            let error = systemError("bind \(path)")
            _ = Glibc.close(descriptor)
            throw error
        }
        guard chmod(path, mode) == 0 else {
            let error = systemError("chmod \(path)")
            _ = Glibc.close(descriptor)
            throw error
        }
        try listenAndConfigure(descriptor)
        return ListeningSocket(descriptor: descriptor, address: .unix(path: path), unixPath: path)
    }

    private static func listenAndConfigure(_ descriptor: Int32) throws {
        guard listen(descriptor, 1024) == 0 else {
            let error = systemError("listen")
            _ = Glibc.close(descriptor)
            throw error
        }
        try setNonBlocking(descriptor)
    }

    private static func setNonBlocking(_ descriptor: Int32) throws {
        let flags = fcntl(descriptor, F_GETFL)
        guard flags >= 0, fcntl(descriptor, F_SETFL, flags | O_NONBLOCK) == 0 else { throw systemError("fcntl") }
    }

    private static func boundPort(_ descriptor: Int32, family: Int32) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return withUnsafePointer(to: &storage) { pointer in
            family == AF_INET
                ? pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
                : pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
        }
    }

    private static func systemError(_ what: String) -> ListenAddressError {
        .system(what, String(cString: strerror(errno)))
    }
}
