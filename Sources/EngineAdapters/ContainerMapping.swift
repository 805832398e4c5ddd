import EngineDriver
import Foundation
import OcimanCore

/// Containers between the Engine API's shapes (shared by Docker and Podman's compat and
/// libpod answers) and the runtime's.
enum ContainerMapping {
    /// The engine's create body: port bindings keyed `<port>/<protocol>`, environment as
    /// sorted `KEY=VALUE` entries.
    static func createBody(_ config: ContainerConfig) -> ContainerCreateConfig {
        var bindings: [String: [PortBinding]] = [:]
        for publish in config.publish {
            let key = "\(publish.containerPort)/\(publish.protocol.rawValue)"
            let hostPort = publish.hostPort.flatMap { $0 == 0 ? nil : String($0) } ?? ""
            bindings[key, default: []].append(PortBinding(hostIP: publish.hostIP ?? "", hostPort: hostPort))
        }
        let mounts = config.mounts.map { mount in
            MountConfig(type: mountKind(mount.kind), source: mount.source, target: mount.target, readOnly: mount.readOnly)
        }
        var body = ContainerCreateConfig(
            image: config.image,
            cmd: config.command,
            entrypoint: config.entrypoint,
            env: environment(config.environment),
            labels: config.labels,
            workingDir: config.workdir,
            user: config.user,
            exposedPorts: bindings.isEmpty ? nil : bindings.mapValues { _ in .init() },
            hostConfig: HostConfig(
                portBindings: bindings.isEmpty ? nil : bindings, mounts: mounts.isEmpty ? nil : mounts,
                autoRemove: config.autoRemove)
        )
        body.tty = config.tty
        body.openStdin = config.openStdin
        return body
    }

    /// Sorted, so the same request makes the same body.
    static func environment(_ variables: [String: String]) -> [String]? {
        variables.isEmpty ? nil : variables.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    static func mountKind(_ kind: MountSpec.Kind) -> MountConfig.Kind {
        switch kind {
        case .bind: .bind
        case .volume: .volume
        case .tmpfs: .tmpfs
        }
    }

    static func inspected(_ inspect: ContainerInspect) -> InspectedContainer {
        InspectedContainer(
            container: container(from: inspect), processID: inspect.state.pid ?? 0, tty: inspect.config?.tty ?? false)
    }

    static func container(from inspect: ContainerInspect) -> Container {
        var ports: [PublishedPort] = []
        for (key, bindings) in inspect.networkSettings?.ports ?? [:] {
            let parts = key.split(separator: "/")
            guard let containerPort = parts.first.flatMap({ Int($0) }) else { continue }
            let proto: PortProtocol = parts.count > 1 && parts[1] == "udp" ? .udp : .tcp
            for binding in bindings ?? [] {
                guard let hostPort = binding.hostPort.flatMap({ Int($0) }), hostPort > 0 else { continue }
                let hostIP = binding.hostIP.flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
                ports.append(PublishedPort(containerPort: containerPort, protocol: proto, hostIP: hostIP, hostPort: hostPort))
            }
        }
        ports.sort { ($0.containerPort, $0.protocol.rawValue, $0.hostIP) < ($1.containerPort, $1.protocol.rawValue, $1.hostIP) }
        let settings = inspect.networkSettings
        let ipAddress = [settings?.ipAddress].compactMap { $0 }.first { !$0.isEmpty }
            ?? settings?.networks?.sorted { $0.key < $1.key }.compactMap(\.value.ipAddress).first { !$0.isEmpty }
        let state = inspect.state
        let finishedAt = engineTime(state.finishedAt)
        return Container(
            id: inspect.id,
            name: strippedName(inspect.name),
            image: inspect.config?.image ?? "",
            state: ContainerState(
                status: state.status,
                running: state.running,
                // An exit code means something only once the container has exited.
                exitCode: finishedAt != nil && !state.running ? state.exitCode : nil,
                startedAt: engineTime(state.startedAt),
                finishedAt: finishedAt),
            labels: inspect.config?.labels ?? [:],
            ports: ports,
            ipAddress: ipAddress,
            created: inspect.created
        )
    }

    static func summary(from entry: ContainerListEntry) -> ContainerSummary {
        let created: String
        switch entry.created {
        case .unixSeconds(let seconds): created = Date(timeIntervalSince1970: Double(seconds)).formatted(.iso8601)
        case .text(let text): created = text
        }
        return ContainerSummary(
            id: entry.id,
            name: entry.names.first.map(strippedName) ?? "",
            image: entry.image,
            state: ContainerState(
                status: entry.state, running: entry.state == "running",
                exitCode: entry.exited == true ? entry.exitCode : nil),
            labels: entry.labels,
            created: created)
    }

    /// The engines match the `name` filter as a regular expression anywhere in the name:
    /// anchored here (names allow only `.` of the metacharacters), exact matches kept after.
    static func nameFilter(_ name: String?) -> String? {
        name.map { "^/?" + $0.replacingOccurrences(of: ".", with: "\\.") + "$" }
    }

    static func summaries(_ entries: [ContainerListEntry], named name: String?) -> [ContainerSummary] {
        entries.compactMap { entry in
            let summary = summary(from: entry)
            if let name, summary.name != name { return nil }
            return summary
        }
    }

    /// Docker prefixes names with `/`.
    static func strippedName(_ name: String) -> String {
        name.hasPrefix("/") ? String(name.dropFirst()) : name
    }

    /// The engines report "never" as Go's zero time.
    static func engineTime(_ text: String?) -> String? {
        guard let text, !text.isEmpty, !text.hasPrefix("0001-01-01") else { return nil }
        return text
    }
}
