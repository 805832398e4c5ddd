import Testing

@testable import OcimanCore

private let hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
private let hex32 = "0123456789abcdef0123456789abcdef"

@Suite("Image reference parsing (SPEC §6)")
struct ImageReferenceTests {
    struct Valid: Sendable, CustomTestStringConvertible {
        let text: String
        let domain: String?
        let path: String
        let tag: String?
        let digest: String?
        var testDescription: String { text }

        init(_ text: String, domain: String? = nil, path: String, tag: String? = nil, digest: String? = nil) {
            self.text = text
            self.domain = domain
            self.path = path
            self.tag = tag
            self.digest = digest
        }
    }

    static let valid: [Valid] = [
        Valid("alpine", path: "alpine"),
        Valid("alpine:latest", path: "alpine", tag: "latest"),
        Valid("library/alpine", path: "library/alpine"),
        Valid("docker.io/library/alpine:3.18", domain: "docker.io", path: "library/alpine", tag: "3.18"),
        Valid("localhost/busybox:test", domain: "localhost", path: "busybox", tag: "test"),
        Valid("localhost:5000/team/app:v1", domain: "localhost:5000", path: "team/app", tag: "v1"),
        Valid("registry:5000/app", domain: "registry:5000", path: "app"),
        Valid("[::1]:5000/app:tag", domain: "[::1]:5000", path: "app", tag: "tag"),
        Valid("[fe80::1:2]/app", domain: "[fe80::1:2]", path: "app"),
        Valid("192.168.1.10:443/x/y", domain: "192.168.1.10:443", path: "x/y"),
        Valid("Registry.Example.COM/app", domain: "Registry.Example.COM", path: "app"),
        Valid("my-registry.example.com/a/b/c", domain: "my-registry.example.com", path: "a/b/c"),
        // Without a dot, port or "localhost" the first segment is a path component.
        Valid("team/app", path: "team/app"),
        Valid("a-b_c.d__e---f", path: "a-b_c.d__e---f"),
        Valid("x9/0y", path: "x9/0y"),
        Valid("alpine:_underscore", path: "alpine", tag: "_underscore"),
        Valid("alpine:UPPER.case-1", path: "alpine", tag: "UPPER.case-1"),
        Valid("alpine:" + String(repeating: "t", count: 128), path: "alpine", tag: String(repeating: "t", count: 128)),
        Valid("alpine@sha256:\(hex64)", path: "alpine", digest: "sha256:\(hex64)"),
        Valid("alpine:3@sha512:\(hex32)", path: "alpine", tag: "3", digest: "sha512:\(hex32)"),
        Valid("a@sha256+b64u.v1-x_y:\(hex32.uppercased())", path: "a", digest: "sha256+b64u.v1-x_y:\(hex32.uppercased())"),
        Valid("ghcr.io/o/r:t@sha256:\(hex64)", domain: "ghcr.io", path: "o/r", tag: "t", digest: "sha256:\(hex64)"),
        // A lone "host:port" has no slash, so the number is a tag (as in the library).
        Valid("localhost:5000", path: "localhost", tag: "5000"),
    ]

    @Test(arguments: valid)
    func parses(_ expected: Valid) throws {
        let reference = try ImageReference(parsing: expected.text)
        #expect(reference.domain == expected.domain)
        #expect(reference.path == expected.path)
        #expect(reference.tag == expected.tag)
        #expect(reference.digest == expected.digest)
        #expect(reference.description == expected.text)
        #expect(reference.repository == (expected.domain.map { "\($0)/" } ?? "") + expected.path)
    }

    static let invalid: [(String, String)] = [
        ("", "reference is empty"),
        ("Alpine", "repository name component \"Alpine\" must be lowercase"),
        ("team/App", "repository name component \"App\" must be lowercase"),
        ("alpine:", "invalid tag \"\": tag is empty"),
        ("alpine:-x", "invalid tag \"-x\": must start with a letter, digit or \"_\""),
        ("alpine:.x", "invalid tag \".x\": must start with a letter, digit or \"_\""),
        ("alpine:a+b", "invalid tag \"a+b\": only letters, digits, \"_\", \".\" and \"-\" are allowed"),
        ("alpine:" + String(repeating: "t", count: 129), "invalid tag \"\(String(repeating: "t", count: 129))\": longer than 128 characters"),
        ("alpine@", "invalid digest \"\": expected \"algorithm:hex\""),
        ("alpine@sha256", "invalid digest \"sha256\": expected \"algorithm:hex\""),
        ("alpine@sha256:tooshort", "invalid digest \"sha256:tooshort\": digest value must be hexadecimal"),
        ("alpine@sha256:\(hex32.dropLast())", "invalid digest \"sha256:\(hex32.dropLast())\": digest value has 31 hex digits; at least 32 are required"),
        ("alpine@SHA256:\(hex32)", "invalid digest \"SHA256:\(hex32)\": algorithm must be lowercase letters and digits joined by \"+\", \".\", \"_\" or \"-\""),
        ("alpine@sha256+:\(hex32)", "invalid digest \"sha256+:\(hex32)\": algorithm ends with a separator"),
        ("alpine@:\(hex32)", "invalid digest \":\(hex32)\": algorithm is empty"),
        ("alpine@sha256:\(hex32)@x", "invalid digest \"sha256:\(hex32)@x\": digest value must be hexadecimal"),
        (":tag", "repository name is empty"),
        ("a//b", "repository path has an empty component (leading, trailing or doubled \"/\")"),
        ("/a", "repository path has an empty component (leading, trailing or doubled \"/\")"),
        ("a/", "repository path has an empty component (leading, trailing or doubled \"/\")"),
        ("localhost/", "repository path has an empty component (leading, trailing or doubled \"/\")"),
    ]

