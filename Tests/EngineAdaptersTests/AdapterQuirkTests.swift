import EngineDriver
import Testing

@testable import EngineAdapters
@testable import OcimanCore

/// What each adapter sends and how it reads the answers, against a scripted engine socket.
@Suite("Docker and Podman adapters against a scripted engine")
struct AdapterQuirkTests {
    static let dockerPing = ScriptedEngineSocket.Answer(status: 200, headers: [("Api-Version", "1.43")], body: "OK")
    static let podmanPing = ScriptedEngineSocket.Answer(
        status: 200, headers: [("Api-Version", "1.41"), ("Libpod-Api-Version", "4.3.1")], body: "OK")

    private func client(_ socket: ScriptedEngineSocket) -> EngineClient {
        EngineClient(socketPath: socket.path, defaultTimeout: .seconds(5))
    }

    @Test func dockerNegotiatesTheVersionFromPingAndReportsRootlessAndTheBridge() async throws {
        let socket = try await ScriptedEngineSocket { _, target in
            switch target {
            case "/_ping": Self.dockerPing
            case "/v1.43/version": .init(status: 200, body: #"{"Version":"24.0.7","ApiVersion":"1.43"}"#)
            case "/v1.43/info": .init(status: 200, body: #"{"SecurityOptions":["name=seccomp,profile=default","name=rootless"]}"#)
            case "/v1.43/networks/bridge":
                .init(status: 200, body: #"{"Name":"bridge","IPAM":{"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]}}"#)
            default: .init(status: 404, body: #"{"message":"no route"}"#)
            }
        }
        let engine = DockerEngine(client: client(socket))
        try await engine.connect()
        let info = try await engine.info()
        #expect(info == EngineInfo(version: "24.0.7", apiVersion: "1.43", rootless: true, bridgeSubnets: ["172.17.0.0/16"], hostGateway: "172.17.0.1"))
        #expect(socket.requests.filter { $0.hasSuffix("/version") }.count == 1, "the version is read once")
        await socket.close()
    }

    @Test func anAdapterRefusesTheOtherEngine() async throws {
        let socket = try await ScriptedEngineSocket { _, _ in Self.dockerPing }
        let error = await #expect(throws: EngineFailure.self) { try await PodmanEngine(client: client(socket)).connect() }
        #expect(error?.message.contains("is Docker, not podman") == true)
        await socket.close()
    }

    @Test func podmansFiveHundredsBecomeConflictsByTheContainersState() async throws {
        let socket = try await ScriptedEngineSocket { method, target in
            switch (method, target) {
            case (_, "/_ping"): Self.podmanPing
            case ("POST", let target) where target.hasPrefix("/v1.41/containers/db/kill"):
                .init(status: 500, body: #"{"cause":"container state improper","message":"can only kill running containers","response":500}"#)
            case ("POST", "/v1.41/containers/db/exec"):
                .init(status: 500, body: #"{"cause":"container state improper","message":"container is stopped","response":500}"#)
            case ("GET", "/v4.3.1/libpod/containers/db/json"):
                .init(status: 200, body: #"{"Id":"db1","Name":"db","Created":"c","State":{"Status":"exited","Running":false,"ExitCode":0}}"#)
            default: .init(status: 404, body: #"{"cause":"no such container","message":"no container with name or ID","response":404}"#)
            }
        }
        let engine = PodmanEngine(client: client(socket))
        await #expect(throws: EngineFailure.conflict("container db is not running")) {
            try await engine.killContainer("db", signal: "SIGKILL")
        }
        await #expect(throws: EngineFailure.conflict("container db is not running")) {
            _ = try await engine.createExec(in: "db", ExecOptions(command: ["true"]))
        }
        // Podman's `message`, not its `cause`, is what a client reads.
        await #expect(throws: EngineFailure.notFound("no container with name or ID")) {
            _ = try await engine.inspectContainer("ghost")
        }
        await socket.close()
    }

    @Test func podmanWaitsWithItsOwnTenMillisecondPoll() async throws {
        let socket = try await ScriptedEngineSocket { _, target in
            target == "/_ping" ? Self.podmanPing : .init(status: 200, body: "7")
        }
        #expect(try await PodmanEngine(client: client(socket)).waitContainer("db", until: .notRunning) == 7)
        #expect(socket.requests.last == "POST /v4.3.1/libpod/containers/db/wait?condition=exited&condition=stopped&interval=10ms")
        await socket.close()
    }

    @Test func dockerWaitsAndCommitsOnTheCompatAPI() async throws {
        let socket = try await ScriptedEngineSocket { _, target in
            if target == "/_ping" { return Self.dockerPing }
            if target.hasPrefix("/v1.43/commit") { return .init(status: 201, body: #"{"Id":"sha256:abc"}"#) }
            return .init(status: 200, body: #"{"StatusCode":3}"#)
        }
        let engine = DockerEngine(client: client(socket))
        #expect(try await engine.waitContainer("db", until: .nextExit) == 3)
        #expect(socket.requests.last == "POST /v1.43/containers/db/wait?condition=next-exit")
        let image = try await engine.commitContainer("db", repository: "localhost/x", tag: "1", pause: false, changes: [])
        #expect(image == "sha256:abc")
        #expect(socket.requests.last == "POST /v1.43/commit?container=db&repo=localhost%2Fx&tag=1&pause=false")
        await socket.close()
    }
}
