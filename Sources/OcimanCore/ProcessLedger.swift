import Foundation
import Glibc
import Synchronization

/// Work whose processes ocimand must end itself, because no engine does when its client goes
/// away: exec processes, and Podman's build steps.
///
/// Ended when a stream is dropped, on SIGTERM for what is still running, and, after a crash, on
/// the next start for what the previous process left behind. For the last, each open record is
/// a file in a state directory (its name the record's id, its content the owning ocimand
/// process), created when the work starts and removed when it is over. Several ocimand
/// processes may share a state directory: only records whose owner is no longer running are
/// leftovers.
public final class ProcessLedger: Sendable {
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

    public var isPersistent: Bool { directory != nil }

    /// Ids whose ocimand process has ended; read once, at start.
    public func leftovers() -> [String] {
        guard let directory else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { name in
            guard Self.isValidID(name), let owner = try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)
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

    /// Records started by this process and not yet over.
    public var running: [String] { open.withLock { Array($0) } }

    public func opened(_ id: String) {
        guard Self.isValidID(id) else { return }
        open.withLock { _ = $0.insert(id) }
        guard let path = path(of: id) else { return }
        // A plain write, no fsync or rename (this runs on the exec's path): losing a record in a
        // power cut only means that work is not ended for us.
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        _ = Self.ownerTag.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
        Glibc.close(descriptor)
    }

    public func closed(_ id: String) {
        open.withLock { _ = $0.remove(id) }
        if let path = path(of: id) { unlink(path) }
    }

    private func path(of id: String) -> String? {
        directory.map { $0 + "/" + id }
    }

    /// Ids are lowercase hex (engine exec ids, build cgroup suffixes); anything else in the
    /// directory is not ours to act on.
    static func isValidID(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128 && name.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
