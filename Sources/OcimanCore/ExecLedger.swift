import Foundation
import Glibc
import Synchronization

/// The exec processes this ocimand started and has not seen end.
///
/// No engine ends an exec when its client goes away, so ocimand does: when a stream is dropped,
/// on SIGTERM for those still running, and, after a crash, on the next start for those the
/// previous process left behind. For the last, each open exec is a file in the state directory
/// (its name the exec id, its content the owning ocimand process), created when the exec starts
/// and removed when it is over. Several ocimand processes may share a state directory: only
/// records whose owner is no longer running are leftovers.
public final class ExecLedger: Sendable {
    private let directory: String?
    private let open = Mutex<Set<String>>([])

    /// In memory only: nothing survives a crash.
    public init() {
        directory = nil
    }

    public init(directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        self.directory = directory
    }

    /// Exec ids whose ocimand process has ended; read once, at start.
    public var isPersistent: Bool { directory != nil }

    public func leftovers() -> [String] {
        guard let directory else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { name in
            guard Self.isExecID(name), let owner = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            else { return false }
            return !Self.isRunning(owner: owner)
        }
    }

    /// This process, as `<pid> <start time>`: a PID alone may have been reused since.
    private static let ownerTag: String = {
        let pid = getpid()
        return "\(pid) \(HostProcessTree.startTime(of: pid) ?? 0)"
    }()

    private static func isRunning(owner: String) -> Bool {
        let parts = owner.split(separator: " ")
        guard parts.count == 2, let pid = Int32(parts[0]), let start = UInt64(parts[1]) else { return false }
        return HostProcessTree.startTime(of: pid) == start
    }

    /// Execs started by this process and not yet over.
    var running: [String] { open.withLock { Array($0) } }

    func opened(_ execID: String) {
        guard Self.isExecID(execID) else { return }
        open.withLock { _ = $0.insert(execID) }
        guard let path = path(of: execID) else { return }
        // A plain write, no fsync or rename (this runs on the exec's path): losing a record in a
        // power cut only means that process is not ended for us.
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        _ = Self.ownerTag.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
        Glibc.close(descriptor)
    }

    func closed(_ execID: String) {
        open.withLock { _ = $0.remove(execID) }
        if let path = path(of: execID) { unlink(path) }
    }

    private func path(of execID: String) -> String? {
        directory.map { $0 + "/" + execID }
    }

    /// Engine exec ids are hex; anything else in the directory is not ours to act on.
    static func isExecID(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && name.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
