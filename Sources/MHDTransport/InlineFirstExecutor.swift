import Glibc

/// Runs a request's handler task on the libmicrohttpd thread that dispatched it, for as long as
/// the task needs nothing from another thread; from its first real wait on it runs wherever
/// `fallback` says at each resumption.
///
/// A route that answers from memory (`/health`, `/metrics`, `/openapi.yaml`) is then finished
/// before libmicrohttpd asks for the response, so the connection is never suspended and no
/// other thread is woken: those wake-ups, not the handler code, were most of the cost of a
/// request. A route that calls the engine leaves this thread at its first engine call.
final class InlineFirstExecutor: TaskExecutor, @unchecked Sendable {
    private let fallback: @Sendable () -> any TaskExecutor

    init(fallback: @escaping @Sendable () -> any TaskExecutor) {
        self.fallback = fallback
    }

    func enqueue(_ job: consuming ExecutorJob) {
        if let queue = InlineJobs.current {
            queue.jobs.append(UnownedJob(job))
        } else {
            fallback().enqueue(job)
        }
    }

    /// Starts `operation` as a task preferring this executor and runs, here and now, every job
    /// enqueued on this thread meanwhile (the task's first job included) until none is left.
    /// Jobs enqueued from other threads (a continuation resumed by I/O) go to `fallback`.
    func startTask(_ operation: sending @escaping () async -> Void) -> Task<Void, Never> {
        let queue = InlineJobs()
        let outer = InlineJobs.current
        InlineJobs.current = queue
        defer { InlineJobs.current = outer }
        let task = Task(executorPreference: self, operation: operation)
        var next = 0
        while next < queue.jobs.count {
            let job = queue.jobs[next]
            next += 1
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
        return task
    }
}

/// The jobs waiting to run inline on this thread; a thread-local so that only enqueues made on
/// the dispatching thread, during dispatch, stay on it.
private final class InlineJobs {
    var jobs: [UnownedJob] = []

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    static var current: InlineJobs? {
        get { pthread_getspecific(key).map { Unmanaged<InlineJobs>.fromOpaque($0).takeUnretainedValue() } }
        set { pthread_setspecific(key, newValue.map { Unmanaged.passUnretained($0).toOpaque() }) }
    }
}
