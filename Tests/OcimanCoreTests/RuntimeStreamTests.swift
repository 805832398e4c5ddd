import InMemoryEngine
import Testing

@testable import OcimanCore

/// Everything a stream yields until it ends, and the error that ended it.
func drain<Element>(_ stream: AsyncThrowingStream<Element, any Error>) async -> ([Element], (any Error)?) {
    var elements: [Element] = []
    do {
        for try await element in stream { elements.append(element) }
        return (elements, nil)
    } catch {
        return (elements, error)
    }
}

@Suite("Runtime streams and waits against an in-memory engine")
struct RuntimeStreamTests {
    static let image = "localhost/busybox:test"

    private func running(_ engine: InMemoryEngine, _ spec: RunSpec = RunSpec(image: image)) async throws -> (Runtime, Container) {
        let runtime = makeRuntime(engine)
        return (runtime, try await runtime.runContainer(spec))
    }

    // MARK: Exec

    @Test func aCollectedExecKeepsStdoutStderrAndTheExitCode() async throws {
        let (runtime, container) = try await running(InMemoryEngine())
        let echoed = try await runtime.exec(container.id, ExecOptions(command: ["echo", "hello"]))
        #expect(echoed == ExecResult(exitCode: 0, stdout: Array("hello\n".utf8), stderr: []))
        let missing = try await runtime.exec(container.id, ExecOptions(command: ["nope"]))
        #expect(missing.exitCode == 127 && String(decoding: missing.stderr, as: UTF8.self) == "nope: not found\n")
        let fed = try await runtime.exec(container.id, ExecOptions(command: ["cat"], stdin: .bytes(Array("in\n".utf8))))
        #expect(fed.stdout == Array("in\n".utf8))
    }

    @Test func aStreamedExecEndsWithExactlyOneExit() async throws {
        let (runtime, container) = try await running(InMemoryEngine())
        let (events, error) = await drain(try await runtime.execStream(container.id, ExecOptions(command: ["sh", "-c", "exit 4"])))
        #expect(error == nil)
        #expect(events == [.exit(code: 4)])
        let (echo, _) = await drain(try await runtime.execStream(container.id, ExecOptions(command: ["echo", "a"])))
        #expect(echo == [.output(.stdout, Array("a\n".utf8)), .exit(code: 0)])
    }

    @Test func execInAStoppedContainerIsAConflictBeforeAnyEvent() async throws {
        let engine = InMemoryEngine()
        let (runtime, container) = try await running(engine)
        engine.exit(container.id, code: 0)
        let error = await ocimanError { try await runtime.execStream(container.id, ExecOptions(command: ["true"])) }
        guard case .conflict(let message) = error else { Issue.record("expected 409, got \(String(describing: error))"); return }
        #expect(message == "container \(container.id) is not running")
    }

