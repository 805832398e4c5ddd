import Glibc
import Synchronization

/// Notices clients that hang up while their connection is suspended.
///
/// libmicrohttpd does not watch suspended sockets, so a client that leaves a followed log or a
/// long wait would otherwise keep its engine request alive forever. A suspended connection has
/// nothing to read from the client, so POLLRDHUP/POLLHUP on it means the client is gone.
/// (A client that half-closes after sending its request is treated as gone as well.)
final class DisconnectWatch: Sendable {
    private struct Entry {
        let descriptor: Int32
        weak var context: RequestContext?
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])
    private let loop = Mutex<Task<Void, Never>?>(nil)
    private let interval: Duration

    init(interval: Duration) { self.interval = interval }

    func add(_ context: RequestContext) {
        guard context.socketDescriptor >= 0 else { return }
        entries.withLock { $0[ObjectIdentifier(context)] = Entry(descriptor: context.socketDescriptor, context: context) }
    }

    func remove(_ context: RequestContext) {
        entries.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(context)) }
    }

    func start() {
        loop.withLock { task in
            guard task == nil else { return }
            task = Task { [weak self, interval] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    self?.check()
                }
            }
        }
    }

    func stop() {
        loop.withLock { task in
            task?.cancel()
            task = nil
        }
    }

    private func check() {
        let snapshot = entries.withLock { Array($0.values) }
        guard !snapshot.isEmpty else { return }
        var descriptors = snapshot.map { pollfd(fd: $0.descriptor, events: Int16(0x2000), revents: 0) }
        guard poll(&descriptors, nfds_t(descriptors.count), 0) > 0 else { return }
        let hangup = Int16(0x2000) | Int16(POLLHUP) | Int16(POLLERR)
        for (entry, polled) in zip(snapshot, descriptors) where polled.revents & hangup != 0 {
            guard let context = entry.context else { continue }
            remove(context)
            context.clientDisconnected()
        }
    }
}
