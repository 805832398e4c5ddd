import NIOCore
import NIOPosix
import Synchronization

/// Runs Swift tasks on one of the engine client's event loops.
///
/// A request handler that prefers this executor runs on the thread that also owns its engine
/// connection (`EngineClient` picks idle connections of the current loop first), so sending the
/// request and resuming on the answer need no thread hand-offs; each hand-off is a wake-up of a
/// sleeping thread and together they were most of ocimand's added latency on inspect and list.
/// CPU-heavy work (hashing) must move to the global executor so that it does not hold up I/O.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let loop: any EventLoop

    init(loop: any EventLoop) {
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        // Unchecked: the loop runs the job once, and nothing else touches it.
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// One executor per event loop of the group engine connections use, handed out round-robin.
    public static func roundRobin() -> @Sendable () -> EventLoopTaskExecutor {
        let executors = MultiThreadedEventLoopGroup.singleton.makeIterator().map { EventLoopTaskExecutor(loop: $0) }
        let next = Atomic<Int>(0)
        return {
            let ticket = next.wrappingAdd(1, ordering: .relaxed).oldValue
            return executors[Int(UInt(bitPattern: ticket) % UInt(executors.count))]
        }
    }
}
