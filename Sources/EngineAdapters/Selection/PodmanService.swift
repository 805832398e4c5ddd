import Foundation
import Logging
import Synchronization

/// A private `podman system service` for when Podman is installed but no API socket answers.
///
/// Supervised: restarted when it dies, stopped when ocimand stops. The socket lives in a
/// directory only root (or the invoking user) can enter.
public final class PodmanService: Sendable {
    public let socketPath: String
    private let directory: String
    private let logger: Logger
    private struct State {
        var process: Process?
        var stopping = false
        var restarts = 0
    }
    private let state = Mutex(State())

    public init(logger: Logger) throws {
        let base = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        directory = "\(base)/ociman-podman-\(getpid())"
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        socketPath = "\(directory)/podman.sock"
        self.logger = logger
    }

    public func start() throws {
        try launch()
    }

    private func launch() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.podmanPath() ?? "/usr/bin/podman")
        process.arguments = ["system", "service", "--time=0", "unix://\(socketPath)"]
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { [weak self] finished in
            self?.childExited(status: finished.terminationStatus)
        }
        try process.run()
        state.withLock { $0.process = process }
        logger.info("started private podman service", metadata: ["pid": "\(process.processIdentifier)", "socket": "\(socketPath)"])
    }

    private func childExited(status: Int32) {
        let restart = state.withLock { state -> Bool in
            state.process = nil
            guard !state.stopping else { return false }
            state.restarts += 1
            return true
        }
        guard restart else { return }
        logger.warning("private podman service exited; restarting", metadata: ["status": "\(status)"])
        // A crash loop should not spin: the restart waits a moment.
        Thread.sleep(forTimeInterval: 0.5)
        try? launch()
    }

    public var pid: Int32? { state.withLock { $0.process?.processIdentifier } }

    /// SIGTERM, then SIGKILL when it has not exited within `grace`: a service that hangs (or is
    /// stopped) must not hold up ocimand's own exit.
    public func stop(grace: Duration = .seconds(5)) {
        let process = state.withLock { state -> Process? in
            state.stopping = true
            return state.process
        }
        if let process, process.isRunning {
            process.terminate()
            let deadline = ContinuousClock.now + grace
            while process.isRunning, ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.02) }
            if process.isRunning {
                logger.warning("private podman service ignored SIGTERM; killing it", metadata: ["pid": "\(process.processIdentifier)"])
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    public static func podmanPath() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/podman"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
