import Synchronization

/// Readiness waits for a container that was just started (`POST /containers` `wait`).
///
/// Each condition runs as its own task and reports once it holds; a watcher reports when the
/// container stops, a follower keeps the container's last output lines for the error answers,
/// and a timer ends it all at the deadline. The first decisive event wins and cancels the rest.
extension Runtime {
    enum ReadinessCondition: Hashable, Sendable, CustomStringConvertible {
        case tcp(port: Int)
        case log(pattern: String, occurrences: Int)
        case exec([String])

        var description: String {
            switch self {
            case .tcp(let port): "tcp port \(port)"
            case .log(let pattern, let occurrences):
                "log pattern \"\(pattern)\"" + (occurrences > 1 ? " \(occurrences) times" : "")
            case .exec(let command): "exec \(command.joined(separator: " "))"
            }
        }

        var isLog: Bool {
            if case .log = self { return true }
            return false
        }
    }

    private enum ReadinessEvent: Sendable {
        case satisfied(ReadinessCondition)
        /// The log follower ended: the container stopped (or its output could not be read).
        case outputEnded
        case stopped
        /// Time to answer a stop even though the follower has not drained the last output.
        case drainTimeUp
        case deadline
    }

    private enum ReadinessOutcome: Sendable {
        case ready
        case stopped(pending: [ReadinessCondition])
        case timedOut(pending: [ReadinessCondition])
    }

    /// TCP and exec conditions are probed from right after the start, first after 1 ms, each
    /// pause twice the last up to a cap: a port that opens is seen within the cap, and a
    /// container that stops ends the probing through its `die` event (`watchStop`).
    static let firstProbeDelay = Duration.milliseconds(1)
    /// A TCP probe costs one question to the kernel about the container's listening sockets
    /// (tens of µs) until its server listens, then one loopback connect.
    static let tcpProbeDelayCap = Duration.milliseconds(2)
    /// An exec try outside the loop (`pollExec`) costs the engine an exec session, which takes far
    /// longer than the pause.
    static let execProbeDelayCap = Duration.milliseconds(8)
    /// The pause between the tries of the loop inside the container where its shell must run
    /// `sleep` for it (see `execLoop`).
    static let execLoopSleepMilliseconds = 2
    static let problemLogLines = 50

    /// `inspected`: the container as the engine reported it right after the start.
    func awaitReadiness(
        _ id: String, _ wait: ReadinessWait, inspected: InspectedContainer, autoRemove: Bool
    ) async throws(OcimanError) {
        var conditions: [ReadinessCondition] = []
        if let port = wait.tcpPort { conditions.append(.tcp(port: port)) }
        if let log = wait.log { conditions.append(.log(pattern: log.pattern, occurrences: log.occurrences)) }
        if let command = wait.exec { conditions.append(.exec(command)) }
        // With no condition a started container is ready.
        guard !conditions.isEmpty else { return }

        var probeTarget: TCPTarget?
        if let port = wait.tcpPort {
            if let target = Self.probeTarget(for: port, in: inspected.container.ports) {
                probeTarget = TCPTarget(
                    host: target.host, hostPort: target.port, containerPort: port, pid: inspected.processID)
            } else if inspected.container.state.running {
                throw .engineFailure("the engine reports no host port for container port \(port)/tcp of \(id)")
            }
            // Otherwise it already stopped (Docker then reports no ports): the stop watcher answers.
        }

        let deadline = ContinuousClock.now + .seconds(wait.timeoutSeconds)
        let tail = LogTail(capacity: Self.problemLogLines)
        // The watchers run under a task of their own, so a ready container is answered the
        // moment its last condition holds: tearing down the log, event and exec streams takes
        // about a millisecond, and a ready answer need not wait for it. A failed wait is answered
        // after the teardown (a timed-out exec loop has then been ended).
        let (outcomes, outcomeSink) = AsyncStream.makeStream(of: ReadinessOutcome.self)
        let watchers = Task { [conditions, probeTarget] in
            await self.watchReadiness(id, conditions, probeTarget: probeTarget, deadline: deadline, tail: tail) {
                outcomeSink.yield($0)
                outcomeSink.finish()
            }
        }
        let outcome = await withTaskCancellationHandler {
            await outcomes.first { _ in true }
        } onCancel: {
            watchers.cancel()
        } ?? .timedOut(pending: conditions)
        if case .ready = outcome {} else { await watchers.value }

        switch outcome {
        case .ready:
            return
        case .timedOut(let pending):
            if autoRemove { await removeQuietly(id) }
            throw .timedOut(
                "container did not become ready within \(wait.timeoutSeconds) s (waiting for \(Self.describe(pending)))",
                containerID: id, logs: tail.lines)
        case .stopped(let pending):
            var detail = "container stopped before it became ready (waiting for \(Self.describe(pending)))"
            if let state = try? await inspect(id).state, let code = state.exitCode {
                detail = "container exited with code \(code) before it became ready (waiting for \(Self.describe(pending)))"
            }
            throw .exitedBeforeReady(detail, containerID: id, logs: tail.lines)
        }
    }

