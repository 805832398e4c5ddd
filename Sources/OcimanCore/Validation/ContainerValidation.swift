#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rules for container requests beyond the library's (SPEC §6): published ports, mounts,
/// readiness waits, list filters and signals. Field paths follow the JSON request
/// (`publish[0].host_port`, `wait.log.pattern`).
extension Validation {
    public static let maxSessionIDLength = 64

    /// Everything `POST /containers` checks before any engine call, in request-field order.
    public static func runSpec(_ spec: RunSpec) throws(ValidationError) {
        try imageReference(spec.image, field: "image")
        if let name = spec.name { try containerName(name) }
        if let command = spec.command { try arguments(command, field: "command") }
        if let entrypoint = spec.entrypoint {
            guard !entrypoint.isEmpty else {
                throw ValidationError(field: "entrypoint", message: "entrypoint must not be empty; omit it to keep the image's")
            }
            try arguments(entrypoint, field: "entrypoint")
        }
        try environment(spec.env)
        try callerLabels(spec.labels)
        for (index, publish) in spec.publish.enumerated() { try self.publish(publish, field: "publish[\(index)]") }
        for (index, mount) in spec.mounts.enumerated() { try self.mount(mount, field: "mounts[\(index)]") }
        if let workdir = spec.workdir, !workdir.hasPrefix("/") {
            throw ValidationError(field: "workdir", message: "working directory must be an absolute path, not \"\(workdir)\"")
        }
        if let user = spec.user { try self.user(user) }
        if let wait = spec.wait { try readinessWait(wait, publish: spec.publish) }
        if let ttl = spec.ttlSeconds { try IntegerBounds.check(ttl, IntegerBounds.ttlSeconds, field: "ttl_seconds") }
        if let session = spec.session { try sessionID(session) }
    }

    /// Arguments reach `execve`, which cannot carry NUL bytes.
    public static func arguments(_ arguments: [String], field: String) throws(ValidationError) {
        if let index = arguments.firstIndex(where: { $0.utf8.contains(0) }) {
            throw ValidationError(field: "\(field)[\(index)]", message: "argument must not contain a NUL byte")
        }
    }

    public static func publish(_ publish: PublishSpec, field: String) throws(ValidationError) {
        try IntegerBounds.check(publish.containerPort, IntegerBounds.containerPort, field: "\(field).container_port")
        if let hostPort = publish.hostPort { try IntegerBounds.check(hostPort, IntegerBounds.hostPort, field: "\(field).host_port") }
        if let hostIP = publish.hostIP, IPAddressKind(literal: hostIP) == nil {
            throw ValidationError(
                field: "\(field).host_ip", message: "host IP must be a literal IPv4 or IPv6 address, not \"\(hostIP)\"")
        }
    }

    public static func mount(_ mount: MountSpec, field: String) throws(ValidationError) {
        guard mount.target.hasPrefix("/") else {
            throw ValidationError(field: "\(field).target", message: "mount target must be an absolute path, not \"\(mount.target)\"")
        }
        switch mount.kind {
        case .bind:
            guard let source = mount.source, source.hasPrefix("/") else {
                throw ValidationError(field: "\(field).source", message: "a bind mount needs an absolute host path as source")
            }
        case .volume:
            // An absent name makes an anonymous volume; a given one follows the engines' volume-name rule.
            if let source = mount.source, !isVolumeName(source) {
                throw ValidationError(
                    field: "\(field).source",
                    message: "volume name must start with an ASCII letter or digit followed by letters, digits, \"_\", \".\" or \"-\", not \"\(source)\"")
            }
        case .tmpfs:
            if mount.source != nil {
                throw ValidationError(field: "\(field).source", message: "a tmpfs mount takes no source")
            }
        }
    }

    public static func readinessWait(_ wait: ReadinessWait, publish: [PublishSpec]) throws(ValidationError) {
        try IntegerBounds.check(wait.timeoutSeconds, IntegerBounds.readinessTimeoutSeconds, field: "wait.timeout_seconds")
        if let port = wait.tcpPort {
            try IntegerBounds.check(port, IntegerBounds.containerPort, field: "wait.tcp_port")
            guard publish.contains(where: { $0.containerPort == port && $0.protocol == .tcp }) else {
                throw ValidationError(
                    field: "wait.tcp_port", message: "container port \(port)/tcp is not in publish, so the host cannot reach it")
            }
        }
        if let log = wait.log {
            guard !log.pattern.isEmpty else {
                throw ValidationError(field: "wait.log.pattern", message: "pattern must not be empty")
            }
            do {
                _ = try Regex(log.pattern)
            } catch {
                throw ValidationError(field: "wait.log.pattern", message: "invalid regular expression: \(error)")
            }
            try IntegerBounds.check(log.occurrences, IntegerBounds.logOccurrences, field: "wait.log.occurrences")
        }
        if let command = wait.exec { try self.command(command, field: "wait.exec.command") }
    }

