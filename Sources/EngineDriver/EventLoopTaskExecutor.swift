import NIOCore
import NIOPosix
import Synchronization

/// Runs Swift tasks on one of the engine client's event loops.
///
/// A request handler resumed by an engine answer keeps running on the loop that owns the
/// connection (and `EngineClient` picks idle connections of the current loop first), so its next
/// engine call and answer need no thread hand-offs either; each hand-off is a wake-up of a
/// sleeping thread, and together they were most of ocimand's added latency on inspect and list.
/// CPU-heavy work (hashing a directory) is offloaded so that it does not hold up I/O.
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

    /// For a job about to be enqueued: the executor of the event loop this thread runs, if it is
    /// one (an engine answer resumes its task right where the connection lives), else the next
    /// loop's, round-robin.
    public static func currentOrNext() -> @Sendable () -> any TaskExecutor {
        let executors = MultiThreadedEventLoopGroup.singleton.makeIterator().map { EventLoopTaskExecutor(loop: $0) }
        let next = Atomic<Int>(0)
        return {
            if let current = MultiThreadedEventLoopGroup.currentEventLoop,
               let executor = executors.first(where: { $0.loop === current }) {
                return executor
            }
            let ticket = next.wrappingAdd(1, ordering: .relaxed).oldValue
            return executors[Int(UInt(bitPattern: ticket) % UInt(executors.count))]
        }
    }
}
