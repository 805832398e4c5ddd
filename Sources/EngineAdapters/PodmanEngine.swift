import EngineDriver
import NIOCore
import OcimanCore
import PulledStreams
import Synchronization

/// Podman through its Docker-compatible API plus its own (libpod) where that is faster or
/// says more: inspect, list, wait and `/info`. Podman answers many refusals with 500 where
/// Docker answers 409, so those are told apart here by the container's state.
final class PodmanEngine: CompatibleEngine {
    let client: EngineClient
    let kind = BackendKind.podman
    let commitsWithEmptyConfig = true
    let speaksLibpod = true
    let bridgeNetwork = "podman"
    let version = EngineVersionCache()
    let buildLedger: ProcessLedger
    let publishedPortHost: String?
    private let rootless = Mutex<Bool?>(nil)

    /// Ends the build steps an earlier ocimand left running (see `buildImage`).
    init(client: EngineClient, publishedPortHost: String? = nil, buildLedger: ProcessLedger = ProcessLedger()) {
        self.client = client
        self.publishedPortHost = publishedPortHost
        self.buildLedger = buildLedger
        for id in buildLedger.leftovers() {
            HostProcessTree.killCgroup(BuildCgroup.path(id))
            buildLedger.closed(id)
        }
    }

    /// Podman keeps running a build step (`RUN sleep 30`) after the build's client has gone:
    /// the request is cancelled, the step is not. So each build runs its steps in a cgroup of
    /// its own (`cgroupparent`), whose processes are killed when the build's stream is dropped
    /// before its end, on SIGTERM, and after a crash on the next start. Podman then fails the
    /// build and removes its working container.
    func buildImage(_ request: ImageBuildRequest, context: AsyncThrowingStream<[UInt8], any Error>) async throws
        -> AsyncThrowingStream<BuildProgress, any Error>
    {
        // Rootless Podman cannot place a build's steps in a cgroup of ours (on cgroup v1 the
        // user may create none): its builds run without one, so a left build step runs on.
        if try await classified({ try await isRootless() }) {
            let response = try await compatBuild(request, context: context, cgroupParent: nil)
            return .decoding(response.body, with: BuildProgressDecoder())
        }
        let cgroup = BuildCgroup(ledger: buildLedger)
        let response = try await compatBuild(request, context: context, cgroupParent: cgroup.path)
        return .decoding(response.body, with: GuardedBuildProgress(cgroup: cgroup))
    }

    /// Podman's own `/info` says whether it runs rootless; read once (it cannot change while
    /// the service runs).
    func isRootless() async throws -> Bool {
        if let known = rootless.withLock({ $0 }) { return known }
        let value = try await client.libpodRootless()
        rootless.withLock { $0 = value }
        return value
    }

    /// A name in use is a 500 on Podman: the name answering an inspect tells.
    func createContainer(_ config: ContainerConfig) async throws -> String {
        do {
            return try await createCompatContainer(config)
        } catch EngineFailure.failed(let status, let message) {
            if let name = config.name, (try? await client.inspectContainer(name, libpod: true)) != nil {
                throw EngineFailure.conflict("container name \"\(name)\" is already in use")
            }
            throw EngineFailure.failed(status: status, message: message)
        }
    }

