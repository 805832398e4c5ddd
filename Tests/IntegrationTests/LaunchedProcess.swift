import Foundation
import OcimanTestSupport
import Synchronization

/// A process started by hand — ocimand with its own listen address or environment, a wrapper
/// such as systemd-socket-activate, a private Podman service — with its output in a log file.
/// Killed when released, so a failing test leaves nothing running.
///
/// Spawned with posix_spawn and reaped here, not with Foundation's `Process`: Foundation notices
/// a child's exit by a descriptor the child inherits, so a child that closes inherited
/// descriptors (systemd-socket-activate does) makes its monitor thread block in waitpid and
/// every other `Process` in the test run hang.
final class LaunchedProcess: Sendable {
    let pid: pid_t
    let logPath: String
    private let exitStatus = Mutex<Int32?>(nil)

    static func start(_ executable: String, _ arguments: [String], environment: [String: String] = [:])
        throws -> LaunchedProcess
    {
        let logPath = NSTemporaryDirectory() + "ociman-launched-\(UUID().uuidString).log"
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard result == 0 else { throw TestSupportError("posix_spawn \(executable): \(String(cString: strerror(result)))") }
        return LaunchedProcess(pid: pid, logPath: logPath)
    }

    private init(pid: pid_t, logPath: String) {
        self.pid = pid
        self.logPath = logPath
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    /// Reaps the process if it has exited; its exit status (128 + signal when killed by one).
    private func poll() -> Int32? {
        exitStatus.withLock { known in
            if let known { return known }
            var status: Int32 = 0
            guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
            let signal = status & 0x7f
            known = signal == 0 ? (status >> 8) & 0xff : 128 + signal
            return known
        }
    }

    var isRunning: Bool { poll() == nil }

    /// ocimand itself, with `OCIMAN_BACKEND=engine`.
    static func ocimand(engine: String, _ arguments: [String], environment: [String: String] = [:]) throws -> LaunchedProcess {
        let binary = try OcimandProcess.locateBinary()
        return try start(
            binary.hasPrefix("/") ? binary : FileManager.default.currentDirectoryPath + "/" + binary, arguments,
            environment: ["OCIMAN_BACKEND": engine].merging(environment) { $1 })
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log matches `pattern` (a regular expression); the match, or nil when the
    /// process exited or the time ran out.
    func waitForLog(_ pattern: String, timeout: Duration = .seconds(30)) async -> String? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let text = log
            if let range = text.range(of: pattern, options: .regularExpression) { return String(text[range]) }
            if !isRunning { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// The TCP port from ocimand's "address=HOST:PORT" line.
    func listeningPort(timeout: Duration = .seconds(30)) async throws -> Int {
        guard let match = await waitForLog(#"address=[^ ]*:[0-9]+ "#, timeout: timeout),
            let port = Int(match.dropLast().split(separator: ":").last ?? "")
        else { throw TestSupportError("ocimand did not start listening:\n\(log)") }
        return port
    }

    /// Exit status once exited within `timeout`, else nil.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let status = poll() { return status }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    func signal(_ number: Int32) { kill(pid, number) }

    /// SIGTERM, then the exit status (SIGKILL after `timeout`, reported as nil).
    func terminate(timeout: Duration = .seconds(20)) async -> Int32? {
        if let status = poll() { return status }
        signal(SIGTERM)
        if let status = await waitForExit(timeout: timeout) { return status }
        signal(SIGKILL)
        _ = await waitForExit(timeout: .seconds(5))
        return nil
    }

    /// Runs ocimand to its exit (for startup failures): status and output.
    static func runOcimand(engine: String = "docker", _ arguments: [String], environment: [String: String] = [:]) async throws
        -> (Int32, String)
    {
        let process = try ocimand(engine: engine, arguments, environment: environment)
        guard let status = await process.waitForExit(timeout: .seconds(30)) else {
            _ = await process.terminate()
            throw TestSupportError("ocimand kept running with \(arguments):\n\(process.log)")
        }
        return (status, process.log)
    }
}

/// Children of a process (from /proc), e.g. the private Podman service ocimand supervises.
func childProcesses(of pid: Int32) -> [Int32] {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
    return tasks.flatMap { task in
        ((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "")
            .split(separator: " ").compactMap { Int32($0) }
    }
}

func processExists(_ pid: Int32) -> Bool {
    // A zombie still answers kill(0); its /proc status says so.
    guard kill(pid, 0) == 0 else { return false }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return !status.contains("State:\tZ")
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes.
func eventually(timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

/// A fresh private directory under /tmp, removed by the caller.
func temporaryDirectory(_ prefix: String) throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    return path
}

/// A TCP port on 127.0.0.1 that nothing listens on (the kernel's pick, released at once).
func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw TestSupportError("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