    /// Runs the conditions' probes, the output follower, the stop watcher and the deadline until
    /// one decides the wait, tells `decided` at once, and returns once all of them have ended.
    private func watchReadiness(
        _ id: String, _ conditions: [ReadinessCondition], probeTarget: TCPTarget?, deadline: ContinuousClock.Instant,
        tail: LogTail, decided: @Sendable (ReadinessOutcome) -> Void
    ) async {
        await withTaskGroup(of: Void.self) { group in
            let (events, sink) = AsyncStream.makeStream(of: ReadinessEvent.self)
            let logCondition = conditions.first { $0.isLog }
            group.addTask { await self.followOutput(id, matching: logCondition, into: tail, events: sink) }
            group.addTask { await self.watchStop(id, events: sink) }
            group.addTask {
                guard (try? await Task.sleep(until: deadline)) != nil else { return }
                sink.yield(.deadline)
            }
            for condition in conditions {
                switch condition {
                case .tcp:
                    guard let target = probeTarget else { continue }
                    group.addTask { await Self.pollTCP(target, condition, events: sink) }
                case .exec(let command):
                    group.addTask { await self.pollExec(id, command, condition, until: deadline, events: sink) }
                case .log:
                    break
                }
            }

            var pending = conditions
            var stopped = false
            var outputEnded = false
            var outcome = ReadinessOutcome.timedOut(pending: pending)
            loop: for await event in events {
                switch event {
                case .satisfied(let condition):
                    pending.removeAll { $0 == condition }
                    if pending.isEmpty {
                        outcome = .ready
                        break loop
                    }
                case .outputEnded:
                    outputEnded = true
                    if stopped {
                        outcome = .stopped(pending: pending)
                        break loop
                    }
                case .stopped:
                    stopped = true
                    // The follower drains the output of a stopped container and ends; a log
                    // condition can still be met from it, and the error answer wants its last lines.
                    if outputEnded {
                        outcome = .stopped(pending: pending)
                        break loop
                    }
                    group.addTask {
                        guard (try? await Task.sleep(for: .seconds(2))) != nil else { return }
                        sink.yield(.drainTimeUp)
                    }
                case .drainTimeUp:
                    outcome = .stopped(pending: pending)
                    break loop
                case .deadline:
                    outcome = .timedOut(pending: pending)
                    break loop
                }
            }
            decided(outcome)
            sink.finish()
            group.cancelAll()
        }
    }

    private static func describe(_ conditions: [ReadinessCondition]) -> String {
        conditions.map(\.description).joined(separator: ", ")
    }

    /// Where the host reaches a published container port: an IPv4 binding first; a wildcard
    /// binding is reached over loopback.
    static func probeTarget(for port: Int, in ports: [PublishedPort]) -> (host: String, port: Int)? {
        let bindings = ports.filter { $0.containerPort == port && $0.protocol == .tcp }
        let chosen = bindings.first { IPAddressKind(literal: $0.hostIP) == .v4 } ?? bindings.first
        guard let chosen else { return nil }
        let host: String
        switch chosen.hostIP {
        case "0.0.0.0", "": host = "127.0.0.1"
        case "::": host = "::1"
        default: host = chosen.hostIP
        }
        return (host, chosen.hostPort)
    }

