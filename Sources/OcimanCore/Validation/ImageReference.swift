import Glibc

/// An image reference `[domain/]path[:tag][@digest]` (SPEC §6), the grammar of
/// distribution/reference that the ociman library implements, with one deliberate rule
/// from the spec: the first path segment is a registry domain only if it has a port, is
/// an IP address, contains a dot, or is `localhost` (so `team/app` is a two-component
/// path on Docker Hub, not a registry called `team`).
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    /// Registry host with optional port, e.g. `ghcr.io`, `localhost:5000`, `[::1]:5000`.
    public var domain: String?
    /// Slash-separated lowercase path components, e.g. `library/alpine`.
    public var path: String
    public var tag: String?
    /// `algorithm:hex`, e.g. `sha256:…`.
    public var digest: String?

    public static let maxNameLength = 255
    public static let maxTagLength = 128

    public init(parsing text: String) throws(ReferenceError) {
        self = try Parser(text).parse()
    }

    /// Builds a reference from parts that are already known to be valid.
    public init(domain: String? = nil, path: String, tag: String? = nil, digest: String? = nil) {
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
    }

    /// `domain/path`, or `path` when there is no domain.
    public var repository: String {
        if let domain { return "\(domain)/\(path)" }
        return path
    }

    public var description: String {
        var text = repository
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        return text
    }

    /// The repository with registry spellings that name the same local image removed:
    /// Podman stores `x` as `localhost/x`, Docker Hub images are `docker.io/x` or
    /// `docker.io/library/x`; all of these become `x`.
    public var canonicalRepository: String {
        let defaultRegistries: Set<String> = ["localhost", "docker.io", "index.docker.io"]
        if let domain, !defaultRegistries.contains(domain) {
            return repository
        }
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        if components.count == 2 && components[0] == "library" {
            return String(components[1])
        }
        return path
    }

    /// Whether `name` (a repository, optionally with tag or digest, which are ignored)
    /// names this reference's repository, registry-insensitively like the ociman library.
    public func matchesRepository(_ name: String) -> Bool {
        guard let other = try? ImageReference(parsing: name) else { return false }
        return other.canonicalRepository == canonicalRepository
    }

    /// The pieces of the grammar, for callers that validate one part (e.g. a tag alone).
    public static func validateTag(_ tag: String) throws(ReferenceError) {
        try Parser.checkTag(tag, reference: tag)
    }

    public static func validateDigest(_ digest: String) throws(ReferenceError) {
        try Parser.checkDigest(digest, reference: digest)
    }
}

/// Why a reference does not parse; `message` says which part is wrong and how.
public struct ReferenceError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reference: String
    public let message: String

    public init(reference: String, message: String) {
        self.reference = reference
        self.message = message
    }

    public var description: String { "invalid image reference \"\(reference)\": \(message)" }
}

private struct Parser {
    let text: String

    init(_ text: String) {
        self.text = text
    }

    func parse() throws(ReferenceError) -> ImageReference {
        guard !text.isEmpty else { throw fail("reference is empty") }
        var remainder = Substring(text)

        var digest: String?
        if let at = remainder.firstIndex(of: "@") {
            let digestText = String(remainder[remainder.index(after: at)...])
            try Self.checkDigest(digestText, reference: text)
            digest = digestText
            remainder = remainder[..<at]
        }

        // A colon after the last slash starts the tag; one before it belongs to a port.
        var tag: String?
        let lastSlash = remainder.lastIndex(of: "/")
        if let colon = remainder.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let tagText = String(remainder[remainder.index(after: colon)...])
            try Self.checkTag(tagText, reference: text)
            tag = tagText
            remainder = remainder[..<colon]
        }

