import Glibc
import Synchronization

/// Notices clients that hang up while their connection is suspended.
///
/// libmicrohttpd does not watch suspended sockets, so a client that leaves a followed log or a
/// long wait would otherwise keep its engine request alive forever.
///
/// The policy: a client is gone when its socket reports POLLHUP or POLLERR (a reset, or both
/// directions shut). POLLRDHUP alone, the peer's FIN, is not enough: a client may half-close
/// after sending its whole request and still read the answer, and that answer is sent. On a unix
/// socket a peer that really closed shows POLLHUP by itself. On TCP the FIN looks the same either
/// way, so the connection probes the peer once (`ConnectionContext.probePeer`): a closed peer
/// resets, and the next check sees it. A half-closed client keeps its request until the answer
/// is sent or a write fails.
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
        let peerShutWrite = Int16(0x2000)  // POLLRDHUP, which Glibc's module does not export
        var descriptors = snapshot.map { pollfd(fd: $0.descriptor, events: peerShutWrite, revents: 0) }
        guard poll(&descriptors, nfds_t(descriptors.count), 0) > 0 else { return }
        let gone = Int16(POLLHUP) | Int16(POLLERR)
        for (entry, polled) in zip(snapshot, descriptors) where polled.revents != 0 {
            guard let context = entry.context else { continue }
            if polled.revents & gone != 0 {
                remove(context)
                context.clientDisconnected()
            } else if polled.revents & peerShutWrite != 0 {
                context.connectionContext.probePeer()
            }
        }
    }
}