    /// A command ocimand runs by an exec of its own (a wait's, a pool's warm-up): not empty, and
    /// arguments `execve` can carry.
    public static func command(_ command: [String], field: String) throws(ValidationError) {
        guard !command.isEmpty else { throw ValidationError(field: field, message: "command must not be empty") }
        try arguments(command, field: field)
    }

    /// Session ids as `POST /sessions` makes them.
    public static func sessionID(_ id: String, field: String = "session") throws(ValidationError) {
        let valid = (1...maxSessionIDLength).contains(id.utf8.count) && id.utf8.allSatisfy { byte in
            isASCIILetterOrDigit(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard valid else {
            throw ValidationError(
                field: field, message: "session id must be 1–\(maxSessionIDLength) ASCII letters, digits, \"_\" or \"-\"")
        }
    }

    /// A list filter `key` or `key=value`, checked like a label; returned as the engines take it.
    /// Errors name the query parameter itself.
    /// Labels a caller gives a container (run or claim): well formed and none of ociman's own.
    public static func callerLabels(_ given: [String: String]) throws(ValidationError) {
        try labels(given)
        if let key = given.keys.sorted().first(where: ManagedLabels.reserved.contains) {
            throw ValidationError(
                field: "labels.\(key)", message: "label \"\(key)\" is set by ociman itself (use ttl_seconds or session)")
        }
    }

    public static func labelFilter(_ filter: String, field: String = "label") throws(ValidationError) -> String {
        do {
            guard let equals = filter.firstIndex(of: "=") else {
                try labelKey(filter, field: field)
                return filter
            }
            let key = String(filter[..<equals])
            try labelKey(key, field: field)
            try labelValue(String(filter[filter.index(after: equals)...]), key: key, field: field)
            return filter
        } catch {
            throw ValidationError(field: field, message: "\(error.message) in \"\(filter.prefix(300))\"")
        }
    }

    /// Linux signal names as both engines accept them (without `SIG`); `RTMIN+n` and `RTMAX-n` too.
    static let signalNames: Set<String> = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE",
        "POLL", "PROF", "PWR", "QUIT", "RTMAX", "RTMIN", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
        "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ]

    /// A signal name (`SIGTERM`, `TERM`, `sigterm`, `SIGRTMIN+3`) or number (1–64). Checked
    /// here because Docker answers an unknown name with 400 and Podman with 500.
    public static func signal(_ signal: String) throws(ValidationError) {
        if let number = Int(signal), (1...64).contains(number) { return }
        var name = signal.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        var valid = signalNames.contains(name)
        for (base, separator) in [("RTMIN", "+"), ("RTMAX", "-")] where name.hasPrefix(base + separator) {
            valid = Int(name.dropFirst(base.count + 1)).map { (1...15).contains($0) } ?? false
        }
        guard valid else {
            throw ValidationError(field: "signal", message: "unknown signal \"\(signal)\"; use a name such as SIGTERM or a number 1–64")
        }
    }

    static func isVolumeName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, isASCIILetterOrDigit(first) else { return false }
        return bytes.allSatisfy {
            isASCIILetterOrDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
    }

    private static func isASCIILetter(_ byte: UInt8) -> Bool {
        (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z")
    }

    private static func isASCIILetterOrDigit(_ byte: UInt8) -> Bool {
        isASCIILetter(byte) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// Which family a literal IP address belongs to, parsed with `inet_pton` (no names, no brackets,
/// no zone ids).
public enum IPAddressKind: Sendable, Hashable {
    case v4, v6

    public init?(literal: String) {
        var buffer = [UInt8](repeating: 0, count: 16)
        if inet_pton(AF_INET, literal, &buffer) == 1 {
            self = .v4
        } else if inet_pton(AF_INET6, literal, &buffer) == 1 {
            self = .v6
        } else {
            return nil
        }
    }
}
