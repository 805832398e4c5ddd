import EngineDriver
import OcimanCore

/// Docker through its Engine API. Docker classifies its own errors (404, 409, 400), so most
/// calls map one to one.
final class DockerEngine: CompatibleEngine {
    let client: EngineClient
    let kind = BackendKind.docker
    let commitsWithEmptyConfig = false
    let speaksLibpod = false
    let bridgeNetwork = "bridge"
    let version = EngineVersionCache()
    let publishedPortHost: String?

    init(client: EngineClient, publishedPortHost: String? = nil) {
        self.client = client
        self.publishedPortHost = publishedPortHost
    }

    /// Docker lists rootless mode among its security options, as `name=rootless`.
    func isRootless() async throws -> Bool {
        try await client.securityOptions().contains { $0.split(separator: ",").contains("name=rootless") }
    }

    func createContainer(_ config: ContainerConfig) async throws -> String {
        try await createCompatContainer(config)
    }

    func inspectContainer(_ id: String) async throws -> InspectedContainer {
        ContainerMapping.inspected(try await classified { try await client.inspectContainer(id) }, publishedPortHost: publishedPortHost)
    }

    func listContainers(labels: [String], name: String?) async throws -> [ContainerSummary] {
        let entries = try await classified {
            try await client.listContainers(labels: labels, nameFilter: ContainerMapping.nameFilter(name))
        }
        return ContainerMapping.summaries(entries, named: name)
    }

    func killContainer(_ id: String, signal: String) async throws {
        try await classified { try await client.killContainer(id, signal: signal) }
    }

    func removeContainer(_ id: String, force: Bool) async throws {
        try await classified { try await client.removeContainer(id, force: force) }
    }

    func waitContainer(_ id: String, until condition: ContainerWaitCondition) async throws -> Int {
        try await classified { try await client.waitContainer(id, condition: Self.compatCondition(condition)) }
    }

    static func compatCondition(_ condition: ContainerWaitCondition) -> WaitCondition {
        switch condition {
        case .notRunning: .notRunning
        case .nextExit: .nextExit
        case .removed: .removed
        }
    }


    /// Docker's own words, but for a health change, `health_status: <status>`.
    static func eventKind(type: String, action: String) -> EngineEvent.Kind? {
        switch (type, action) {
        case ("container", "create"): .create
        case ("container", "start"): .start
        case ("container", "die"): .die
        case ("container", "oom"): .oom
        case ("container", "destroy"): .destroy
        case ("container", let action) where action.hasPrefix("health_status"): .healthStatus
        case ("image", "tag"): .tag
        case ("image", "untag"): .untag
        case ("image", "delete"): .delete
        case ("image", "pull"): .pull
        case ("image", "push"): .push
        default: nil
        }
    }

    /// Docker answers 409 for a container that is not running.
    func createExec(in container: String, _ options: ExecOptions) async throws -> String {
        try await createCompatExec(in: container, options)
    }
}
