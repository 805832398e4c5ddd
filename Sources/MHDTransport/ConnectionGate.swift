import CMicroHTTPD
import Glibc
import Synchronization

/// Owns every client connection from accept until its first request head is in, then hands it
/// to libmicrohttpd (`MHD_add_connection`; the daemon has no listen socket of its own).
///
/// Why: libmicrohttpd answers a head it cannot parse (malformed request or header line, bad
/// `Content-Length`, unsupported version, too big for its pool) with a compiled-in HTML body,
/// before any callback could replace it. The gate reads the head with `MSG_PEEK` only, so the
/// bytes stay queued for libmicrohttpd, checks it with `HeadSyntax`, and answers a head that
/// fails with a problem document and a close. It is also the one place that enforces the
/// connection caps (a fast 503) and the deadline for the first head (408).
///
/// One thread, one epoll set, no thread per connection. A pending connection is watched
/// edge-triggered: each arrival of data is an edge even while earlier bytes sit unread, and each
/// edge costs one peek of at most `headBytes + 1` bytes. A client usually sends its head in one
/// segment, so that is one peek and one parse per connection; requests after the first on a
/// connection never pass here and cost nothing.
///
/// Left to libmicrohttpd (HTML answers remain there): heads after the first on a kept-alive
/// connection, including pipelined ones that arrive with the first (libmicrohttpd reads ahead
/// into its own buffer, so they cannot be gated without copying every byte through a proxy, or a
/// thread hop per request), and the framing of chunks that arrive after the first peek, which
/// libmicrohttpd decodes before any callback sees the body (the chunks that come with the head
/// are checked here). `RequestHead` still checks every head that reaches the access handler.
final class ConnectionGate: @unchecked Sendable {
    struct Settings {
        var limits: HeadSyntax.Limits
        /// From accept until the head is in (`headerTimeout`, else the idle timeout: a connection
        /// in the gate is never left waiting without a bound).
        var headDeadline: Duration
        var requestTimeout: Duration?
        var answers: ClosingAnswers
    }

    /// Takes ownership of a connection whose head is complete and sound (the descriptor, its
    /// context, the peer address as accept gave it).
    typealias HandOver = @Sendable (Int32, ConnectionContext, UnsafePointer<sockaddr>, socklen_t) -> Void

    private let settings: Settings
    private let connections: ConnectionTable
    private let handOver: HandOver
    /// Closed (and a unix socket file removed) by `stopAccepting`, under the lock so that the
    /// gate thread never accepts on a descriptor number that is being reused.
    private let listener: Mutex<ListeningSocket?>
    private let listenerDescriptor: Int32
    private let epoll: Int32
    private let wake: Int32
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?

    // MARK: State of the gate thread only

    private struct Pending {
        let context: ConnectionContext
        let address: sockaddr_storage
        let addressLength: socklen_t
        var deadline: ContinuousClock.Instant
        var lateAnswer: [UInt8]
        var requestLineSeen = false
        var checked = HeadSyntax.Progress()
    }

    private var pending: [Int32: Pending] = [:]
    /// Refused connections: answered and shut for writing, read and dropped until the client
    /// closes or `lingerTime` passes, so that closing with unread bytes does not reset the
    /// connection and destroy the answer before the client has read it.
    private var lingering: [Int32: ContinuousClock.Instant] = [:]
    private var listenerPausedUntil: ContinuousClock.Instant?
    private let peekBuffer: UnsafeMutableRawBufferPointer

    /// Past this many lingering connections a refused one is closed at once: lingering
    /// descriptors are not counted against the caps, so they need their own bound.
    private static let lingerRoom = 64
    private static let lingerTime = Duration.seconds(2)
    /// How often deadlines are checked while connections are pending or lingering.
    private static let tickMilliseconds: Int32 = 100
    private static let tick = Duration.milliseconds(tickMilliseconds)

    init(listener socket: ListeningSocket, connections: ConnectionTable, settings: Settings, handOver: @escaping HandOver) throws {
        self.settings = settings
        self.connections = connections
        self.handOver = handOver
        self.listener = Mutex(socket)
        self.listenerDescriptor = socket.descriptor
        self.peekBuffer = .allocate(byteCount: settings.limits.headBytes + 1, alignment: 1)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        wake = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard epoll >= 0, wake >= 0,
            Self.watch(epoll, wake, events: EPOLLIN.rawValue),
            Self.watch(epoll, socket.descriptor, events: EPOLLIN.rawValue)
        else {
            let error = ListenAddressError.system("connection gate", String(cString: strerror(errno)))
            if epoll >= 0 { _ = close(epoll) }
            if wake >= 0 { _ = close(wake) }
            peekBuffer.deallocate()
            throw error
        }
    }