    @Test func anExecPastItsTimeoutFailsWith504() async throws {
        let (runtime, container) = try await running(InMemoryEngine())
        let started = ContinuousClock.now
        let error = await ocimanError { try await runtime.exec(container.id, ExecOptions(command: ["sleep"], timeoutSeconds: 1)) }
        guard case .timedOut(_, let id, _) = error else { Issue.record("expected 504, got \(String(describing: error))"); return }
        #expect(id == container.id)
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func badExecOptionsNameTheirFieldWithoutCallingTheEngine() async throws {
        let engine = InMemoryEngine()
        let error = await ocimanError { try await makeRuntime(engine).exec("any", ExecOptions(command: ["ls"], workdir: "tmp")) }
        #expect(error.map { if case .invalid(field: "workdir", _) = $0 { true } else { false } } == true)
        #expect(engine.calls.isEmpty)
    }

    // MARK: Logs

    @Test func logsAreLinesAndTailKeepsTheLast() async throws {
        let engine = InMemoryEngine()
        engine.onStart(of: Self.image, prints: [
            LogLine(stream: .stdout, text: "one"), LogLine(stream: .stderr, text: "two"), LogLine(stream: .stdout, text: "three"),
        ])
        let (runtime, container) = try await running(engine)
        let (all, error) = await drain(try await runtime.logs(container.id, LogOptions()))
        #expect(error == nil)
        #expect(all.map(\.text) == ["one", "two", "three"])
        #expect(all[1].stream == .stderr)
        #expect(try await runtime.recentLogLines(container.id, limit: 2) == ["two", "three"])
        let bad = await ocimanError { try await runtime.logs(container.id, LogOptions(tail: -1)) }
        #expect(bad.map { if case .invalid(field: "tail", _) = $0 { true } else { false } } == true)
    }

    @Test func aFollowEndsWhenTheContainerStops() async throws {
        let engine = InMemoryEngine()
        engine.onStart(of: Self.image, prints: [LogLine(stream: .stdout, text: "up")])
        let (runtime, container) = try await running(engine)
        Task {
            try await Task.sleep(for: .milliseconds(30))
            engine.exit(container.id, code: 0)
        }
        let (lines, error) = await drain(try await runtime.logs(container.id, LogOptions(follow: true)))
        #expect(error == nil && lines.map(\.text) == ["up"])
    }

    @Test func aLogStreamThatBreaksEndsWithTheEngineFailureInContext() async throws {
        let engine = InMemoryEngine()
        engine.onStart(of: Self.image, prints: [LogLine(stream: .stdout, text: "up")])
        let (runtime, container) = try await running(engine)
        let stream = try await runtime.logs(container.id, LogOptions(follow: true))
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next()?.text == "up")
        engine.reachable = false
        do {
            _ = try await iterator.next()
            Issue.record("the stream should fail")
        } catch let error as OcimanError {
            guard case .unavailable(let message) = error else { Issue.record("expected 503, got \(error)"); return }
            #expect(message.hasPrefix("logs of container \(container.id): "))
        }
    }

    // MARK: Builds, pulls and pushes

    @Test func aBuildEndsInExactlyOneResultAndIfAbsentReusesIt() async throws {
        let runtime = makeRuntime()
        let options = BuildOptions(name: "localhost/app", ifAbsent: true)
        let (events, error) = await drain(try await runtime.build(.instructions("FROM localhost/busybox:test\n"), options))
        #expect(error == nil)
        #expect(events.first == .log("Step 1/1 : FROM localhost/busybox:test"))
        guard case .result(let built) = events.last else { Issue.record("no result: \(events)"); return }
        #expect(events.filter { if case .result = $0 { true } else { false } }.count == 1)
        #expect(built.cached == false && built.reference?.hasPrefix("localhost/app:") == true)
        let (again, _) = await drain(try await runtime.build(.instructions("FROM localhost/busybox:test\n"), options))
        #expect(again == [.result(BuildResult(imageID: built.imageID, reference: built.reference, digest: built.digest, cached: true))])
    }

    @Test func aFailureAfterAnImageIDEndsTheBuildInOneErrorAndNoResult() async throws {
        let engine = InMemoryEngine()
        engine.scriptBuilds([.line("Step 1/2"), .built(imageID: "sha256:1"), .line("Step 2/2"), .failed("RUN false: exit 1")])
        let (events, error) = await drain(try await makeRuntime(engine).build(.instructions("FROM x\n"), BuildOptions()))
        #expect(error == nil)
        #expect(events == [.log("Step 1/2"), .log("Step 2/2"), .error("RUN false: exit 1")])
    }

    @Test func aBuildWithoutOutcomeEndsInAnError() async throws {
        let engine = InMemoryEngine()
        engine.scriptBuilds([.line("Step 1/1")])
        let (events, _) = await drain(try await makeRuntime(engine).build(.instructions("FROM x\n"), BuildOptions()))
        guard case .error(let message) = events.last else { Issue.record("expected an error: \(events)"); return }
        #expect(message.contains("without an image id"))
    }

