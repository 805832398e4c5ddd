import OcimanCore
import Testing

@testable import EngineAdapters

/// SPEC §3 as a table: environment, config file and which sockets answer → selection or error text.
@Suite("Backend selection")
struct BackendSelectionTests {
    struct Case: Sendable, CustomStringConvertible {
        var name: String
        var variables: [String: String] = [:]
        var config: String? = nil
        var answering: Set<String> = []
        var podmanBinary = false
        var expected: Result<BackendSelection, BackendSelectionError>
        var description: String { name }
    }

    static let dockerSocket = "/var/run/docker.sock"
    static let podmanSocket = "/run/podman/podman.sock"

    static let cases: [Case] = [
        Case(
            name: "override docker, docker answers", variables: ["OCIMAN_BACKEND": "docker"],
            answering: [dockerSocket, podmanSocket],
            expected: .success(.init(kind: .docker, endpoint: .socket(dockerSocket)))),
        Case(
            name: "override podman wins over an answering docker", variables: ["OCIMAN_BACKEND": "podman"],
            answering: [dockerSocket, podmanSocket],
            expected: .success(.init(kind: .podman, endpoint: .socket(podmanSocket)))),
        Case(
            name: "override with a typo", variables: ["OCIMAN_BACKEND": "dockr"], answering: [dockerSocket],
            expected: .failure(.invalidOverride("dockr"))),
        Case(
            name: "empty override is invalid", variables: ["OCIMAN_BACKEND": ""], answering: [dockerSocket],
            expected: .failure(.invalidOverride(""))),
        Case(
            name: "override docker, nothing answers", variables: ["OCIMAN_BACKEND": "docker"],
            answering: [podmanSocket],
            expected: .failure(.unreachable(.docker, tried: ["unix://\(dockerSocket)"]))),
        Case(
            name: "override podman, nothing answers, no binary", variables: ["OCIMAN_BACKEND": "podman"],
            expected: .failure(
                .unreachable(.podman, tried: ["unix://\(podmanSocket)", "podman binary (not installed)"]))),
        Case(
            name: "override podman, no socket but binary: private service",
            variables: ["OCIMAN_BACKEND": "podman"], podmanBinary: true,
            expected: .success(.init(kind: .podman, endpoint: .privatePodmanService))),
        Case(
            name: "OCIMAN_PODMAN_SERVICE=private skips answering sockets",
            variables: ["OCIMAN_BACKEND": "podman", "OCIMAN_PODMAN_SERVICE": "private"], answering: [podmanSocket],
            podmanBinary: true, expected: .success(.init(kind: .podman, endpoint: .privatePodmanService))),
        Case(
            name: "OCIMAN_PODMAN_SERVICE=private without the binary",
            variables: ["OCIMAN_BACKEND": "podman", "OCIMAN_PODMAN_SERVICE": "private"], answering: [podmanSocket],
            expected: .failure(
                .unreachable(.podman, tried: ["podman binary (not installed; OCIMAN_PODMAN_SERVICE=private)"]))),
        Case(
            name: "auto prefers docker", answering: [dockerSocket, podmanSocket],
            expected: .success(.init(kind: .docker, endpoint: .socket(dockerSocket)))),
        Case(
            name: "auto falls back to podman", answering: [podmanSocket],
            expected: .success(.init(kind: .podman, endpoint: .socket(podmanSocket)))),
        Case(
            name: "config prefers podman", config: "default_backend = \"podman\"\n",
            answering: [dockerSocket, podmanSocket],
            expected: .success(.init(kind: .podman, endpoint: .socket(podmanSocket)))),
        Case(
            name: "config auto with comments", config: "# ociman\ndefault_backend = \"auto\" # either\n",
            answering: [dockerSocket, podmanSocket],
            expected: .success(.init(kind: .docker, endpoint: .socket(dockerSocket)))),
        Case(
            name: "config docker still falls back to podman", config: "default_backend = \"docker\"",
            answering: [podmanSocket],
            expected: .success(.init(kind: .podman, endpoint: .socket(podmanSocket)))),
        Case(
            name: "config unknown key", config: "default_backend = \"docker\"\nbackend = \"x\"\n",
            answering: [dockerSocket],
            expected: .failure(.invalidConfig("line 2: unknown key \"backend\""))),
        Case(
            name: "config bad value", config: "default_backend = \"lxc\"", answering: [dockerSocket],
            expected: .failure(
                .invalidConfig("line 1: default_backend must be \"auto\", \"docker\" or \"podman\""))),
        Case(
            name: "override ignores a broken config", variables: ["OCIMAN_BACKEND": "docker"],
            config: "nonsense", answering: [dockerSocket],
            expected: .success(.init(kind: .docker, endpoint: .socket(dockerSocket)))),
        Case(
            name: "DOCKER_HOST unix path", variables: ["DOCKER_HOST": "unix:///tmp/d.sock"],
            answering: ["/tmp/d.sock"],
            expected: .success(.init(kind: .docker, endpoint: .socket("/tmp/d.sock")))),
        Case(
            name: "DOCKER_HOST plain tcp beyond loopback is refused", variables: ["DOCKER_HOST": "tcp://10.0.0.1:2375"],
            answering: [dockerSocket],
            expected: .failure(.plainTextTCP(variable: "DOCKER_HOST", value: "tcp://10.0.0.1:2375"))),
        Case(
            name: "CONTAINER_HOST before XDG_RUNTIME_DIR before the root path",
            variables: [
                "OCIMAN_BACKEND": "podman", "CONTAINER_HOST": "unix:///tmp/c.sock", "XDG_RUNTIME_DIR": "/run/user/1000",
            ],
            answering: ["/tmp/c.sock", "/run/user/1000/podman/podman.sock", podmanSocket],
            expected: .success(.init(kind: .podman, endpoint: .socket("/tmp/c.sock")))),
        Case(
            name: "XDG_RUNTIME_DIR socket", variables: ["OCIMAN_BACKEND": "podman", "XDG_RUNTIME_DIR": "/run/user/1000"],
            answering: ["/run/user/1000/podman/podman.sock", podmanSocket],
            expected: .success(.init(kind: .podman, endpoint: .socket("/run/user/1000/podman/podman.sock")))),
        Case(
            name: "nothing anywhere",
            expected: .failure(
                .noEngine(tried: [
                    "unix://\(dockerSocket)", "unix://\(podmanSocket)", "podman binary (not installed)",
                ]))),
    ]

