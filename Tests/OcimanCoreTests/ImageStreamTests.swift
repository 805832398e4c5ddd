import Testing

@testable import OcimanCore

/// Engine messages recorded here: pulls of `localhost:1/nope:1` and
/// `docker.io/library/definitely-not-here:1` (no network), and pulls from a stub registry on
/// 127.0.0.1:5555 answering MANIFEST_UNKNOWN, NAME_UNKNOWN and UNAUTHORIZED (Docker through its
/// compat `POST /images/create`, Podman through libpod `/images/pull?tlsVerify=false`, whose
/// error text is the same containers/image text its compat endpoint streams).
@Suite("Registry error classification")
struct RegistryErrorClassificationTests {
    struct Recorded: Sendable, CustomTestStringConvertible {
        var engine: String
        var status: Int?
        var message: String
        var expected: RegistryErrorCode?
        var testDescription: String { "\(engine) \(status.map(String.init) ?? "stream"): \(message.prefix(60))" }
    }

    static let recorded: [Recorded] = [
        // Docker answers registry failures with an error status before any stream.
        .init(engine: "docker", status: 500, message: "manifest unknown", expected: .notFound),
        .init(engine: "docker", status: 500, message: "name unknown", expected: .notFound),
        .init(engine: "docker", status: 500, message: "unauthorized", expected: .unauthorized),
        .init(
            engine: "docker", status: 404,
            message: "pull access denied for nope, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
            expected: .notFound),
        .init(
            engine: "docker", status: 404,
            message: "manifest for busybox:nope not found: manifest unknown: manifest unknown", expected: .notFound),
        .init(
            engine: "docker", status: 500,
            message: #"Get "http://localhost:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused"#,
            expected: .unreachable),
        .init(
            engine: "docker", status: 500,
            message: #"Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host"#,
            expected: .unreachable),
        // Podman streams every registry failure inside a 200 answer.
        .init(
            engine: "podman", status: nil,
            message: "initializing source docker://localhost:5555/nope:1: reading manifest 1 in localhost:5555/nope: manifest unknown",
            expected: .notFound),
        .init(
            engine: "podman", status: nil,
            message: "initializing source docker://localhost:5555/noname/x:1: reading manifest 1 in localhost:5555/noname/x: name unknown",
            expected: .notFound),
        .init(
            engine: "podman", status: nil,
            message: "initializing source docker://localhost:5555/denied/x:1: reading manifest 1 in localhost:5555/denied/x: unauthorized",
            expected: .unauthorized),
        .init(
            engine: "podman", status: nil,
            message: #"initializing source docker://localhost:1/nope:1: pinging container registry localhost:1: Get "https://localhost:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused"#,
            expected: .unreachable),
        .init(
            engine: "podman", status: nil,
            message: #"initializing source docker://definitely-not-here:1: pinging container registry registry-1.docker.io: Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host"#,
            expected: .unreachable),
        .init(
            engine: "podman", status: nil,
            message: #"initializing source docker://localhost:5555/nope:1: pinging container registry localhost:5555: Get "https://localhost:5555/v2/": EOF"#,
            expected: .unreachable),
        .init(
            engine: "podman", status: nil,
            message: #"trying to reuse blob sha256:8ff2 at destination: pinging container registry localhost:5555: Get "https://localhost:5555/v2/": tls: first record does not look like a TLS handshake"#,
            expected: .unreachable),
        // Not a registry failure at all.
        .init(
            engine: "docker", status: nil, message: "An image does not exist locally with the tag: localhost:1/pushme",
            expected: nil),
    ]

    @Test(arguments: recorded)
    func classifiesRecordedEngineMessages(_ case: Recorded) {
        #expect(RegistryErrorCode.classify(status: `case`.status, message: `case`.message) == `case`.expected)
    }

    @Test func codesAreTheContractSpelling() {
        #expect(RegistryErrorCode.notFound.rawValue == "not_found")
        #expect(RegistryErrorCode.unreachable.rawValue == "unreachable")
    }
}