    /// A container whose process exits during the inspect can make Podman fail reading
    /// `/proc/<pid>/cgroup` (a 500, "no such process"): a second look finds it stopped.
    func inspectContainer(_ id: String) async throws -> InspectedContainer {
        var attempt = 1
        while true {
            do {
                let inspect = try await classified { try await client.inspectContainer(id, libpod: true) }
                return ContainerMapping.inspected(inspect, publishedPortHost: publishedPortHost)
            } catch EngineFailure.failed(_, let message) where attempt < 3 && message.contains("no such process") {
                attempt += 1
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    func listContainers(labels: [String], name: String?) async throws -> [ContainerSummary] {
        let entries = try await classified {
            try await client.listContainers(labels: labels, nameFilter: ContainerMapping.nameFilter(name), libpod: true)
        }
        return ContainerMapping.summaries(entries, named: name)
    }

    /// A stopped container is a 500 on Podman.
    func killContainer(_ id: String, signal: String) async throws {
        try await refusingByState(id, when: { !$0 }, "container \(id) is not running") {
            try await client.killContainer(id, signal: signal)
        }
    }

    /// A running container without `force` is a 500 on Podman.
    func removeContainer(_ id: String, force: Bool) async throws {
        try await refusingByState(id, when: { $0 && !force }, "container \(id) is running") {
            try await client.removeContainer(id, force: force)
        }
    }

    /// The compat wait polls every 250 ms, so `not-running` uses Podman's own wait (SPEC §9).
    /// That has no `next-exit` (an exited container answers at once) nor `removed` (Podman
    /// 4.3 rejects it): those stay on the compat wait, which on Podman reports 0 for
    /// `removed`, so the exit code of an already exited container is read first.
    func waitContainer(_ id: String, until condition: ContainerWaitCondition) async throws -> Int {
        try await classified {
            switch condition {
            case .notRunning:
                return try await client.waitContainerStoppedLibpod(id)
            case .nextExit:
                return try await client.waitContainer(id, condition: .nextExit)
            case .removed:
                let before = try await client.inspectContainer(id, libpod: true)
                let code = try await client.waitContainer(id, condition: .removed)
                let exited = !before.state.running && ContainerMapping.engineTime(before.state.finishedAt) != nil
                return exited ? before.state.exitCode ?? code : code
            }
        }
    }


    /// Podman's compat stream says `remove` for a removed container and `remove` or `delete`
    /// for a removed image; `died` is its libpod name for `die`.
    static func eventKind(type: String, action: String) -> EngineEvent.Kind? {
        switch (type, action) {
        case ("container", "create"): .create
        case ("container", "start"): .start
        case ("container", "die"), ("container", "died"): .die
        case ("container", "oom"): .oom
        case ("container", "remove"): .destroy
        case ("container", "health_status"): .healthStatus
        case ("image", "tag"): .tag
        case ("image", "untag"): .untag
        case ("image", "remove"), ("image", "delete"): .delete
        case ("image", "pull"): .pull
        case ("image", "push"): .push
        default: nil
        }
    }

    /// A stopped container is a 500 ("container state improper") on Podman.
    func createExec(in container: String, _ options: ExecOptions) async throws -> String {
        try await refusingByState(container, when: { !$0 }, "container \(container) is not running") {
            try await createCompatExec(in: container, options)
        }
    }

    /// Runs `call`; when it fails for a reason other than an unknown container or an
    /// unreachable engine and the container's running state is `refused`, the failure is the
    /// conflict `message` instead.
    private func refusingByState<T>(
        _ id: String, when refused: (_ running: Bool) -> Bool, _ message: String, _ call: () async throws -> T
    ) async throws -> T {
        do {
            return try await classified(call)
        } catch let failure as EngineFailure {
            switch failure {
            case .notFound, .unavailable, .timedOut, .conflict, .rejected:
                throw failure
            case .failed:
                if let state = try? await client.inspectContainer(id, libpod: true), refused(state.state.running) {
                    throw EngineFailure.conflict(message)
                }
                throw failure
            }
        }
    }
}

/// The cgroup one Podman build's steps run in, for as long as its progress is read.
final class BuildCgroup: Sendable {
    let id: String
    let ledger: ProcessLedger
    private let ended = Atomic<Bool>(false)

    init(ledger: ProcessLedger) {
        id = (0..<16).map { _ in String(UInt8.random(in: 0...15), radix: 16) }.joined()
        self.ledger = ledger
        ledger.opened(id)
    }

    var path: String { Self.path(id) }
    static func path(_ id: String) -> String { "/ociman-build-\(id)" }

    /// The engine has answered the whole build: nothing of it runs any more.
    func markEnded() { ended.store(true, ordering: .releasing) }

    deinit {
        if !ended.load(ordering: .acquiring) { HostProcessTree.killCgroup(path) }
        ledger.closed(id)
    }
}

/// Build progress, keeping the build's cgroup alive exactly as long as it is read.
struct GuardedBuildProgress: PullDecoder {
    let cgroup: BuildCgroup
    var decoder = BuildProgressDecoder()

    mutating func feed(_ chunk: ByteBuffer) throws -> [BuildProgress] { try decoder.feed(chunk) }

    mutating func finish() throws -> [BuildProgress] {
        cgroup.markEnded()
        return try decoder.finish()
    }

    func fail(_ error: any Error) throws -> [BuildProgress] { try decoder.fail(error) }
}
