import CLinux
import Foundation
import Synchronization

/// Whether something listens on a TCP port inside a container's network namespace, seen from
/// the engine's host.
///
/// The readiness wait needs it because a published port can accept while nothing listens
/// behind it: Docker's userland proxy (and rootless port forwarders) accept first and dial the
/// container afterwards, and while the container's network is still coming up that dial can
/// hang instead of failing, so the host side alone cannot tell.
///
/// The kernel is asked the way `ss` asks it: a socket-diagnostics netlink socket made inside the
/// container's network namespace, asked for listening sockets only (tens of µs). Where ocimand
/// may not join that namespace, `/proc/<pid>/net/tcp` and `tcp6` are read instead; each read
/// walks the host's whole connection hash table (3.4 ms on these machines, about the probe's
/// whole pause).
final class ListeningSockets: Sendable {
    private let pid: Int
    /// The netlink socket, and the sequence number of its last request.
    private let diagnostics: Mutex<(socket: Int32, sequence: UInt32)?>

    /// For the container whose main process is `pid` on this host.
    init(pid: Int) {
        self.pid = pid
        diagnostics = Mutex(Self.diagnosticsSocket(inNetworkNamespaceOf: pid).map { ($0, 0) })
    }

    deinit {
        diagnostics.withLock { if let (socket, _) = $0 { close(socket) } }
    }

    /// Whether the kernel is asked directly (else the `/proc` tables are read).
    var asksTheKernel: Bool { diagnostics.withLock { $0 != nil } }

    /// nil when the tables cannot be read (ocimand in another PID namespace, or no such process).
    func isListening(port: Int) -> Bool? {
        let asked = diagnostics.withLock { state -> Bool? in
            guard var current = state else { return nil }
            defer { state = current }
            return Self.ask(current.socket, port: port, sequence: &current.sequence)
        }
        return asked ?? Self.isListening(port: port, pid: pid)
    }

    // MARK: Socket diagnostics

    private final class NamespaceJoin: @unchecked Sendable {
        let namespace: Int32
        var socket: Int32 = -1
        init(namespace: Int32) { self.namespace = namespace }
    }

    /// setns(2) moves only the calling thread, so a thread of its own joins the namespace, makes
    /// the socket (which stays in that namespace) and ends.
    private static func diagnosticsSocket(inNetworkNamespaceOf pid: Int) -> Int32? {
        guard pid > 0 else { return nil }
        let namespace = open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
        guard namespace >= 0 else { return nil }
        defer { close(namespace) }
        let join = NamespaceJoin(namespace: namespace)
        let context = Unmanaged.passRetained(join).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { context in
                let join = Unmanaged<NamespaceJoin>.fromOpaque(context!).takeRetainedValue()
                if setns(join.namespace, OCIMAN_CLONE_NEWNET) == 0 {
                    join.socket = socket(
                        AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
                }
                return nil
            }, context)
        guard created == 0 else {
            Unmanaged<NamespaceJoin>.fromOpaque(context).release()
            return nil
        }
        pthread_join(thread, nil)
        guard join.socket >= 0 else { return nil }
        // An answer that never comes must not hold the probe.
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(join.socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return join.socket
    }

    /// Asks for the TCP sockets in LISTEN state, IPv4 then IPv6; nil when the kernel does not answer.
    private static func ask(_ socket: Int32, port: Int, sequence: inout UInt32) -> Bool? {
        for family in [AF_INET, AF_INET6] {
            sequence &+= 1
            guard let ports = listeningPorts(socket, family: UInt8(family), sequence: sequence) else { return nil }
            if ports.contains(port) { return true }
        }
        return false
    }

    private static let tcpListenState: UInt8 = 10

    static func listeningPorts(_ socket: Int32, family: UInt8, sequence: UInt32) -> Set<Int>? {
        var header = nlmsghdr()
        header.nlmsg_len = UInt32(MemoryLayout<nlmsghdr>.size + MemoryLayout<inet_diag_req_v2>.size)
        header.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
        header.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
        header.nlmsg_seq = sequence
        var request = inet_diag_req_v2()
        request.sdiag_family = family
        request.sdiag_protocol = UInt8(IPPROTO_TCP)
        request.idiag_states = 1 << UInt32(tcpListenState)
        var message = [UInt8]()
        withUnsafeBytes(of: &header) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: &request) { message.append(contentsOf: $0) }
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = withUnsafePointer(to: &kernel) { address in
            address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(socket, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard sent == message.count else { return nil }

        var ports = Set<Int>()
        var buffer = [UInt8](repeating: 0, count: 32 << 10)
        let headerSize = MemoryLayout<nlmsghdr>.size
        while true {
            let received = recv(socket, &buffer, buffer.count, 0)
            guard received > 0 else { return nil }
            var offset = 0
            while offset + headerSize <= received {
                let length = Int(buffer.load(UInt32.self, at: offset))
                let type = Int32(buffer.load(UInt16.self, at: offset + 4))
                let replyTo = buffer.load(UInt32.self, at: offset + 8)
                guard length >= headerSize, offset + length <= received else { return nil }
                if replyTo == sequence {
                    switch type {
                    case NLMSG_DONE: return ports
                    case NLMSG_ERROR: return nil
                    case Int32(SOCK_DIAG_BY_FAMILY):
                        // inet_diag_msg: family, state, timer, retransmits, then the socket id,
                        // whose source port (network order) comes first.
                        let body = offset + headerSize
                        if length >= headerSize + 6, buffer[body + 1] == tcpListenState {
                            ports.insert(Int(buffer[body + 4]) << 8 | Int(buffer[body + 5]))
                        }
                    default: break
                    }
                }
                offset += (length + 3) & ~3
            }
        }
    }

    // MARK: /proc tables

    /// nil when the tables cannot be read (ocimand in another PID namespace, or no such process).
    static func isListening(port: Int, pid: Int) -> Bool? {
        var readable = false
        for table in ["tcp", "tcp6"] {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/net/\(table)", encoding: .utf8) else { continue }
            readable = true
            if isListening(port: port, table: text) { return true }
        }
        return readable ? false : nil
    }

    /// Rows are `sl local_address rem_address st ...`; the local port is the hex after the
    /// last `:` of the address and state `0A` is LISTEN.
    static func isListening(port: Int, table: String) -> Bool {
        for row in table.split(separator: "\n").dropFirst() {
            let columns = row.split(separator: " ", omittingEmptySubsequences: true)
            guard columns.count > 3, columns[3] == "0A",
                let colon = columns[1].lastIndex(of: ":"),
                let localPort = Int(columns[1][columns[1].index(after: colon)...], radix: 16)
            else { continue }
            if localPort == port { return true }
        }
        return false
    }
}

extension [UInt8] {
    /// Netlink headers are in the host's byte order.
    fileprivate func load<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}