    @Test func registryFailuresEndTransfersWithAClassifiedError() async throws {
        let runtime = makeRuntime()
        let (pulled, _) = await drain(try await runtime.pullImage("localhost/busybox:test"))
        guard case .result(let reference, let imageID, let digest) = pulled.last else { Issue.record("\(pulled)"); return }
        #expect(reference == "localhost/busybox:test" && imageID != nil && digest?.hasPrefix("sha256:") == true)
        let (unknown, _) = await drain(try await runtime.pullImage("localhost/absent:1"))
        #expect(unknown.last == .error("manifest unknown", code: .notFound))
        let (pushed, _) = await drain(try await runtime.pushImage("localhost/busybox:test"))
        #expect(pushed == [.error("dial tcp: connection refused", code: .unreachable)])
        let missing = await ocimanError { try await runtime.pushImage("localhost/absent:1") }
        #expect(missing.map { if case .notFound = $0 { true } else { false } } == true)
    }

    @Test func credentialsOutsideTheContractsBoundsAre400WithoutThePassword() async throws {
        let runtime = makeRuntime()
        let long = String(repeating: "p", count: 65_537)
        for (login, field) in [
            (RegistryLogin(username: "ci", password: long), "credentials.password"),
            (RegistryLogin(username: "", password: "secret"), "credentials.username"),
        ] {
            let error = await ocimanError { try await runtime.pullImage("registry.example:5000/app:1", login: login) }
            guard case .invalid(let reported, let message) = error else { Issue.record("\(String(describing: error))"); continue }
            #expect(reported == field && !message.contains("secret") && !message.contains(long))
        }
        let (pulled, _) = await drain(
            try await runtime.pullImage("localhost/busybox:test", login: RegistryLogin(username: "ci", password: "secret")))
        #expect(pulled.last.map { if case .result = $0 { true } else { false } } == true)
    }

    // MARK: Readiness

    @Test func aLogConditionMetMakesTheContainerReady() async throws {
        let engine = InMemoryEngine()
        engine.onStart(of: Self.image, prints: [LogLine(stream: .stdout, text: "booting"), LogLine(stream: .stdout, text: "ready now")])
        let (_, container) = try await running(
            engine, RunSpec(image: Self.image, wait: ReadinessWait(timeoutSeconds: 5, log: .init(pattern: "ready"))))
        #expect(container.state.running)
    }

    @Test func anExecConditionPollsUntilItSucceeds() async throws {
        let (_, container) = try await running(
            InMemoryEngine(), RunSpec(image: Self.image, wait: ReadinessWait(timeoutSeconds: 5, exec: ["true"])))
        #expect(container.state.running)
    }

    @Test func aContainerThatExitsBeforeReadyIs409WithItsLastLines() async throws {
        let engine = InMemoryEngine()
        engine.onStart(of: Self.image, prints: [LogLine(stream: .stderr, text: "fatal: no config")])
        Task {
            try await Task.sleep(for: .milliseconds(50))
            for id in engine.containerIDs() { engine.exit(id, code: 2) }
        }
        let error = await ocimanError {
            try await makeRuntime(engine).runContainer(
                RunSpec(image: Self.image, wait: ReadinessWait(timeoutSeconds: 10, log: .init(pattern: "never"))))
        }
        guard case .exitedBeforeReady(let message, let id, let logs) = error else {
            Issue.record("expected 409, got \(String(describing: error))")
            return
        }
        #expect(message.contains("exited with code 2"))
        #expect(engine.containerIDs() == [id], "a container that failed its wait is left to inspect")
        #expect(logs == ["fatal: no config"])
    }

    @Test func aWaitThatTimesOutIs504AndAutoRemoveCleansUp() async throws {
        let engine = InMemoryEngine()
        let error = await ocimanError {
            try await makeRuntime(engine).runContainer(
                RunSpec(image: Self.image, autoRemove: true, wait: ReadinessWait(timeoutSeconds: 1, exec: ["false"])))
        }
        guard case .timedOut(let message, _, _) = error else { Issue.record("expected 504, got \(String(describing: error))"); return }
        #expect(message.contains("exec false"))
        #expect(engine.containerIDs().isEmpty)
    }
}