        guard !remainder.isEmpty else { throw fail("repository name is empty") }
        var components = remainder.split(separator: "/", omittingEmptySubsequences: false)
        var domain: String?
        if components.count > 1, Self.looksLikeDomain(components[0]) {
            try checkDomain(components[0])
            domain = String(components[0])
            components.removeFirst()
        }
        for component in components {
            try checkPathComponent(component)
        }
        guard remainder.utf8.count <= ImageReference.maxNameLength else {
            throw fail(
                "repository name is \(remainder.utf8.count) characters long; at most \(ImageReference.maxNameLength) are allowed")
        }
        return ImageReference(
            domain: domain, path: components.joined(separator: "/"), tag: tag, digest: digest)
    }

    private func fail(_ message: String) -> ReferenceError {
        ReferenceError(reference: text, message: message)
    }

    private static func looksLikeDomain(_ segment: Substring) -> Bool {
        segment == "localhost" || segment.contains(".") || segment.contains(":")
            || segment.hasPrefix("[")
    }

    /// host[:port]; host is a DNS name (which covers dotted IPv4) or a bracketed IPv6 address.
    private func checkDomain(_ domain: Substring) throws(ReferenceError) {
        let invalid = "invalid registry domain \"\(domain)\""
        var host = domain
        var port: Substring?
        if domain.hasPrefix("[") {
            guard let close = domain.firstIndex(of: "]") else {
                throw fail("\(invalid): \"[\" without a closing \"]\"")
            }
            let address = domain[domain.index(after: domain.startIndex)..<close]
            guard Self.isIPv6(address) else {
                throw fail("\(invalid): \"\(address)\" is not an IPv6 address")
            }
            host = domain[...close]
            let rest = domain[domain.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else {
                    throw fail("\(invalid): unexpected \"\(rest)\" after the IPv6 address")
                }
                port = rest.dropFirst()
            }
        } else {
            if let colon = domain.firstIndex(of: ":") {
                host = domain[..<colon]
                port = domain[domain.index(after: colon)...]
            }
            guard Self.isDomainName(host) else {
                throw fail(
                    "\(invalid): host must be letters and digits, dot-separated, with \"-\" only inside a label")
            }
        }
        if let port {
            guard !port.isEmpty, port.utf8.allSatisfy(Self.isDigit), let value = Int(port),
                value <= 65535
            else {
                throw fail("\(invalid): port \"\(port)\" is not a number from 0 to 65535")
            }
        }
    }

    private static func isDomainName(_ host: Substring) -> Bool {
        guard !host.isEmpty else { return false }
        for label in host.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false) {
            guard let first = label.first, let last = label.last, isAlphanumeric(first),
                isAlphanumeric(last), label.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "-") })
            else { return false }
        }
        return true
    }

    private static func isIPv6(_ address: Substring) -> Bool {
        guard !address.isEmpty,
            address.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") })
        else { return false }
        var storage = in6_addr()
        return inet_pton(AF_INET6, String(address), &storage) == 1
    }

    /// `[a-z0-9]+` joined by `_`, `__`, `.` or one or more `-`.
    private func checkPathComponent(_ component: Substring) throws(ReferenceError) {
        if component.isEmpty {
            throw fail("repository path has an empty component (leading, trailing or doubled \"/\")")
        }
        let bytes = Array(component.utf8)
        if bytes.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) {
            throw fail("repository name component \"\(component)\" must be lowercase")
        }
        let rule = "components are lowercase letters and digits joined by \"_\", \"__\", \".\" or \"-\""
        var index = 0
        var afterSeparator = true  // a component may not start with a separator
        while index < bytes.count {
            let byte = bytes[index]
            if Self.isLowerAlphanumeric(byte) {
                afterSeparator = false
                index += 1
                continue
            }
            guard !afterSeparator else {
                throw fail("repository name component \"\(component)\" is invalid: \(rule)")
            }
            switch byte {
            case UInt8(ascii: "."):
                index += 1
            case UInt8(ascii: "_"):
                index += index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "_") ? 2 : 1
            case UInt8(ascii: "-"):
                while index < bytes.count && bytes[index] == UInt8(ascii: "-") { index += 1 }
            default:
                throw fail("repository name component \"\(component)\" is invalid: \(rule)")
            }
            afterSeparator = true
        }
        if afterSeparator {
            throw fail("repository name component \"\(component)\" is invalid: \(rule)")
        }
    }

    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
    static func checkTag(_ tag: String, reference: String) throws(ReferenceError) {
        func fail(_ reason: String) -> ReferenceError {
            ReferenceError(reference: reference, message: "invalid tag \"\(tag)\": \(reason)")
        }
        let bytes = Array(tag.utf8)
        guard let first = bytes.first else { throw fail("tag is empty") }
        guard bytes.count <= ImageReference.maxTagLength else {
            throw fail("longer than \(ImageReference.maxTagLength) characters")
        }
        guard isAlphanumeric(first) || first == UInt8(ascii: "_") else {
            throw fail("must start with a letter, digit or \"_\"")
        }
        guard
            bytes.allSatisfy({
                isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
                    || $0 == UInt8(ascii: "-")
            })
        else { throw fail("only letters, digits, \"_\", \".\" and \"-\" are allowed") }
    }

    /// `algorithm:hex`, algorithm `[a-z0-9]+([+._-][a-z0-9]+)*`, hex at least 32 digits.
    static func checkDigest(_ digest: String, reference: String) throws(ReferenceError) {
        func fail(_ reason: String) -> ReferenceError {
            ReferenceError(reference: reference, message: "invalid digest \"\(digest)\": \(reason)")
        }
        guard let colon = digest.firstIndex(of: ":") else {
            throw fail("expected \"algorithm:hex\"")
        }
        let algorithm = Array(digest[..<colon].utf8)
        let hex = Array(digest[digest.index(after: colon)...].utf8)
        let separators: Set<UInt8> = [UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-")]
        var afterSeparator = true
        for byte in algorithm {
            if isLowerAlphanumeric(byte) {
                afterSeparator = false
            } else if separators.contains(byte) && !afterSeparator {
                afterSeparator = true
            } else {
                throw fail("algorithm must be lowercase letters and digits joined by \"+\", \".\", \"_\" or \"-\"")
            }
        }
        if afterSeparator {
            throw fail(algorithm.isEmpty ? "algorithm is empty" : "algorithm ends with a separator")
        }
        guard hex.allSatisfy(isHexDigit) else { throw fail("digest value must be hexadecimal") }
        guard hex.count >= 32 else {
            throw fail("digest value has \(hex.count) hex digits; at least 32 are required")
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private static func isLowerAlphanumeric(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        isLowerAlphanumeric(byte) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }
}
