import EngineDriver
import OcimanCore
import Testing

@testable import EngineAdapters

/// DOCKER_HOST / CONTAINER_HOST as the docker CLI and Podman read them.
@Suite("Engine addresses")
struct EngineAddressTests {
    static let certs = ["DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"]

    static func parse(_ value: String, _ kind: BackendKind = .docker, _ variables: [String: String] = [:]) throws -> EngineAddress {
        try EngineAddress.parse(value, variable: kind == .docker ? "DOCKER_HOST" : "CONTAINER_HOST", kind: kind, variables: variables)
    }

    @Test("unix, tcp with TLS, ssh for Docker and Podman")
    func accepted() throws {
        #expect(try Self.parse("unix:///var/run/docker.sock") == .unix("/var/run/docker.sock"))
        #expect(
            try Self.parse("tcp://docker:2376", .docker, Self.certs)
                == .tcp(host: "docker", port: 2376, tls: EngineTLSFiles(directory: "/certs")))
        // The docker CLI's defaults: port 2376 with TLS, the files in ~/.docker.
        #expect(
            try Self.parse("tcp://docker", .docker, ["DOCKER_TLS_VERIFY": "1", "HOME": "/home/u"])
                == .tcp(host: "docker", port: 2376, tls: EngineTLSFiles(directory: "/home/u/.docker")))
        #expect(try Self.parse("tcp://127.0.0.1:2375") == .tcp(host: "127.0.0.1", port: 2375, tls: nil))
        #expect(try Self.parse("tcp://[::1]:2375") == .tcp(host: "::1", port: 2375, tls: nil))
        #expect(
            try Self.parse("tcp://10.0.0.5:2375", .docker, ["OCIMAN_ALLOW_PLAIN_TCP": "true"])
                == .tcp(host: "10.0.0.5", port: 2375, tls: nil))
        #expect(
            try Self.parse("ssh://ci@build-host:2222")
                == .ssh(SSHDestination(user: "ci", host: "build-host", port: 2222), socketPath: nil))
        #expect(try Self.parse("ssh://build-host") == .ssh(SSHDestination(user: nil, host: "build-host", port: nil), socketPath: nil))
        #expect(
            try Self.parse("ssh://root@host/run/podman/podman.sock", .podman)
                == .ssh(SSHDestination(user: "root", host: "host", port: nil), socketPath: "/run/podman/podman.sock"))
        #expect(try Self.parse("ssh://ci@build-host:2222").description == "ssh://ci@build-host:2222")
    }

    @Test("plain text beyond loopback, unknown schemes and malformed addresses are refused")
    func refused() {
        #expect(throws: BackendSelectionError.plainTextTCP(variable: "DOCKER_HOST", value: "tcp://10.0.0.5:2375")) {
            try Self.parse("tcp://10.0.0.5:2375")
        }
        #expect(throws: BackendSelectionError.plainTextTCP(variable: "CONTAINER_HOST", value: "tcp://db:8080")) {
            try Self.parse("tcp://db:8080", .podman, Self.certs)
        }
        #expect(throws: BackendSelectionError.sshWithoutSocket(variable: "CONTAINER_HOST", value: "ssh://root@host")) {
            try Self.parse("ssh://root@host", .podman)
        }
        for value in ["npipe:////./pipe/docker", "unix://", "tcp://:2375", "tcp://host:99999", "ssh://@host", "ssh://host/path", "docker.sock"] {
            #expect(throws: BackendSelectionError.unsupportedHost(variable: "DOCKER_HOST", value: value)) {
                try Self.parse(value, .docker, Self.certs)
            }
        }
    }
}
