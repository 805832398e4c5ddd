import Glibc

/// systemd socket activation (`sd_listen_fds(3)`): the service manager binds the socket, starts
/// the service with it as descriptor 3, and says so in `LISTEN_FDS` and `LISTEN_PID`.
public enum SocketActivation {
    public static let firstDescriptor: Int32 = 3
    static let variables = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The passed socket, or nil when this process was not socket-activated. As in sd_listen_fds,
    /// variables meant for another process (`LISTEN_PID` missing or not ours — a parent that was
    /// activated itself) are not ours to use.
    public static func passedDescriptor(environment: [String: String], processID: pid_t) throws(Failure) -> Int32? {
        guard let count = environment["LISTEN_FDS"], let owner = environment["LISTEN_PID"] else { return nil }
        guard let ownerID = pid_t(owner), ownerID > 0 else {
            throw Failure(description: "invalid LISTEN_PID \"\(owner)\": expected a process id")
        }
        guard ownerID == processID else { return nil }
        guard let number = Int(count), number >= 0 else {
            throw Failure(description: "invalid LISTEN_FDS \"\(count)\": expected a number of descriptors")
        }
        switch number {
        case 0: return nil
        case 1: return firstDescriptor
        default:
            throw Failure(
                description: "systemd passed \(number) sockets (LISTEN_FDS=\(count)); ocimand serves exactly one")
        }
    }

    /// Unsets the variables so that child processes (a private Podman service) do not take the
    /// socket for theirs.
    public static func clearEnvironment() {
        for name in variables { unsetenv(name) }
    }
}

extension ListenAddress {
    /// For an inherited descriptor, the address it is bound to (`.tcp` or `.unix`), after checking
    /// it is a listening stream socket; any other address is returned as it is.
    public func resolved() throws(ListenAddressError) -> ListenAddress {
        guard case .inherited(let descriptor) = self else { return self }
        func option(_ name: Int32) -> Int32? {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(descriptor, SOL_SOCKET, name, &value, &length) == 0 ? value : nil
        }
        guard let type = option(SO_TYPE) else {
            throw .system("inherited descriptor \(descriptor)", String(cString: strerror(errno)))
        }
        guard type == Int32(SOCK_STREAM.rawValue), option(SO_ACCEPTCONN) == 1 else {
            throw .invalid("fd:\(descriptor)", "not a listening stream socket")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw .system("getsockname on fd \(descriptor)", String(cString: strerror(errno))) }
        let family = Int32(storage.ss_family)
        return try withUnsafePointer(to: &storage) { (pointer) throws(ListenAddressError) -> ListenAddress in
            switch family {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    let bytes = withUnsafeBytes(of: address.pointee.sin_addr) { Array($0) }
                    return .tcp(host: Self.text(AF_INET, bytes), port: UInt16(bigEndian: address.pointee.sin_port))
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    let bytes = withUnsafeBytes(of: address.pointee.sin6_addr) { Array($0) }
                    return .tcp(host: Self.text(AF_INET6, bytes), port: UInt16(bigEndian: address.pointee.sin6_port))
                }
            case AF_UNIX:
                return pointer.withMemoryRebound(to: sockaddr_un.self, capacity: 1) { address in
                    var path = address.pointee.sun_path
                    let bytes = withUnsafeBytes(of: &path) { Array($0) }
                    // An abstract socket's name starts with NUL; show it the way ss(8) does.
                    if bytes.first == 0 {
                        let nameLength = max(0, Int(length) - MemoryLayout<sa_family_t>.size - 1)
                        return .unix(path: "@" + String(decoding: bytes.dropFirst().prefix(nameLength), as: UTF8.self))
                    }
                    return .unix(path: String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self))
                }
            default:
                throw .invalid("fd:\(descriptor)", "address family \(family) is neither IP nor unix")
            }
        }
    }

    /// inet_ntop of the address bytes (4 for IPv4, 16 for IPv6).
    private static func text(_ family: Int32, _ address: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = inet_ntop(family, address, &buffer, socklen_t(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
