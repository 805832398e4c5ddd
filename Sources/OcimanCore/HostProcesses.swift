import Foundation
import Glibc

/// An exec's process as this host sees it, pinned by its start time.
struct HostProcess: Sendable {
    let pid: Int32
    let container: String
    let startTime: UInt64

    /// nil when the process is not visible here (a remote engine) or already gone.
    init?(pid: Int32, container: String) {
        guard pid > 0, let startTime = HostProcessTree.startTime(of: pid) else { return nil }
        self.pid = pid
        self.container = container
        self.startTime = startTime
    }

    /// Kills it and its descendants, unless it has ended (and the PID perhaps been reused).
    func kill() -> HostProcessTree.Outcome {
        guard HostProcessTree.startTime(of: pid) == startTime else { return .notVisible }
        return HostProcessTree.kill(root: pid, cgroupMention: container)
    }
}

/// Signals host processes, found through `/proc`.
public enum HostProcessTree {
    enum Outcome: Equatable {
        case killed(Int)
        /// Not in this host's `/proc`, or not in the expected cgroup (the PID was reused).
        case notVisible
        /// Visible but not ours to signal; carries its PID in its own namespace when known.
        case denied(namespacePID: Int?)
    }

    static func kill(root: Int32, cgroupMention: String) -> Outcome {
        guard let cgroup = read("/proc/\(root)/cgroup"), cgroup.contains(cgroupMention) else { return .notVisible }
        let tree = [root] + descendants(of: root)
        var killed = 0
        for pid in tree {
            if Glibc.kill(pid, SIGKILL) == 0 {
                killed += 1
            } else if pid == root, errno == EPERM {
                return .denied(namespacePID: namespacePID(of: root))
            }
        }
        return .killed(killed)
    }

    /// Kills every process in the cgroup `path` or below it (in any hierarchy); returns how many.
    /// For work an engine runs outside any container it reports (Podman's build steps).
    @discardableResult
    public static func killCgroup(_ path: String) -> Int {
        var killed = 0
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let cgroups = read("/proc/\(entry)/cgroup") else { continue }
            let inside = cgroups.split(separator: "\n").contains { line in
                guard let colon = line.lastIndex(of: ":") else { return false }
                let member = line[line.index(after: colon)...]
                return member == path || member.hasPrefix(path + "/")
            }
            if inside, Glibc.kill(pid, SIGKILL) == 0 { killed += 1 }
        }
        return killed
    }

    /// Children first found through each process's parent in `/proc/<pid>/stat`.
    static func descendants(of root: Int32) -> [Int32] {
        var children: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = read("/proc/\(entry)/stat"),
                let parent = parentPID(stat: stat)
            else { continue }
            children[parent, default: []].append(pid)
        }
        var found: [Int32] = []
        var queue = children[root] ?? []
        while let pid = queue.popLast() {
            found.append(pid)
            queue += children[pid] ?? []
        }
        return found
    }

    /// `pid (comm) state ppid ...`; the command name may contain spaces and parentheses.
    static func parentPID(stat: String) -> Int32? {
        statField(stat, 4).flatMap { Int32($0) }
    }

    /// When the process started, in clock ticks since boot: with the PID, it names one process
    /// for good (a PID alone can be reused).
    static func startTime(of pid: Int32) -> UInt64? {
        read("/proc/\(pid)/stat").flatMap { statField($0, 22) }.flatMap { UInt64($0) }
    }

    /// Field `number` (1-based, as proc(5) counts) of a `/proc/<pid>/stat` line.
    private static func statField(_ stat: String, _ number: Int) -> Substring? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields 1 and 2 (pid, comm) end at the parenthesis.
        return fields.count > number - 3 ? fields[number - 3] : nil
    }

    /// The last `NSpid` entry of `/proc/<pid>/status`: the PID inside the innermost namespace.
    static func namespacePID(of pid: Int32) -> Int? {
        guard let status = read("/proc/\(pid)/status") else { return nil }
        let line = status.split(separator: "\n").first { $0.hasPrefix("NSpid:") }
        return line?.split(whereSeparator: { $0 == "\t" || $0 == " " }).last.flatMap { Int($0) }
    }

    /// `/proc` files report size 0, so they are read to the end rather than by their size.
    private static func read(_ path: String) -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        return (try? file.readToEnd()).map { String(decoding: $0, as: UTF8.self) }
    }
}