    /// Reads the container's output from the start, keeping the last lines and counting lines
    /// that match the log condition.
    private func followOutput(
        _ id: String, matching condition: ReadinessCondition?, into tail: LogTail,
        events: AsyncStream<ReadinessEvent>.Continuation
    ) async {
        var regex: Regex<AnyRegexOutput>?
        var needed = 0
        if case .log(let pattern, let occurrences) = condition {
            regex = try? Regex(pattern)  // validated before the container was created
            needed = occurrences
        }
        var matched = 0
        do {
            for try await line in try await logs(id, LogOptions(follow: true)) {
                tail.append(line.text)
                guard let regex, matched < needed, line.text.contains(regex) else { continue }
                matched += 1
                if matched == needed, let condition { events.yield(.satisfied(condition)) }
            }
        } catch {
            // Cancelled, or the container went away: either way the output has ended.
        }
        events.yield(.outputEnded)
    }

    /// Reports the container's stop from its `die` (or `destroy`, for an auto-removed one)
    /// event. A stop before the subscription is seen by one look at its state once the engine
    /// has the subscription; an engine whose events fail falls back to its wait.
    private func watchStop(_ id: String, events: AsyncStream<ReadinessEvent>.Continuation) async {
        do {
            let deaths = try await engine.events(EventFilter(containers: [id], kinds: [.die, .destroy]))
            let running = try? await engine.inspectContainer(id).container.state.running
            if running == true {
                for try await _ in deaths { break }
            }
        } catch {
            if Task.isCancelled { return }
            do {
                _ = try await engine.waitContainer(id, until: .notRunning)
            } catch {
                // An auto-removed container is gone (404): it stopped. Cancellation ends the wait.
                if Task.isCancelled { return }
            }
        }
        if Task.isCancelled { return }
        events.yield(.stopped)
    }

    struct TCPTarget: Sendable {
        var host: String
        var hostPort: Int
        var containerPort: Int
        /// The container's main process on this host, to look into its network namespace.
        var pid: Int
    }

    /// Ready when something listens inside the container (when its socket tables are readable
    /// from here) and the published port carries a connection from the host.
    private static func pollTCP(
        _ target: TCPTarget, _ condition: ReadinessCondition, events: AsyncStream<ReadinessEvent>.Continuation
    ) async {
        var delay = firstProbeDelay
        let sockets = target.pid > 0 ? ListeningSockets(pid: target.pid) : nil
        while !Task.isCancelled {
            let listening = sockets?.isListening(port: target.containerPort)
            // A server seen listening inside the container needs no settle time to tell it from
            // a proxy without a backend.
            let settle = listening == true ? Duration.zero : .milliseconds(50)
            if listening != false, await TCPProbe.check(host: target.host, port: target.hostPort, settle: settle) == .ready {
                events.yield(.satisfied(condition))
                return
            }
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            delay = min(delay * 2, tcpProbeDelayCap)
        }
    }

    /// The command is tried in a loop inside the container, every millisecond or so, by one
    /// engine exec of `/bin/sh` (an engine exec costs 15–100 ms here; a try in the loop only the
    /// command's own time). The loop prints a marker the moment a try succeeds, so the wait does
    /// not wait for the engine to notice the exec's end (Podman takes 30 ms); leaving the exec's
    /// output ends the loop where ocimand can end exec processes (not rootless Podman without
    /// per-container cgroups, nor remote engines); there the loop's pauses add up to no more than
    /// the wait's time left, so with a quick command it ends about when the wait does. An image
    /// without `/bin/sh` (or whose shell can neither time out a `read` nor sleep 2 ms) gets one
    /// engine exec per try instead, backing off to 8 ms.
    private func pollExec(
        _ id: String, _ command: [String], _ condition: ReadinessCondition, until deadline: ContinuousClock.Instant,
        events: AsyncStream<ReadinessEvent>.Continuation
    ) async {
        var looping = true
        var delay = Self.firstProbeDelay
        while !Task.isCancelled {
            if looping {
                let left = (deadline - ContinuousClock.now).saturatingNanoseconds / 1_000_000
                let milliseconds = Int(max(1, min(Int64(Self.execLoopMilliseconds), left)))
                // Told the moment the marker arrives: leaving the exec's stream then ends the exec
                // (a look at its process, an engine call), which the answer need not wait for.
                switch await tryInLoop(id, command, milliseconds: milliseconds, succeeded: { events.yield(.satisfied(condition)) }) {
                case .succeeded:
                    return
                case .gaveUp: continue
                case .cannotLoop: looping = false
                }
            } else if let tried = try? await exec(id, ExecOptions(command: command)), tried.exitCode == 0 {
                events.yield(.satisfied(condition))
                return
            }
            guard (try? await Task.sleep(for: delay)) != nil else { return }
            delay = min(delay * 2, Self.execProbeDelayCap)
        }
    }

