import HTTPTypes
import Testing

@testable import MHDTransport

@Suite struct RouterTests {
    /// Handlers are plain strings here: the router only stores and returns them.
    private static func router() throws -> Router<String> {
        var router = Router<String>()
        try router.add(.get, "/images/{reference}", "inspect")
        try router.add(.head, "/images/{reference}", "exists")
        try router.add(.delete, "/images/{reference}", "remove")
        try router.add(.post, "/images/{reference}/tag", "tag")
        // Registered after the parameter route on purpose: literals must win regardless of order.
        try router.add(.post, "/images/pull", "pull")
        try router.add(.post, "/images/build", "build")
        try router.add(.get, "/images", "list")
        try router.add(.get, "/containers/{id}/logs", "logs")
        try router.add(.post, "/containers/{id}/exec", "exec")
        try router.add(.get, "/health", "health")
        try router.add(.get, "/", "root")
        return router
    }

    private static func found(_ match: Router<String>.Match) -> (String, String, [String: Substring])? {
        if case .found(let handler, let template, let parameters) = match { return (handler, template, parameters) }
        return nil
    }

    @Test func parameterKeepsTheRawPercentEncodedSegment() throws {
        let router = try Self.router()
        let match = try #require(Self.found(router.match(method: .get, path: "/images/a%2Fb:1")))
        #expect(match.0 == "inspect")
        #expect(match.1 == "/images/{reference}")
        #expect(match.2 == ["reference": "a%2Fb:1"])

        let tag = try #require(Self.found(router.match(method: .post, path: "/images/localhost%3A5000%2Fx%2Fy%3Av1/tag")))
        #expect(tag.0 == "tag")
        #expect(tag.2["reference"] == "localhost%3A5000%2Fx%2Fy%3Av1")
    }

    @Test func encodedSlashIsNotASegmentBoundary() throws {
        let router = try Self.router()
        // A decoded slash would make this three segments and match nothing.
        #expect(Self.found(router.match(method: .get, path: "/images/a/b:1")) == nil)
        guard case .notFound = router.match(method: .get, path: "/images/a/b:1") else {
            Issue.record("expected 404 for an unencoded slash")
            return
        }
    }

    @Test func literalBeatsParameterWhateverTheRegistrationOrder() throws {
        let router = try Self.router()
        #expect(Self.found(router.match(method: .post, path: "/images/pull"))?.0 == "pull")
        #expect(Self.found(router.match(method: .post, path: "/images/build"))?.0 == "build")
        // Same path, a method only the parameter route has: falls through to it.
        #expect(Self.found(router.match(method: .get, path: "/images/pull"))?.0 == "inspect")
        #expect(Self.found(router.match(method: .get, path: "/images/pull"))?.2 == ["reference": "pull"])
    }

    @Test func trailingSlashIsTheSameResource() throws {
        let router = try Self.router()
        #expect(Self.found(router.match(method: .get, path: "/health/"))?.0 == "health")
        #expect(Self.found(router.match(method: .get, path: "/images/"))?.0 == "list")
        #expect(Self.found(router.match(method: .get, path: "/images/x/"))?.2 == ["reference": "x"])
        #expect(Self.found(router.match(method: .get, path: "/"))?.0 == "root")
    }

    @Test func emptySegmentsDoNotBindParameters() throws {
        let router = try Self.router()
        guard case .notFound = router.match(method: .get, path: "/containers//logs") else {
            Issue.record("an empty parameter must not match")
            return
        }
    }

    @Test func methodNotAllowedListsEveryMethodOfThePath() throws {
        let router = try Self.router()
        guard case .methodNotAllowed(let allowed) = router.match(method: .put, path: "/images/x") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed.map(\.rawValue) == ["DELETE", "GET", "HEAD"])

        // A path both a literal and a parameter route match: the union of their methods.
        guard case .methodNotAllowed(let both) = router.match(method: .put, path: "/images/pull") else {
            Issue.record("expected 405")
            return
        }
        #expect(both.map(\.rawValue) == ["DELETE", "GET", "HEAD", "POST"])
    }

    @Test func unknownPaths() throws {
        let router = try Self.router()
        for path in ["/nope", "/images/x/tag/extra", "/containers/x", "/healthz", "/images/x/untag"] {
            guard case .notFound = router.match(method: .get, path: path[...]) else {
                Issue.record("\(path) should be 404")
                continue
            }
        }
    }

    @Test func registrationErrors() throws {
        var router = try Self.router()
        #expect(throws: Router<String>.RegistrationError.self) { try router.add(.get, "/images/{other}", "dup") }
        #expect(throws: Router<String>.RegistrationError.self) { try router.add(.get, "health", "no slash") }
        #expect(throws: Router<String>.RegistrationError.self) { try router.add(.get, "/a/{}", "empty name") }
        #expect(throws: Router<String>.RegistrationError.self) { try router.add(.get, "/a/x{y}", "partial") }
        #expect(throws: Router<String>.RegistrationError.self) { try router.add(.get, "/a//b", "empty segment") }
        // A new method on an existing template is fine.
        try router.add(.put, "/images/{reference}", "put")
        #expect(Self.found(router.match(method: .put, path: "/images/x"))?.0 == "put")
    }
}

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1:8420", ListenAddress.tcp(host: "127.0.0.1", port: 8420)),
        ("[::1]:8420", .tcp(host: "::1", port: 8420)),
        ("localhost:0", .tcp(host: "localhost", port: 0)),
        ("0.0.0.0:65535", .tcp(host: "0.0.0.0", port: 65535)),
        ("unix:/tmp/x", .unix(path: "/tmp/x")),
        ("unix:relative/ocimand.sock", .unix(path: "relative/ocimand.sock")),
    ])
    func parses(_ text: String, _ expected: ListenAddress) throws {
        let address = try ListenAddress(parsing: text)
        #expect(address == expected)
        #expect(address.description == text)
    }

    @Test(arguments: [
        "", "127.0.0.1", "127.0.0.1:", ":8420", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http",
        "[::1]", "[::1]8420", "[::1", "[]:80", "unix:",
    ])
    func rejects(_ text: String) {
        #expect(throws: ListenAddressError.self) { try ListenAddress(parsing: text) }
    }

    @Test(arguments: [
        ("127.0.0.1:8420", true), ("127.8.9.10:1", true), ("localhost:8420", true), ("[::1]:8420", true),
        ("[0:0:0:0:0:0:0:1]:8420", true), ("unix:/run/ocimand.sock", true),
        ("0.0.0.0:8420", false), ("[::]:8420", false), ("192.168.1.10:8420", false), ("10.0.0.1:80", false),
        ("128.0.0.1:80", false), ("[fe80::1]:80", false), ("[::ffff:10.0.0.1]:80", false),
    ])
    func localOnly(_ text: String, _ expected: Bool) throws {
        #expect(try ListenAddress(parsing: text).isLocalOnly == expected)
    }

    @Test func inheritedSocketIsNotAssumedLocal() {
        #expect(!ListenAddress.inherited(descriptor: 3).isLocalOnly)
        #expect(ListenAddress.inherited(descriptor: 3).description == "fd:3")
    }
}
