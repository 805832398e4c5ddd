import PulledStreams
import Dispatch
import Glibc
import Synchronization

/// Hands a value to code that runs later on one other thread, never concurrently.
final class UncheckedBox<Value: ~Copyable>: @unchecked Sendable {
    var value: Value
    init(_ value: consuming Value) { self.value = value }
}

/// Runs blocking work on a dispatch thread and waits for it without blocking the pool.
func offload<Value: Sendable, Failure: Error>(_ work: @escaping @Sendable () throws(Failure) -> Value) async
    -> Result<Value, Failure>
{
    await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: .userInitiated).async {
            continuation.resume(returning: Result { () throws(Failure) -> Value in try work() })
        }
    }
}