    @Test(arguments: cases)
    func select(_ testCase: Case) async {
        let answering = testCase.answering
        let environment = BackendEnvironment(
            variables: testCase.variables,
            configFile: testCase.config,
            podmanBinaryExists: testCase.podmanBinary,
            probe: { address in
                if case .unix(let path) = address, answering.contains(path) { return nil }
                return ""
            }
        )
        let outcome: Result<BackendSelection, BackendSelectionError>
        do {
            outcome = .success(try await BackendSelector.select(environment))
        } catch let error as BackendSelectionError {
            outcome = .failure(error)
        } catch {
            Issue.record("unexpected error \(error)")
            return
        }
        #expect(outcome == testCase.expected)
    }

    @Test("error texts name what to fix")
    func messages() {
        #expect(
            BackendSelectionError.invalidOverride("dockr").description
                == "invalid OCIMAN_BACKEND \"dockr\": expected \"docker\" or \"podman\"")
        #expect(
            BackendSelectionError.unreachable(.docker, tried: ["unix:///var/run/docker.sock"]).description
                == "OCIMAN_BACKEND=docker but no Docker engine answers (tried unix:///var/run/docker.sock)")
        #expect(
            BackendSelectionError.unsupportedHost(variable: "DOCKER_HOST", value: "npipe:///x").description
                == "DOCKER_HOST=\"npipe:///x\" is not supported: expected unix://PATH, tcp://HOST[:PORT] or ssh://[USER@]HOST[:PORT]")
        #expect(
            BackendSelectionError.plainTextTCP(variable: "DOCKER_HOST", value: "tcp://10.0.0.1:2375").description
                == "DOCKER_HOST=\"tcp://10.0.0.1:2375\" would send root-equivalent engine access in plain text beyond loopback: "
                + "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or allow it with --allow-plain-tcp (OCIMAN_ALLOW_PLAIN_TCP=true)")
    }
}
