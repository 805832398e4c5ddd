import InMemoryEngine
import Logging
import Testing

@testable import OcimanCore

/// A runtime over a fresh in-memory engine.
func makeRuntime(_ engine: InMemoryEngine = InMemoryEngine()) -> Runtime {
    Runtime(engine: engine, logger: Logger(label: "test"))
}

/// The error `body` throws, for matching its case; nil when it throws none.
func ocimanError<T>(_ body: () async throws -> T) async -> OcimanError? {
    do {
        _ = try await body()
        return nil
    } catch let error as OcimanError {
        return error
    } catch {
        Issue.record("not an OcimanError: \(error)")
        return nil
    }
}

@Suite("Runtime containers against an in-memory engine")
struct RuntimeContainerTests {
    static let image = "localhost/busybox:test"

    @Test func aRunContainerIsRunningAndCarriesOcimansLabels() async throws {
        let runtime = makeRuntime()
        let container = try await runtime.runContainer(RunSpec(image: Self.image, name: "web", labels: ["k": "v"], ttlSeconds: 60))
        #expect(container.name == "web")
        #expect(container.state.running)
        #expect(container.labels["k"] == "v")
        #expect(container.labels[ManagedLabels.managed] == "true")
        #expect(container.labels[ManagedLabels.expiresAt] != nil)
        #expect(try await runtime.inspect("web") == container)
    }

    @Test func aNameInUseIsAConflict() async throws {
        let runtime = makeRuntime()
        _ = try await runtime.runContainer(RunSpec(image: Self.image, name: "db"))
        let error = await ocimanError { try await runtime.runContainer(RunSpec(image: Self.image, name: "db")) }
        guard case .conflict(let message) = error else { Issue.record("expected a conflict, got \(String(describing: error))"); return }
        #expect(message.contains("\"db\""))
    }

    @Test func anAbsentImageIsNotPulledUnderPolicyNever() async throws {
        let engine = InMemoryEngine()
        let runtime = makeRuntime(engine)
        let error = await ocimanError {
            try await runtime.runContainer(RunSpec(image: "localhost/absent:1", pullPolicy: .never))
        }
        guard case .notFound(let message) = error else { Issue.record("expected 404, got \(String(describing: error))"); return }
        #expect(message.contains("pull_policy never"))
        #expect(!engine.calls.contains("pullImage"))
    }

    @Test func anAbsentImageThatCannotBePulledFailsWithTheRegistrysWords() async throws {
        let engine = InMemoryEngine()
        let error = await ocimanError { try await makeRuntime(engine).runContainer(RunSpec(image: "localhost/absent:1")) }
        guard case .engineFailure(let message) = error else { Issue.record("expected 502, got \(String(describing: error))"); return }
        #expect(message.contains("manifest unknown"))
        #expect(engine.calls.filter { $0 == "createContainer" }.count == 1, "no second create after a failed pull")
    }

    @Test func invalidRequestsNeverReachTheEngine() async throws {
        let engine = InMemoryEngine()
        let error = await ocimanError { try await makeRuntime(engine).runContainer(RunSpec(image: Self.image, name: "-bad")) }
        guard case .invalid(let field, _) = error else { Issue.record("expected 400, got \(String(describing: error))"); return }
        #expect(field == "name")
        #expect(engine.calls.isEmpty)
    }

    @Test func unknownContainersAreNotFoundForEveryVerb() async throws {
        let runtime = makeRuntime()
        let errors: [OcimanError?] = [
            await ocimanError { try await runtime.inspect("ghost") },
            await ocimanError { try await runtime.stop("ghost", timeoutSeconds: 1) },
            await ocimanError { try await runtime.kill("ghost", signal: "SIGKILL") },
            await ocimanError { try await runtime.remove("ghost", force: true) },
            await ocimanError { try await runtime.wait("ghost", condition: .notRunning, timeoutSeconds: 5) },
            await ocimanError { try await runtime.exec("ghost", ExecOptions(command: ["true"])) },
            await ocimanError { try await runtime.commit("ghost", reference: "localhost/x:1", pause: false, changes: []) },
        ]
        for error in errors {
            guard case .notFound(let message) = error else { Issue.record("expected 404, got \(String(describing: error))"); continue }
            #expect(message == "no such container: ghost")
        }
    }

    @Test func killingAStoppedContainerIsAConflict() async throws {
        let runtime = makeRuntime()
        let container = try await runtime.runContainer(RunSpec(image: Self.image))
        try await runtime.kill(container.id, signal: "SIGKILL")
        #expect(try await runtime.inspect(container.id).state.exitCode == 137)
        let error = await ocimanError { try await runtime.kill(container.id, signal: "SIGKILL") }
        #expect(error.map { if case .conflict = $0 { true } else { false } } == true)
    }

