import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func runContainer(_ input: Operations.RunContainer.Input) async throws -> Operations.RunContainer.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected JSON") }
        let container = try await runtime.runContainer(RunSpec(request))
        return .created(.init(body: .json(try .init(container))))
    }

    public func listContainers(_ input: Operations.ListContainers.Input) async throws -> Operations.ListContainers.Output {
        let summaries = try await runtime.listContainers(labels: input.query.label ?? [], name: input.query.name)
        return .ok(.init(body: .json(try summaries.map(Components.Schemas.ContainerSummary.init))))
    }

    public func inspectContainer(_ input: Operations.InspectContainer.Input) async throws -> Operations.InspectContainer.Output {
        let container = try await runtime.inspect(input.path.id)
        return .ok(.init(body: .json(try .init(container))))
    }

    public func removeContainer(_ input: Operations.RemoveContainer.Input) async throws -> Operations.RemoveContainer.Output {
        try await runtime.remove(input.path.id, force: input.query.force ?? false)
        return .noContent(.init())
    }

    public func stopContainer(_ input: Operations.StopContainer.Input) async throws -> Operations.StopContainer.Output {
        try await runtime.stop(input.path.id, timeoutSeconds: input.query.timeout ?? 10)
        return .noContent(.init())
    }

    public func killContainer(_ input: Operations.KillContainer.Input) async throws -> Operations.KillContainer.Output {
        try await runtime.kill(input.path.id, signal: input.query.signal ?? "SIGKILL")
        return .noContent(.init())
    }

    public func waitContainer(_ input: Operations.WaitContainer.Input) async throws -> Operations.WaitContainer.Output {
        let condition = ContainerWaitCondition(input.query.condition ?? .notRunning)
        let code = try await runtime.wait(input.path.id, condition: condition, timeoutSeconds: input.query.timeout)
        return .ok(.init(body: .json(.init(exitCode: code))))
    }

    public func commitContainer(_ input: Operations.CommitContainer.Input) async throws -> Operations.CommitContainer.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected JSON") }
        let result = try await runtime.commit(
            input.path.id, reference: request.reference, pause: request.pause ?? false, changes: request.changes ?? [])
        return .created(.init(body: .json(.init(imageId: result.imageID, reference: result.reference))))
    }
}

extension RunSpec {
    init(_ request: Components.Schemas.RunContainerRequest) {
        self.init(
            image: request.image,
            name: request.name,
            command: request.command,
            entrypoint: request.entrypoint,
            env: request.env?.additionalProperties ?? [:],
            labels: request.labels?.additionalProperties ?? [:],
            publish: (request.publish ?? []).map { publish in
                PublishSpec(
                    containerPort: publish.containerPort,
                    protocol: PortProtocol(publish._protocol ?? .tcp),
                    hostIP: publish.hostIp,
                    hostPort: publish.hostPort)
            },
            mounts: (request.mounts ?? []).map { mount in
                MountSpec(
                    kind: MountSpec.Kind(mount._type), source: mount.source, target: mount.target,
                    readOnly: mount.readOnly ?? false)
            },
            workdir: request.workdir,
            user: request.user,
            autoRemove: request.autoRemove ?? false,
            pullPolicy: PullPolicy(request.pullPolicy ?? .missing),
            wait: request.wait.map { wait in
                ReadinessWait(
                    timeoutSeconds: wait.timeoutSeconds,
                    tcpPort: wait.tcpPort,
                    log: wait.log.map { .init(pattern: $0.pattern, occurrences: $0.occurrences ?? 1) },
                    exec: wait.exec?.command)
            },
            ttlSeconds: request.ttlSeconds,
            session: request.session
        )
        tty = request.tty ?? false
        stdinOpen = request.stdinOpen ?? false
    }
}

// The contract's enums to the core's, case by case: a case added to either side fails to compile here.

extension ContainerWaitCondition {
    init(_ condition: Operations.WaitContainer.Input.Query.ConditionPayload) {
        switch condition {
        case .notRunning: self = .notRunning
        case .nextExit: self = .nextExit
        case .removed: self = .removed
        }
    }
}

extension PortProtocol {
    init(_ proto: Components.Schemas.PortProtocol) {
        switch proto {
        case .tcp: self = .tcp
        case .udp: self = .udp
        }
    }
}

extension Components.Schemas.PortProtocol {
    init(_ proto: PortProtocol) {
        switch proto {
        case .tcp: self = .tcp
        case .udp: self = .udp
        }
    }
}

extension MountSpec.Kind {
    init(_ kind: Components.Schemas.Mount._TypePayload) {
        switch kind {
        case .bind: self = .bind
        case .volume: self = .volume
        case .tmpfs: self = .tmpfs
        }
    }
}

extension PullPolicy {
    init(_ policy: Components.Schemas.RunContainerRequest.PullPolicyPayload) {
        switch policy {
        case .missing: self = .missing
        case .always: self = .always
        case .never: self = .never
        }
    }
}

extension Components.Schemas.ContainerState {
    init(_ state: OcimanCore.ContainerState) {
        self.init(
            status: state.status, running: state.running, exitCode: state.exitCode,
            startedAt: EngineTime.optional(state.startedAt), finishedAt: EngineTime.optional(state.finishedAt))
    }
}

extension Components.Schemas.Container {
    init(_ container: OcimanCore.Container) throws(OcimanError) {
        self.init(
            id: container.id,
            name: container.name,
            image: container.image,
            state: .init(container.state),
            labels: .init(additionalProperties: container.labels),
            ports: container.ports.map { port in
                .init(
                    containerPort: port.containerPort, _protocol: .init(port.protocol),
                    hostIp: port.hostIP, hostPort: port.hostPort)
            },
            ipAddress: container.ipAddress,
            created: try EngineTime.required(container.created, "the creation time of container \(container.id)"))
    }
}

extension Components.Schemas.ContainerSummary {
    init(_ summary: OcimanCore.ContainerSummary) throws(OcimanError) {
        self.init(
            id: summary.id, name: summary.name, image: summary.image, state: .init(summary.state),
            labels: .init(additionalProperties: summary.labels),
            created: try EngineTime.required(summary.created, "the creation time of container \(summary.id)"))
    }
}