    private enum LoopOutcome { case succeeded, gaveUp, cannotLoop }

    private func tryInLoop(
        _ id: String, _ command: [String], milliseconds: Int, succeeded: () -> Void
    ) async -> LoopOutcome {
        // The loop's stdin: held open and never written, so that `read -t` in it waits.
        let (silence, held) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        defer { held.finish() }
        let options = ExecOptions(command: Self.execLoop(command, milliseconds: milliseconds), stdin: .chunks(silence))
        do {
            var printed: [UInt8] = []
            for try await event in try await execStream(id, options) {
                switch event {
                case .output(.stdout, let bytes):
                    printed += bytes.prefix(max(0, Self.execLoopMarker.utf8.count - printed.count))
                    if printed.elementsEqual(Self.execLoopMarker.utf8) {
                        succeeded()
                        return .succeeded  // ends the loop
                    }
                case .output: break
                case .exit(let code): return code == Self.execLoopGaveUp ? .gaveUp : .cannotLoop
                }
            }
        } catch {}
        return .cannotLoop
    }

    /// Milliseconds of pauses per exec at most; the loop starts again while the wait goes on.
    static let execLoopMilliseconds = 2000
    /// The loop's exit status when no try succeeded (`timeout`'s: not a shell's own 126 or 127).
    static let execLoopGaveUp = 124
    static let execLoopMarker = "ociman-exec-wait-succeeded"

    /// `sh -c LOOP sh COMMAND…`: the command's words stay the shell's positional parameters, never
    /// parsed as shell text. The loop pauses 1 ms by reading its stdin with a timeout (ocimand
    /// holds it open and writes nothing), a builtin in busybox and bash: a `sleep` per pause is a
    /// process, which costs 0.7 ms here and made the tries 2.85 ms apart. A shell whose `read`
    /// has no `-t` (dash: status 2) sleeps 2 ms instead; a sleep that cannot end the loop with
    /// 125. `i` counts the milliseconds paused. Once ocimand leaves, stdin ends and `read`
    /// returns at once, so a loop it could not end runs out its count quickly.
    static func execLoop(_ command: [String], milliseconds: Int) -> [String] {
        let loop = """
            i=0; while [ $i -lt \(milliseconds) ]; do \
            "$@" >/dev/null 2>&1 </dev/null && { echo \(execLoopMarker); exit 0; }; \
            read -t 0.001 _ 2>/dev/null; r=$?; \
            if [ $r = 1 ] || [ $r -gt 128 ]; then i=$((i+1)); \
            else sleep \(Double(execLoopSleepMilliseconds) / 1000) || exit 125; i=$((i+\(execLoopSleepMilliseconds))); fi; \
            done; exit \(execLoopGaveUp)
            """
        return ["/bin/sh", "-c", loop, "sh"] + command
    }
}

/// The last lines of a container's output, shared between the follower and the answer.
final class LogTail: Sendable {
    private let capacity: Int
    private let buffer = Mutex<[String]>([])

    init(capacity: Int) {
        self.capacity = capacity
    }

    func append(_ line: String) {
        buffer.withLock { lines in
            lines.append(line)
            if lines.count > capacity { lines.removeFirst(lines.count - capacity) }
        }
    }

    var lines: [String] { buffer.withLock { $0 } }
}
