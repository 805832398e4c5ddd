import EngineDriver
import Foundation
import OcimanCore

/// Where an engine listens, as `DOCKER_HOST` and `CONTAINER_HOST` name it (SPEC §3.3):
/// `unix://PATH`, `tcp://HOST[:PORT]` (Docker: TLS when `DOCKER_TLS_VERIFY` is set, with the
/// files in `DOCKER_CERT_PATH`, as the docker CLI reads them), `ssh://[USER@]HOST[:PORT]` (Docker,
/// through `docker system dial-stdio` on the host) or `ssh://[USER@]HOST[:PORT]/PATH` (Podman's
/// socket at PATH on the host, through `podman system dial-stdio` there).
public enum EngineAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(host: String, port: Int, tls: EngineTLSFiles?)
    case ssh(SSHDestination, socketPath: String?)

    public var description: String {
        switch self {
        case .unix(let path): "unix://\(path)"
        case .tcp(let host, let port, _): "tcp://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        case .ssh(let destination, let path): destination.url + (path ?? "")
        }
    }

    /// Names the variables that allow plain-text TCP beyond loopback and point at the TLS files.
    public static let allowPlainTCPVariable = "OCIMAN_ALLOW_PLAIN_TCP"

    /// Parses `value` of `variable` for an engine of `kind`; `variables` supplies the TLS
    /// settings, `HOME` and the plain-TCP allowance.
    public static func parse(
        _ value: String, variable: String, kind: BackendKind, variables: [String: String]
    ) throws -> EngineAddress {
        let unsupported = BackendSelectionError.unsupportedHost(variable: variable, value: value)
        guard let schemeEnd = value.range(of: "://") else { throw unsupported }
        let rest = String(value[schemeEnd.upperBound...])
        switch value[..<schemeEnd.lowerBound] {
        case "unix":
            guard !rest.isEmpty else { throw unsupported }
            return .unix(rest)
        case "tcp":
            let (authority, path) = split(rest)
            guard path.isEmpty || path == "/", let (host, port) = hostAndPort(authority), !host.isEmpty else { throw unsupported }
            // Like the docker CLI: any non-empty DOCKER_TLS_VERIFY turns TLS on with verification.
            let verify = kind == .docker && !(variables["DOCKER_TLS_VERIFY"] ?? "").isEmpty
            if !verify, !isLoopback(host), !["1", "true"].contains(variables[allowPlainTCPVariable]?.lowercased() ?? "") {
                throw BackendSelectionError.plainTextTCP(variable: variable, value: value)
            }
            let tls = verify ? EngineTLSFiles(directory: certificateDirectory(variables)) : nil
            guard let port = port ?? (verify ? 2376 : kind == .docker ? 2375 : nil) else { throw unsupported }
            return .tcp(host: host, port: port, tls: tls)
        case "ssh":
            let (authority, path) = split(rest)
            var hostPart = Substring(authority)
            var user: String?
            if let at = authority.lastIndex(of: "@") {
                user = String(authority[..<at])
                hostPart = authority[authority.index(after: at)...]
            }
            guard user?.isEmpty != true, let (host, port) = hostAndPort(String(hostPart)), !host.isEmpty else { throw unsupported }
            let destination = SSHDestination(user: user, host: host, port: port)
            switch kind {
            case .docker:
                // The docker CLI takes no path: the remote docker finds its own engine.
                guard path.isEmpty || path == "/" else { throw unsupported }
                return .ssh(destination, socketPath: nil)
            case .podman:
                guard path.count > 1 else { throw BackendSelectionError.sshWithoutSocket(variable: variable, value: value) }
                return .ssh(destination, socketPath: path)
            }
        default:
            throw unsupported
        }
    }

    /// The connection layer for this address; TLS files are read here, so a missing or broken
    /// one fails at startup.
    public func transport() throws -> any EngineTransport {
        switch self {
        case .unix(let path): UnixSocketTransport(path: path)
        case .tcp(let host, let port, let tls): try TCPTransport(host: host, port: port, tls: tls)
        case .ssh(let destination, let path):
            SSHTransport(destination: destination, target: path.map { .podmanSocket($0) } ?? .dockerDialStdio)
        }
    }

    /// The address clients reach the engine's published ports at when they are bound to every
    /// address: the engine's host (as the ssh configuration resolves it, then as DNS does); nil
    /// for an engine on this machine.
    public func publishedPortHost(transport: any EngineTransport) -> String? {
        let host: String
        switch self {
        case .unix: return nil
        case .tcp(let name, _, _): host = name
        case .ssh(let destination, _): host = (transport as? SSHTransport)?.configuredHostName() ?? destination.host
        }
        return Self.resolve(host) ?? host
    }

    static func split(_ rest: String) -> (authority: String, path: String) {
        guard let slash = rest.firstIndex(of: "/") else { return (rest, "") }
        return (String(rest[..<slash]), String(rest[slash...]))
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; nil when the port is not a number in range.
    static func hostAndPort(_ authority: String) -> (String, Int?)? {
        var host = authority
        var portText: String?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = String(after.dropFirst())
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            portText = String(authority[authority.index(after: colon)...])
        }
        guard let portText else { return (host, nil) }
        guard let port = Int(portText), (1...65535).contains(port) else { return nil }
        return (host, port)
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || (host.hasPrefix("127.") && IPAddressKind(literal: host) == .v4)
    }

    static func certificateDirectory(_ variables: [String: String]) -> String {
        if let path = variables["DOCKER_CERT_PATH"], !path.isEmpty { return path }
        return (variables["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.docker"
    }

    /// The first IPv4 address of `host` (IPv6 when it has none); nil when it does not resolve.
    static func resolve(_ host: String) -> String? {
        if IPAddressKind(literal: host) != nil { return host }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let list else { return nil }
        defer { freeaddrinfo(list) }
        var found: [(family: Int32, text: String)] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(current.pointee.ai_addr, current.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                found.append((current.pointee.ai_family, String(cString: buffer)))
            }
            entry = current.pointee.ai_next
        }
        return (found.first { $0.family == AF_INET } ?? found.first)?.text
    }
}
