import HTTPTypes

/// Keeps web pages from driving ocimand (SPEC §7), checked by the transport before a handler
/// runs or a body byte is read:
/// - `Host` must name this service: a loopback name, the listen address or an `--allow-host`
///   name (any port). A page that rebinds its own DNS name to 127.0.0.1 still sends its own
///   name, so DNS rebinding gets 403. On a unix socket any Host is accepted: no DNS name leads
///   to it, so there is nothing to rebind, and HTTP clients make up a name for it anyway.
/// - A request carrying `Origin` comes from a web page; refused unless `--allow-origin` lists it.
///   `Sec-Fetch-Site: cross-site` / `same-site` without an allowed Origin is refused too: that is
///   how browsers mark cross-site navigations and image loads, which carry no Origin.
/// - A body must be `application/json` (`application/x-tar` on the routes whose contract takes a
///   tar): the content types a page can send without a CORS preflight (form posts,
///   `text/plain`) are refused with 415.
public struct RequestAdmission: Sendable {
    public static let loopbackNames: Set<String> = ["localhost", "127.0.0.1", "::1"]
    /// Routes whose request body is `application/x-tar` (the contract's `POST /images/build/tar`
    /// and `POST /hash/tar`; a unit test keeps this in step with openapi.yaml). Their body is
    /// only a tar; every other body is only JSON.
    public static let tarBodyRoutes: Set<String> = ["/images/build/tar", "/hash/tar"]

    /// Lowercased host names without port; nil accepts any Host.
    let allowedHosts: Set<String>?
    let allowedOrigins: Set<String>

    public struct ConfigurationError: Error, CustomStringConvertible {
        public let description: String
    }

    /// - Parameters:
    ///   - listenHost: the host of the TCP listen address; nil for a unix socket (any Host).
    ///   - extraHosts: further names clients use for this service (`--allow-host`).
    ///   - allowedOrigins: web origins allowed to call the service (`--allow-origin`).
    public init(listenHost: String?, extraHosts: [String] = [], allowedOrigins: [String] = []) throws(ConfigurationError) {
        if let listenHost {
            var hosts = Self.loopbackNames
            // A wildcard address is not a name a client connects to.
            if !["0.0.0.0", "::"].contains(listenHost) { hosts.insert(listenHost.lowercased()) }
            for text in extraHosts {
                guard let name = Self.hostName(text) else {
                    throw ConfigurationError(description: "invalid allowed host \"\(text)\": expected a host name or IP address")
                }
                hosts.insert(name)
            }
            allowedHosts = hosts
        } else {
            allowedHosts = nil
        }
        var origins: Set<String> = []
        for text in allowedOrigins {
            guard let origin = Self.normalizedOrigin(text) else {
                throw ConfigurationError(
                    description: "invalid allowed origin \"\(text)\": expected scheme://host[:port], such as http://localhost:3000")
            }
            origins.insert(origin)
        }
        self.allowedOrigins = origins
    }

    /// nil admits the request; otherwise the status and detail of the refusal.
    public func check(_ request: HTTPRequest, routeTemplate: String, hasBody: Bool) -> (status: Int, detail: String)? {
        let fields = request.headerFields
        if let allowedHosts {
            let hosts = fields[values: Self.hostField]
            if hosts.count > 1 { return (403, "more than one Host header") }
            // HTTP/1.0 clients may omit Host; browsers never do.
            if let host = hosts.first {
                guard let name = Self.hostName(host), allowedHosts.contains(name) else {
                    return (403, "Host \"\(host)\" is not a name of this service; allowed: \(allowedHosts.sorted().joined(separator: ", "))")
                }
            }
        }
        let origins = fields[values: .origin]
        if origins.count > 1 { return (403, "more than one Origin header") }
        if let origin = origins.first {
            guard let normalized = Self.normalizedOrigin(origin), allowedOrigins.contains(normalized) else {
                return (403, "requests from web pages are refused: Origin \"\(origin)\" is not allowed (see --allow-origin)")
            }
        } else if let site = fields[Self.secFetchSite]?.lowercased(), site == "cross-site" || site == "same-site" {
            return (403, "requests from web pages are refused (Sec-Fetch-Site: \(site))")
        }
        if hasBody {
            let allowed = Self.tarBodyRoutes.contains(routeTemplate) ? ["application/x-tar"] : ["application/json"]
            guard let contentType = fields[.contentType] else {
                return (415, "a request body needs Content-Type: \(allowed.joined(separator: " or "))")
            }
            guard allowed.contains(Self.mediaType(contentType)) else {
                // Tar uploads used to share the JSON routes; say where they went.
                let tarRoute = routeTemplate + "/tar"
                let hint = Self.mediaType(contentType) == "application/x-tar" && Self.tarBodyRoutes.contains(tarRoute)
                    ? " (tar uploads go to \(tarRoute))" : ""
                return (415, "Content-Type \"\(contentType)\" is not accepted on \(routeTemplate): send \(allowed.joined(separator: " or "))\(hint)")
            }
        }
        return nil
    }

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
    /// HTTPTypes calls it `authority`; the transport passes the header as received.
    static let hostField = HTTPField.Name("Host")!

    /// The host of a Host header or a configured name: lowercased, without port, brackets or a
    /// trailing dot; nil when malformed.
    static func hostName(_ text: String) -> String? {
        var host = Substring(text.lowercased())
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return nil }
            let rest = host[host.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                port = rest.dropFirst()
            }
            host = host[host.index(after: host.startIndex)..<close]
            guard host.contains(":") else { return nil }
        } else if host.utf8.lazy.filter({ $0 == UInt8(ascii: ":") }).count >= 2 {
            // A bare IPv6 address (as configured; a Host header would bracket it): no port.
        } else if let colon = host.firstIndex(of: ":") {
            port = host[host.index(after: colon)...]
            host = host[..<colon]
        }
        if let port, port.isEmpty || port.count > 5 || !port.allSatisfy(\.isASCII) || !port.allSatisfy(\.isNumber) {
            return nil
        }
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty, host.utf8.allSatisfy(isHostNameByte) else { return nil }
        return String(host)
    }

    /// Runs on every request: bytes, not a `Set<Character>` (building one cost 8% of a `/health`).
    private static func isHostNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// `scheme://host[:port]` lowercased, without a trailing slash; nil for anything else,
    /// including the opaque origin `null` (sandboxed frames, `file:` pages), which no list may allow.
    static func normalizedOrigin(_ text: String) -> String? {
        var origin = Substring(text.lowercased())
        if origin.hasSuffix("/") { origin = origin.dropLast() }
        guard let separator = origin.range(of: "://") else { return nil }
        let scheme = origin[..<separator.lowerBound]
        let authority = origin[separator.upperBound...]
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
            !authority.contains("/"), !authority.contains("@"), hostName(String(authority)) != nil
        else { return nil }
        return String(origin)
    }

    /// `application/json; charset=utf-8` → `application/json`.
    static func mediaType(_ contentType: String) -> String {
        let type = contentType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return type.trimmingCharacters(in: " \t").lowercased()
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        var trimmed = self
        while let first = trimmed.first, set.contains(first) { trimmed = trimmed.dropFirst() }
        while let last = trimmed.last, set.contains(last) { trimmed = trimmed.dropLast() }
        return trimmed
    }
}
