import CMicroHTTPD
import Glibc
import NIOCore
import Synchronization
import WebSockets

/// An accepted handshake waiting for libmicrohttpd to send the 101 and hand over the socket.
struct PendingWebSocket: Sendable {
    let session: @Sendable (WebSocketConnection) async -> Void
}

/// The upgraded connections of one server: those whose 101 is queued, keyed by their request,
/// and the sockets running a session, which shutdown closes.
final class WebSocketUpgrades: Sendable {
    private let pending = Mutex<[UInt: PendingWebSocket]>([:])
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    func expect(_ upgrade: PendingWebSocket, for request: UnsafeMutableRawPointer) {
        pending.withLock { $0[UInt(bitPattern: request)] = upgrade }
    }

    /// The request ended; its upgrade, if it never happened, is forgotten.
    func forget(_ request: UnsafeMutableRawPointer) {
        _ = pending.withLock { $0.removeValue(forKey: UInt(bitPattern: request)) }
    }

    /// libmicrohttpd sent the 101 and hands over `socket` (`handle` gives it back). The socket
    /// is duplicated for SwiftNIO, which closes its copy when the session ends; then the original
    /// goes back to libmicrohttpd, which closes it and counts the connection gone.
    func upgraded(request: UnsafeMutableRawPointer, prefetched: [UInt8], socket: CInt, handle: OpaquePointer) {
        let handle = UpgradeHandle(pointer: handle)
        guard let upgrade = pending.withLock({ $0.removeValue(forKey: UInt(bitPattern: request)) }) else {
            handle.close()
            return
        }
        let descriptor = dup(socket)
        guard descriptor >= 0 else {
            handle.close()
            return
        }
        Task {
            var channelID: ObjectIdentifier?
            await WebSocketChannel.serve(descriptor: descriptor, prefetched: prefetched, session: upgrade.session) { channel in
                channelID = ObjectIdentifier(channel)
                open.withLock { $0[ObjectIdentifier(channel)] = channel }
            }
            if let channelID { _ = open.withLock { $0.removeValue(forKey: channelID) } }
            handle.close()
        }
    }

    var openCount: Int { open.withLock { $0.count } }

    /// On shutdown: every session's socket is closed (its engine process then ends as for a
    /// client that left).
    func closeAll() {
        for channel in open.withLock({ Array($0.values) }) { channel.close(promise: nil) }
    }
}

/// libmicrohttpd's handle of an upgraded connection; closing it is safe from any thread.
private struct UpgradeHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    func close() { ociman_mhd_upgrade_close(pointer) }
}