    @Test(arguments: invalid)
    func rejectsWithAPreciseMessage(text: String, message: String) {
        #expect(throws: ReferenceError(reference: text, message: message)) {
            try ImageReference(parsing: text)
        }
    }

    static let badComponents = ["_a", "a_", "-a", "a-", ".a", "a.", "a___b", "a..b", "a._b", "a-.b", "a!b", "a b", "é"]

    @Test(arguments: badComponents)
    func rejectsMalformedPathComponents(component: String) {
        let error = #expect(throws: ReferenceError.self) { try ImageReference(parsing: "team/\(component)") }
        #expect(error?.message.hasPrefix("repository name component \"\(component)\" is invalid") == true)
    }

    static let badDomains: [(String, String)] = [
        ("localhost:99999/x", "port \"99999\" is not a number from 0 to 65535"),
        ("localhost:/x", "port \"\" is not a number from 0 to 65535"),
        ("localhost:50a/x", "port \"50a\" is not a number from 0 to 65535"),
        ("[::1/x", "\"[\" without a closing \"]\""),
        ("[zz::1]:5000/x", "\"zz::1\" is not an IPv6 address"),
        ("[1:2:3]/x", "\"1:2:3\" is not an IPv6 address"),
        ("[::1]x/y", "unexpected \"x\" after the IPv6 address"),
        ("my_registry.com/x", "host must be letters and digits, dot-separated, with \"-\" only inside a label"),
        ("-bad.com/x", "host must be letters and digits, dot-separated, with \"-\" only inside a label"),
        ("bad-.com/x", "host must be letters and digits, dot-separated, with \"-\" only inside a label"),
        ("a..com/x", "host must be letters and digits, dot-separated, with \"-\" only inside a label"),
    ]

    @Test(arguments: badDomains)
    func rejectsMalformedDomains(text: String, reason: String) {
        let domain = String(text[..<text.lastIndex(of: "/")!])
        let error = #expect(throws: ReferenceError.self) { try ImageReference(parsing: text) }
        #expect(error?.message == "invalid registry domain \"\(domain)\": \(reason)")
    }

    @Test func nameLengthIsLimited() throws {
        let long = String(repeating: "a", count: 250) + "/bcdef"
        #expect(throws: ReferenceError.self) { try ImageReference(parsing: long) }
        _ = try ImageReference(parsing: String(repeating: "a", count: 249) + "/bcdef")
    }

    @Test func errorDescriptionNamesTheReference() {
        let error = ReferenceError(reference: "x:", message: "invalid tag \"\": tag is empty")
        #expect(error.description == "invalid image reference \"x:\": invalid tag \"\": tag is empty")
    }

    @Test func partValidators() throws {
        try ImageReference.validateTag("v1.0")
        try ImageReference.validateDigest("sha256:\(hex64)")
        #expect(throws: ReferenceError.self) { try ImageReference.validateTag("") }
        #expect(throws: ReferenceError.self) { try ImageReference.validateDigest("sha256:xyz") }
    }
}

@Suite("Registry-insensitive repository matching")
struct RepositoryMatchingTests {
    static let matching: [(String, String)] = [
        ("localhost/pg-ephemeral:abc", "pg-ephemeral"),
        ("pg-ephemeral:abc", "localhost/pg-ephemeral"),
        ("docker.io/library/alpine:3", "alpine"),
        ("docker.io/library/alpine:3", "docker.io/alpine"),
        ("docker.io/library/alpine:3", "library/alpine"),
        ("alpine", "index.docker.io/library/alpine:latest"),
        ("localhost/team/app:1", "docker.io/team/app"),
        ("ghcr.io/o/r:1", "ghcr.io/o/r"),
        ("ghcr.io/o/r:1", "ghcr.io/o/r@sha256:\(hex64)"),
    ]

    static let notMatching: [(String, String)] = [
        ("ghcr.io/o/r", "o/r"),
        ("localhost:5000/app", "app"),
        ("quay.io/library/alpine", "alpine"),
        ("localhost/app", "app2"),
        ("docker.io/library/a/b", "a/b"),
        ("localhost/app", "Not A Reference"),
    ]

    @Test(arguments: matching)
    func matches(stored: String, query: String) throws {
        #expect(try ImageReference(parsing: stored).matchesRepository(query))
    }

    @Test(arguments: notMatching)
    func doesNotMatch(stored: String, query: String) throws {
        #expect(try !ImageReference(parsing: stored).matchesRepository(query))
    }

    @Test func canonicalRepositoryDropsDefaultRegistries() throws {
        #expect(try ImageReference(parsing: "docker.io/library/postgres:16").canonicalRepository == "postgres")
        #expect(try ImageReference(parsing: "localhost/x/y").canonicalRepository == "x/y")
        #expect(try ImageReference(parsing: "ghcr.io/x/y").canonicalRepository == "ghcr.io/x/y")
    }
}