    func start() throws {
        let retained = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { argument in
                ociman_name_thread("ocimand-gate")
                Unmanaged<ConnectionGate>.fromOpaque(argument!).takeRetainedValue().run()
                return nil
            }, retained)
        guard created == 0 else {
            Unmanaged<ConnectionGate>.fromOpaque(retained).release()
            throw ListenAddressError.system("connection gate thread", String(cString: strerror(created)))
        }
        self.thread = thread
    }

    /// New clients are refused by the kernel from now on; connections already accepted go on.
    func stopAccepting() {
        listener.withLock { socket in
            guard let open = socket else { return }
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, open.descriptor, nil)
            open.close()
            socket = nil
        }
    }

    /// Stops the thread and closes every connection it still holds. Called once, after `start`
    /// (the server's lock on its gate orders the two).
    func stop() {
        stopAccepting()
        stopping.store(true, ordering: .releasing)
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
        if let thread { pthread_join(thread, nil) }
        thread = nil
        _ = close(epoll)
        _ = close(wake)
        peekBuffer.deallocate()
    }

    // MARK: - The gate thread

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        var nextTick = ContinuousClock.now.advanced(by: Self.tick)
        while !stopping.load(ordering: .acquiring) {
            let waiting = !pending.isEmpty || !lingering.isEmpty || listenerPausedUntil != nil
            let timeout = waiting ? Self.tickMilliseconds : -1
            let count = epoll_wait(epoll, &events, Int32(events.count), timeout)
            for event in events.prefix(max(0, Int(count))) {
                let descriptor = event.data.fd
                if descriptor == wake {
                    var value: UInt64 = 0
                    _ = read(wake, &value, 8)
                } else if descriptor == listenerDescriptor, pending[descriptor] == nil, lingering[descriptor] == nil {
                    acceptAll()
                } else if lingering[descriptor] != nil {
                    discard(descriptor)
                } else if pending[descriptor] != nil {
                    let ended = EPOLLRDHUP.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue
                    inspect(descriptor, peerEnded: event.events & ended != 0)
                }
            }
            let now = ContinuousClock.now
            if now >= nextTick {
                expire(now)
                nextTick = now.advanced(by: Self.tick)
            }
        }
        for (descriptor, entry) in pending {
            _ = close(descriptor)
            connections.remove(entry.context)
        }
        for descriptor in lingering.keys { _ = close(descriptor) }
        pending = [:]
        lingering = [:]
    }

    private func acceptAll() {
        listener.withLock { socket in
            guard let socket else { return }
            // A bounded batch, so pending connections are not starved by a flood of new ones.
            for _ in 0..<64 {
                var address = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let descriptor = withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        ociman_accept(socket.descriptor, $0, &length)
                    }
                }
                if descriptor >= 0 {
                    admit(descriptor, address, length)
                    continue
                }
                switch errno {
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: stop watching the listener for a tick rather than spin
                    // on it; clients wait in the backlog meanwhile.
                    _ = Self.watch(epoll, socket.descriptor, events: 0, modify: true)
                    listenerPausedUntil = ContinuousClock.now.advanced(by: Self.tick)
                    return
                default:
                    return
                }
            }
        }
    }

    private func admit(_ descriptor: Int32, _ address: sockaddr_storage, _ length: socklen_t) {
        var address = address
        let (context, admission) = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connections.admit(descriptor: descriptor, address: $0)
            }
        }
        switch admission {
        case .overGlobalCap:
            refuse(descriptor, settings.answers.overGlobalCap, watched: false)
        case .overClientCap:
            refuse(descriptor, settings.answers.overClientCap, watched: false)
        case .admitted:
            let now = ContinuousClock.now
            pending[descriptor] = Pending(
                context: context, address: address, addressLength: length,
                deadline: now.advanced(by: settings.headDeadline), lateAnswer: settings.answers.headTimeout)
            let events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
            if !Self.watch(epoll, descriptor, events: events) { drop(descriptor) }
        }
    }

    /// Peeks at what the client has sent and decides: wait, refuse, or hand over.
    private func inspect(_ descriptor: Int32, peerEnded: Bool) {
        guard var entry = pending[descriptor] else { return }
        let received = recv(descriptor, peekBuffer.baseAddress, peekBuffer.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if received == 0 || (received < 0 && errno != EAGAIN && errno != EINTR) {
            drop(descriptor)
            return
        }
        guard received > 0 else { return }
        let peeked = UnsafeRawBufferPointer(rebasing: peekBuffer[..<received])
        var verdict = HeadSyntax.check(peeked, limits: settings.limits, resuming: &entry.checked)
        // The chunked body bytes that came with the head: the only ones the gate can see.
        if case .complete(let length, chunked: true) = verdict,
            let refusal = HeadSyntax.checkChunkedPrefix(UnsafeRawBufferPointer(rebasing: peeked[length...]))
        {
            verdict = .refused(refusal)
        }
        switch verdict {
        case .complete:
            pending[descriptor] = nil
            _ = epoll_ctl(epoll, EPOLL_CTL_DEL, descriptor, nil)
            var address = entry.address
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { handOver(descriptor, entry.context, $0, entry.addressLength) }
            }
        case .refused(let refusal):
            pending[descriptor] = nil
            connections.remove(entry.context)
            refuse(descriptor, settings.answers.answer(refusal.status, refusal.detail), watched: true)
        case .incomplete(let requestLine):
            // The client shut its side with the head unfinished: it can never be finished.
            if peerEnded {
                drop(descriptor)
                return
            }
            // From the request line on, the request deadline runs too (`requestTimeout`).
            if requestLine, !entry.requestLineSeen {
                entry.requestLineSeen = true
                if let requestTimeout = settings.requestTimeout {
                    let requestDeadline = ContinuousClock.now.advanced(by: requestTimeout)
                    if requestDeadline < entry.deadline {
                        entry.deadline = requestDeadline
                        entry.lateAnswer = settings.answers.requestTimeout
                    }
                }
            }
            pending[descriptor] = entry
        }
    }

    private func expire(_ now: ContinuousClock.Instant) {
        for (descriptor, entry) in pending {
            guard now >= entry.deadline else { continue }
            pending[descriptor] = nil
            connections.remove(entry.context)
            refuse(descriptor, entry.lateAnswer, watched: true)
        }
        for (descriptor, deadline) in lingering where now >= deadline {
            lingering[descriptor] = nil
            _ = close(descriptor)
        }
        if let paused = listenerPausedUntil, now >= paused {
            listenerPausedUntil = nil
            listener.withLock { socket in
                if let socket { _ = Self.watch(epoll, socket.descriptor, events: EPOLLIN.rawValue, modify: true) }
            }
        }
    }

    /// Answers and ends a connection the gate owns (no longer counted against the caps).
    private func refuse(_ descriptor: Int32, _ answer: [UInt8], watched: Bool) {
        // Non-blocking, a few hundred bytes into an empty send buffer: all of it goes.
        _ = answer.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        _ = shutdown(descriptor, Int32(SHUT_WR))
        guard lingering.count < Self.lingerRoom else {
            _ = close(descriptor)
            return
        }
        let events = EPOLLIN.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        guard Self.watch(epoll, descriptor, events: events, modify: watched) else {
            _ = close(descriptor)
            return
        }
        lingering[descriptor] = ContinuousClock.now.advanced(by: Self.lingerTime)
        discard(descriptor)
    }

    /// Reads and drops what a refused client still sends; closes once it has closed.
    private func discard(_ descriptor: Int32) {
        // Edge-triggered: read until nothing is left, within a bound per wake-up.
        for _ in 0..<16 {
            let count = recv(descriptor, peekBuffer.baseAddress, peekBuffer.count, Int32(MSG_DONTWAIT))
            if count > 0 { continue }
            if count < 0, errno == EAGAIN || errno == EINTR { return }
            break
        }
        lingering[descriptor] = nil
        _ = close(descriptor)
    }

    /// A connection that left (or could not be watched) before its head was in: closed unanswered.
    private func drop(_ descriptor: Int32) {
        guard let entry = pending.removeValue(forKey: descriptor) else { return }
        _ = close(descriptor)
        connections.remove(entry.context)
    }

    private static func watch(_ epoll: Int32, _ descriptor: Int32, events: UInt32, modify: Bool = false) -> Bool {
        var event = epoll_event()
        event.events = events
        event.data.fd = descriptor
        return epoll_ctl(epoll, modify ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, descriptor, &event) == 0
    }
}
