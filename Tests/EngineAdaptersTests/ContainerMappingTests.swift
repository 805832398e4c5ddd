import EngineDriver
import Foundation
import Testing

@testable import EngineAdapters
@testable import OcimanCore

@Suite("Containers between the Engine API and the runtime")
struct ContainerMappingTests {
    static let image = "localhost/busybox:test"

    @Test func createBodyGroupsBindingsAndSortsTheEnvironment() throws {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        let spec = RunSpec(
            image: Self.image, command: [], env: ["B": "2", "A": "x\ny"], labels: ["k": "v"],
            publish: [
                PublishSpec(containerPort: 8080, hostIP: "127.0.0.1"), PublishSpec(containerPort: 8080, hostIP: "::1", hostPort: 9000),
                PublishSpec(containerPort: 53, protocol: .udp, hostPort: 0),
            ],
            mounts: [MountSpec(kind: .tmpfs, target: "/t")], ttlSeconds: 60, session: "s1")
        let config = ContainerMapping.createBody(Runtime.createConfig(for: spec, now: now))
        #expect(config.labels["k"] == "v")
        #expect(config.cmd == nil, "an empty command keeps the image's")
        #expect(config.env == ["A=x\ny", "B=2"])
        #expect(config.hostConfig.portBindings == [
            "8080/tcp": [PortBinding(hostIP: "127.0.0.1", hostPort: ""), PortBinding(hostIP: "::1", hostPort: "9000")],
            "53/udp": [PortBinding(hostIP: "", hostPort: "")],
        ])
        #expect(Set(config.exposedPorts?.keys.map { $0 } ?? []) == ["8080/tcp", "53/udp"])
        #expect(config.hostConfig.mounts == [MountConfig(type: .tmpfs, source: nil, target: "/t", readOnly: false)])
    }

    // MARK: What the engine answers

    @Test func inspectMapsPortsStateAndName() throws {
        let json = """
            {"Id":"abc","Name":"/web","Created":"2025-01-15T10:04:05.1Z",
             "State":{"Status":"running","Running":true,"ExitCode":0,"StartedAt":"2025-01-15T10:04:05.4Z","FinishedAt":"0001-01-01T00:00:00Z"},
             "Config":{"Image":"localhost/busybox:test","Labels":{"a":"b"}},
             "NetworkSettings":{"IPAddress":"","Networks":{"podman":{"IPAddress":"10.88.0.5"}},
               "Ports":{"8080/tcp":[{"HostIp":"::1","HostPort":"35751"},{"HostIp":"127.0.0.1","HostPort":"42293"}],
                        "53/udp":[{"HostIp":"","HostPort":"40000"}],"9/tcp":null}}}
            """
        let inspect = try JSONDecoder().decode(ContainerInspect.self, from: Data(json.utf8))
        let container = ContainerMapping.container(from: inspect)
        #expect(container.name == "web")
        #expect(container.image == "localhost/busybox:test")
        #expect(container.ipAddress == "10.88.0.5")
        #expect(container.state == ContainerState(status: "running", running: true, startedAt: "2025-01-15T10:04:05.4Z"))
        #expect(container.ports == [
            PublishedPort(containerPort: 53, protocol: .udp, hostIP: "0.0.0.0", hostPort: 40000),
            PublishedPort(containerPort: 8080, protocol: .tcp, hostIP: "127.0.0.1", hostPort: 42293),
            PublishedPort(containerPort: 8080, protocol: .tcp, hostIP: "::1", hostPort: 35751),
        ])
    }

    @Test func exitedContainerReportsItsExitCode() throws {
        let json = """
            {"Id":"abc","Name":"x","Created":"c","State":{"Status":"exited","Running":false,"ExitCode":3,
             "StartedAt":"s","FinishedAt":"f"}}
            """
        let container = ContainerMapping.container(from: try JSONDecoder().decode(ContainerInspect.self, from: Data(json.utf8)))
        #expect(container.state.exitCode == 3)
        #expect(container.ports.isEmpty && container.labels.isEmpty)
    }

    @Test func listEntriesFromBothAPIs() throws {
        let compat = """
            [{"Id":"a","Names":["/web"],"Image":"img","State":"exited","Labels":null,"Created":1700000000}]
            """
        let libpod = """
            [{"Id":"b","Names":["db"],"Image":"img","State":"exited","Labels":{"k":"v"},
              "Created":"2025-01-15T10:04:05.1Z","ExitCode":4,"Exited":true}]
            """
        let docker = try JSONDecoder().decode([ContainerListEntry].self, from: Data(compat.utf8)).map(ContainerMapping.summary)
        #expect(docker == [
            ContainerSummary(
                id: "a", name: "web", image: "img", state: ContainerState(status: "exited", running: false), labels: [:],
                created: "2023-11-14T22:13:20Z")
        ])
        let podman = try JSONDecoder().decode([ContainerListEntry].self, from: Data(libpod.utf8)).map(ContainerMapping.summary)
        #expect(podman.first?.state == ContainerState(status: "exited", running: false, exitCode: 4))
        #expect(podman.first?.created == "2025-01-15T10:04:05.1Z")
    }
}
