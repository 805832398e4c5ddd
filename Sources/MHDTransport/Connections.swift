import CMicroHTTPD
import Glibc
import Synchronization

/// One client connection, from accept (`ConnectionGate`) until it is closed: by the gate, or by
/// libmicrohttpd after its "closed" notification.
///
/// Holds what outlives a request: when the next request head must be in by, and whether the
/// transport has already answered the connection on its own (a 408) and shut its socket, after
/// which every libmicrohttpd callback for it refuses to serve it.
final class ConnectionContext: Sendable {
    let descriptor: Int32
    /// Only TCP needs the half-close probe: a unix socket reports a peer that closed as POLLHUP.
    let isTCP: Bool
    /// Counted against the caps; a connection refused at accept is not.
    let client: ClientAddress?
    let counted: Bool

    private struct State {
        /// libmicrohttpd closes the descriptor only after its "closed" notification clears this,
        /// so under the lock a true value means the descriptor is still this connection's.
        var open = true
        /// For a head after the first on a kept-alive connection (the gate times the first).
        var headDeadline: ContinuousClock.Instant?
        var answered = false
        var probed = false
    }

    private let state: Mutex<State>

    init(descriptor: Int32, isTCP: Bool, client: ClientAddress?, counted: Bool) {
        self.descriptor = descriptor
        self.isTCP = isTCP
        self.client = client
        self.counted = counted
        self.state = Mutex(State())
    }

    /// Writes a complete answer straight to the socket and shuts it both ways. For moments when
    /// libmicrohttpd cannot queue a response (no complete head yet, or a body still arriving);
    /// nothing else writes to the socket then, and after the shutdown nothing can. libmicrohttpd
    /// then reads end-of-file and closes the connection.
    @discardableResult
    func answerAndClose(_ bytes: [UInt8]) -> Bool {
        state.withLock { state in
            guard state.open, !state.answered else { return false }
            state.answered = true
            state.headDeadline = nil
            // Non-blocking and a few hundred bytes into an empty send buffer: all of it or, for a
            // client that stopped reading, what fits; the connection goes either way.
            _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            _ = shutdown(descriptor, Int32(SHUT_RDWR))
            return true
        }
    }

    /// The sweep: answers a client whose request head is overdue.
    func answerIfHeadLate(now: ContinuousClock.Instant, _ answer: [UInt8]) -> Bool {
        let late = state.withLock { state in
            guard state.open, !state.answered, let deadline = state.headDeadline else { return false }
            return now >= deadline
        }
        return late && answerAndClose(answer)
    }

    /// The whole head of a request is in. False when the transport already answered the connection:
    /// libmicrohttpd read a request that arrived before it saw the shutdown, and must drop it.
    func headArrived() -> Bool {
        state.withLock { state in
            state.headDeadline = nil
            return !state.answered
        }
    }

    /// A request on this connection is done and the connection may be kept for another.
    func awaitNextHead(by deadline: ContinuousClock.Instant) {
        state.withLock { state in
            if state.open && !state.answered { state.headDeadline = deadline }
        }
    }

    /// The peer shut its sending side while a request was waiting (POLLRDHUP). That is a client
    /// that closed, or one that only half-closed after sending its whole request and still reads.
    /// Only a write tells them apart on TCP: a closed peer answers data with a reset, which the
    /// disconnect watch then sees as POLLERR/POLLHUP. The probe is one byte of urgent data, which a
    /// live peer's stack keeps out of the byte stream (unless it set SO_OOBINLINE). Sent at most
    /// once per connection: a second urgent byte would push the first into the stream.
    func probePeer() {
        guard isTCP else { return }
        state.withLock { state in
            guard state.open, !state.probed else { return }
            state.probed = true
            var byte: UInt8 = 0
            _ = send(descriptor, &byte, 1, Int32(MSG_OOB) | Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
    }

    func closed() {
        state.withLock { $0.open = false }
    }
}

/// A client's IP address, IPv4 in its IPv6-mapped form so both spellings are one client.
struct ClientAddress: Hashable, Sendable {
    var high: UInt64
    var low: UInt64

    init?(_ address: UnsafePointer<sockaddr>) {
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            let ipv4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
            high = 0
            low = 0xFFFF_0000_0000 | UInt64(ipv4)
        case AF_INET6:
            var bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            (high, low) = withUnsafeBytes(of: &bytes) { raw in
                (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self).bigEndian,
                 raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self).bigEndian)
            }
        default:
            return nil
        }
    }
}

/// Every open connection, counted against the global and the per-client cap.
///
/// libmicrohttpd's own caps answer nothing: past its global limit it stops accepting, so clients
/// wait unanswered in the listen backlog, and past its per-address limit it closes silently.
/// So the gate admits here at accept, answers every connection over a cap with a 503 at once, and
/// hands libmicrohttpd only admitted ones.
final class ConnectionTable: Sendable {
    enum Admission {
        case admitted
        case overGlobalCap
        case overClientCap
    }

    private struct State {
        var contexts: [ObjectIdentifier: ConnectionContext] = [:]
        var perClient: [ClientAddress: Int] = [:]
    }

    private let state = Mutex(State())
    let limit: Int
    /// 0: no per-client cap.
    let perClientLimit: Int

    init(limit: Int, perClientLimit: Int) {
        self.limit = limit
        self.perClientLimit = perClientLimit
    }

    /// A new connection, admitted and counted, or the cap it is over.
    func admit(
        descriptor: Int32, address: UnsafePointer<sockaddr>?
    ) -> (ConnectionContext, Admission) {
        let client = address.flatMap(ClientAddress.init)
        let isTCP = client != nil
        return state.withLock { state in
            let admission: Admission
            if state.contexts.count >= limit {
                admission = .overGlobalCap
            } else if let client, perClientLimit > 0, state.perClient[client, default: 0] >= perClientLimit {
                admission = .overClientCap
            } else {
                admission = .admitted
            }
            let counted = admission == .admitted
            let context = ConnectionContext(descriptor: descriptor, isTCP: isTCP, client: client, counted: counted)
            if counted {
                state.contexts[ObjectIdentifier(context)] = context
                if let client { state.perClient[client, default: 0] += 1 }
            }
            return (context, admission)
        }
    }

    func remove(_ context: ConnectionContext) {
        context.closed()
        guard context.counted else { return }
        state.withLock { state in
            state.contexts.removeValue(forKey: ObjectIdentifier(context))
            if let client = context.client {
                let remaining = state.perClient[client, default: 1] - 1
                state.perClient[client] = remaining > 0 ? remaining : nil
            }
        }
    }

    var count: Int { state.withLock { $0.contexts.count } }

    var all: [ConnectionContext] { state.withLock { Array($0.contexts.values) } }
}
