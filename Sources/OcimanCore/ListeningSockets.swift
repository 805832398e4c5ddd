import Foundation

/// Whether a process's network namespace has a TCP socket listening on a port, read from
/// `/proc/<pid>/net/tcp` and `tcp6` on the engine's host.
///
/// The readiness wait needs it because a published port can accept while nothing listens
/// behind it: Docker's userland proxy (and rootless port forwarders) accept first and dial the
/// container afterwards, and while the container's network is still coming up that dial can
/// hang instead of failing, so the host side alone cannot tell.
enum ListeningSockets {
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
