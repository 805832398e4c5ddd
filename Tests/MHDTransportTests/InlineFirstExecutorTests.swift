import Foundation
import Glibc
import Synchronization
import Testing

@testable import MHDTransport

/// Counts the jobs handed to it and runs each on a fresh thread, so a test can tell them apart
/// from jobs run inline.
private final class CountingThreadExecutor: TaskExecutor, @unchecked Sendable {
    let enqueued = Atomic<Int>(0)

    func enqueue(_ job: consuming ExecutorJob) {
        enqueued.add(1, ordering: .relaxed)
        let job = UnownedJob(job)
        Thread.detachNewThread { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

@Suite("InlineFirstExecutor")
struct InlineFirstExecutorTests {
    @Test("a task that waits for nothing finishes before startTask returns, on the calling thread")
    func finishesInline() async {
        let fallback = CountingThreadExecutor()
        let executor = InlineFirstExecutor(fallback: { fallback })
        let ranOn = Mutex<pthread_t?>(nil)
        let caller = pthread_self()
        let finished = Atomic<Bool>(false)
        let task = executor.startTask {
            // Nested async work, as a handler with middlewares has, still stays here.
            await Task.yield()
            ranOn.withLock { $0 = pthread_self() }
            finished.store(true, ordering: .relaxed)
        }
        let finishedInline = finished.load(ordering: .relaxed)
        let fallbackJobs = fallback.enqueued.load(ordering: .relaxed)
        #expect(finishedInline)
        #expect(ranOn.withLock { $0 } == caller)
        #expect(fallbackJobs == 0)
        await task.value
    }

    @Test("a task resumed from another thread continues on the fallback")
    func resumesOnFallback() async {
        let fallback = CountingThreadExecutor()
        let executor = InlineFirstExecutor(fallback: { fallback })
        let caller = pthread_self()
        let before = Mutex<pthread_t?>(nil)
        let after = Mutex<pthread_t?>(nil)
        let task = executor.startTask {
            before.withLock { $0 = pthread_self() }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread {
                    Thread.sleep(forTimeInterval: 0.05)
                    continuation.resume()
                }
            }
            after.withLock { $0 = pthread_self() }
        }
        #expect(before.withLock { $0 } == caller)
        await task.value
        let fallbackJobs = fallback.enqueued.load(ordering: .relaxed)
        #expect(fallbackJobs >= 1)
        #expect(after.withLock { $0 } != caller)
    }
}
