import Testing

@testable import OcimanCore

@Suite("Request validation (SPEC §6)")
struct ValidationTests {
    // MARK: Container names

    static let validNames = ["a", "7", "db", "pg-ephemeral_1.test", "A-b_C.d", String(repeating: "x", count: 256)]

    @Test(arguments: validNames)
    func acceptsContainerName(_ name: String) throws {
        try Validation.containerName(name)
    }

    static let invalidNames: [(String, String)] = [
        ("", "container name must not be empty"),
        (String(repeating: "x", count: 257), "container name is 257 bytes long; at most 256 are allowed"),
        ("_db", "container name must start with an ASCII letter or digit, not \"_\""),
        (".db", "container name must start with an ASCII letter or digit, not \".\""),
        ("-db", "container name must start with an ASCII letter or digit, not \"-\""),
        ("/db", "container name must start with an ASCII letter or digit, not \"/\""),
        ("éa", "container name must start with an ASCII letter or digit, not byte 0xC3"),
        ("db/x", "container name contains \"/\" at byte 2; only ASCII letters, digits, \"_\", \".\" and \"-\" are allowed"),
        ("d b", "container name contains a space at byte 1; only ASCII letters, digits, \"_\", \".\" and \"-\" are allowed"),
        ("dé", "container name contains byte 0xC3 at byte 1; only ASCII letters, digits, \"_\", \".\" and \"-\" are allowed"),
        ("d\n", "container name contains byte 0x0A at byte 1; only ASCII letters, digits, \"_\", \".\" and \"-\" are allowed"),
    ]

    @Test(arguments: invalidNames)
    func rejectsContainerName(name: String, message: String) {
        #expect(throws: ValidationError(field: "name", message: message)) { try Validation.containerName(name) }
    }

    @Test func nameLengthCountsBytesNotCharacters() {
        // 128 two-byte characters = 256 bytes after the leading letter: 257 bytes.
        let name = "a" + String(repeating: "é", count: 128)
        let error = #expect(throws: ValidationError.self) { try Validation.containerName(name) }
        #expect(error?.message == "container name is 257 bytes long; at most 256 are allowed")
    }

    // MARK: Labels

    @Test func acceptsLibraryStyleLabelKeys() throws {
        let labels = [
            "pg-ephemeral.session": "1", "maintainer": "", "com.example.MixedCase": "v", ".leading": "v",
            "trailing-": "v", "ünïcode": "v", String(repeating: "k", count: 256): String(repeating: "v", count: 65_536),
        ]
        try Validation.labels(labels)
    }

    static let invalidLabels: [([String: String], String, String)] = [
        (["": "v"], "labels", "label key must not be empty"),
        (["a=b": "v"], "labels.a=b", "label key contains \"=\"; \"=\", \",\", whitespace and control characters are not allowed"),
        (["a,b": "v"], "labels.a,b", "label key contains \",\"; \"=\", \",\", whitespace and control characters are not allowed"),
        (["a b": "v"], "labels.a b", "label key contains a space; \"=\", \",\", whitespace and control characters are not allowed"),
        (["a\tb": "v"], "labels.a\tb", "label key contains byte 0x09; \"=\", \",\", whitespace and control characters are not allowed"),
        (["a\u{7F}": "v"], "labels.a\u{7F}", "label key contains byte 0x7F; \"=\", \",\", whitespace and control characters are not allowed"),
        (["a\u{0}": "v"], "labels.a\u{0}", "label key contains byte 0x00; \"=\", \",\", whitespace and control characters are not allowed"),
        ([String(repeating: "k", count: 257): "v"], "labels.\(String(repeating: "k", count: 257))", "label key is 257 bytes long; at most 256 are allowed"),
        (["big": String(repeating: "v", count: 65_537)], "labels.big", "label value is 65537 bytes long; at most 65536 are allowed"),
    ]

    @Test(arguments: invalidLabels)
    func rejectsLabel(labels: [String: String], field: String, message: String) {
        #expect(throws: ValidationError(field: field, message: message)) { try Validation.labels(labels) }
    }

    @Test func firstProblemInKeyByteOrderIsReported() {
        let error = #expect(throws: ValidationError.self) {
            try Validation.labels(["z=": "v", "b b": "v", "a": "ok"], field: "build.labels")
        }
        #expect(error?.field == "build.labels.b b")
    }

    // MARK: Environment

    @Test func acceptsEnvironment() throws {
        try Validation.environment([
            "PATH": "/bin", "EMPTY": "", "MULTI": "line1\nline2\r\n", "lower_case.dots": "x",
            "MAX": String(repeating: "v", count: 65_535),
        ])
    }

    static let invalidEnvironment: [([String: String], String, String)] = [
        (["": "v"], "env", "environment variable name must not be empty"),
        (["A=B": "v"], "env.A=B", "environment variable name must not contain \"=\""),
        (["A\u{0}": "v"], "env.A\u{0}", "environment variable name must not contain a NUL byte"),
        (["A": "x\u{0}y"], "env.A", "environment variable value must not contain a NUL byte"),
        (["A": String(repeating: "v", count: 65_536)], "env.A", "environment variable value is 65536 bytes long; at most 65535 are allowed"),
    ]

    @Test(arguments: invalidEnvironment)
    func rejectsEnvironment(environment: [String: String], field: String, message: String) {
        #expect(throws: ValidationError(field: field, message: message)) { try Validation.environment(environment) }
    }

    // MARK: Build arguments

    @Test func acceptsBuildArguments() throws {
        try Validation.buildArguments(["VERSION": "1=2", "with space": "", "ünïcode": "x"])
    }

    @Test func rejectsBuildArguments() {
        #expect(throws: ValidationError(field: "build_args", message: "build argument name must not be empty")) {
            try Validation.buildArguments(["": "x"])
        }
        #expect(throws: ValidationError(field: "build_args.A=B", message: "build argument name must not contain \"=\"")) {
            try Validation.buildArguments(["A=B": "x"])
        }
    }

    // MARK: References

    @Test func referenceFailuresBecomeFieldErrors() throws {
        let reference = try Validation.imageReference("localhost/busybox:test", field: "image")
        #expect(reference.domain == "localhost")
        #expect(
            throws: ValidationError(
                field: "image", message: "invalid image reference \"Bad\": repository name component \"Bad\" must be lowercase")
        ) { try Validation.imageReference("Bad", field: "image") }
    }

    @Test func errorDescriptionCombinesFieldAndMessage() {
        #expect(ValidationError(field: "labels.x y", message: "m").description == "labels.x y: m")
    }
}