    @Test func removingARunningContainerNeedsForce() async throws {
        let engine = InMemoryEngine()
        let runtime = makeRuntime(engine)
        let container = try await runtime.runContainer(RunSpec(image: Self.image))
        let error = await ocimanError { try await runtime.remove(container.id, force: false) }
        guard case .conflict(let message) = error else { Issue.record("expected 409, got \(String(describing: error))"); return }
        #expect(message.contains("remove with force"))
        try await runtime.remove(container.id, force: true)
        #expect(engine.containerIDs().isEmpty)
    }

    @Test func anUnreachableEngineIsUnavailable() async throws {
        let engine = InMemoryEngine()
        let runtime = makeRuntime(engine)
        engine.reachable = false
        #expect(await runtime.isReady() == false)
        let error = await ocimanError { try await runtime.listContainers(labels: [], name: nil) }
        #expect(error.map { if case .unavailable = $0 { true } else { false } } == true)
    }

    @Test func aWaitThatOutlastsItsTimeoutIs504AndOneThatEndsAnswersTheCode() async throws {
        let engine = InMemoryEngine()
        let runtime = makeRuntime(engine)
        let container = try await runtime.runContainer(RunSpec(image: Self.image))
        let error = await ocimanError { try await runtime.wait(container.id, condition: .notRunning, timeoutSeconds: 1) }
        guard case .timedOut(_, let id, _) = error else { Issue.record("expected 504, got \(String(describing: error))"); return }
        #expect(id == container.id)
        Task {
            try await Task.sleep(for: .milliseconds(20))
            engine.exit(container.id, code: 3)
        }
        #expect(try await runtime.wait(container.id, condition: .nextExit, timeoutSeconds: 5) == 3)
    }

    @Test func listingFiltersByLabelAndExactName() async throws {
        let runtime = makeRuntime()
        _ = try await runtime.runContainer(RunSpec(image: Self.image, name: "a", labels: ["role": "db"]))
        _ = try await runtime.runContainer(RunSpec(image: Self.image, name: "ab", labels: ["role": "web"]))
        #expect(try await runtime.listContainers(labels: ["role=db"], name: nil).map(\.name) == ["a"])
        #expect(try await runtime.listContainers(labels: [], name: "a").map(\.name) == ["a"])
        let error = await ocimanError { try await runtime.listContainers(labels: ["a b"], name: nil) }
        #expect(error.map { if case .invalid(field: "label", _) = $0 { true } else { false } } == true)
    }

    @Test func aCommittedImageDoesNotInheritTheReapersLabels() async throws {
        let engine = InMemoryEngine()
        let runtime = makeRuntime(engine)
        let sessions = runtime.sessions
        let session = try sessions.create(leaseSeconds: 60)
        let container = try await runtime.runContainer(RunSpec(image: Self.image, ttlSeconds: 60, session: session.id))
        let result = try await runtime.commit(container.id, reference: "localhost/snap:1", pause: true, changes: [])
        #expect(result.reference == "localhost/snap:1")
        #expect(result.imageID.hasPrefix("sha256:"))
        let image = try await runtime.inspectImage("localhost/snap:1")
        #expect(image.labels[ManagedLabels.expiresAt] == "")
        #expect(image.labels[ManagedLabels.session] == "")
        let refused = await ocimanError {
            try await runtime.commit(
                container.id, reference: "localhost/snap:2", pause: false,
                changes: ["LABEL \(InMemoryEngine.refusedChange)=1"])
        }
        #expect(refused.map { if case .invalid(field: "changes", _) = $0 { true } else { false } } == true)
    }

    @Test func deletingASessionRemovesItsContainers() async throws {
        let engine = InMemoryEngine()
        let runtime = makeRuntime(engine)
        let session = try runtime.sessions.create(leaseSeconds: 60)
        _ = try await runtime.runContainer(RunSpec(image: Self.image, session: session.id))
        _ = try await runtime.runContainer(RunSpec(image: Self.image))
        #expect(try await runtime.deleteSession(session.id) == 1)
        #expect(engine.containerIDs().count == 1)
    }

    @Test func backendInfoIsReadOnceForAWhile() async throws {
        let engine = InMemoryEngine(kind: .podman)
        let runtime = makeRuntime(engine)
        let first = try await runtime.backendInfo()
        let second = try await runtime.backendInfo()
        #expect(first.kind == .podman && second.version == first.version)
        #expect(first.endpoint == engine.endpoint)
        #expect(engine.calls.filter { $0 == "info" }.count == 1)
    }
}
