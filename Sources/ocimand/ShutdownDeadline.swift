import Foundation
import Logging
import Synchronization

/// The hard end of a shutdown. Every step after SIGTERM is bounded by the grace period, but a
/// step that hangs anyway (a libmicrohttpd thread stuck in a handler, an engine call that ignores
/// cancellation) must not keep the process alive: once the main task is gone, SwiftNIO's
/// event-loop threads alone would. So a thread of its own, outside Swift concurrency's pool
/// (which a stuck shutdown may have exhausted), ends the process when the deadline passes.
/// `start` and `Step.wait` bound each step by the grace in the first place.
enum ShutdownDeadline {
    static func arm(after limit: Duration, logger: Logger, beforeExit: @escaping @Sendable () -> Void) {
        let (seconds, attoseconds) = limit.components
        let interval = Double(seconds) + Double(attoseconds) / 1e18
        let thread = Thread {
            Thread.sleep(forTimeInterval: interval)
            logger.error("shutdown did not finish within the grace period; exiting now")
            beforeExit()
            exit(1)
        }
        thread.name = "ocimand-shutdown-deadline"
        thread.start()
    }

    /// Runs `work` in a task of its own, so that a shutdown step can be waited for only so long.
    static func start(_ work: @escaping @Sendable () async -> Void) -> Step {
        let step = Step()
        Task {
            await work()
            step.done.withLock { $0 = true }
        }
        return step
    }

    final class Step: Sendable {
        fileprivate let done = Mutex(false)

        /// Returns when the step has ended or `deadline` has passed, whichever is first.
        func wait(until deadline: ContinuousClock.Instant) async {
            while !done.withLock({ $0 }), ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}
