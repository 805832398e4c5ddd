import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// `ssh://[user@]host[:port]`, as the docker CLI and Podman take it.
public struct SSHDestination: Sendable, Equatable {
    public var user: String?
    public var host: String
    public var port: Int?

    public init(user: String?, host: String, port: Int?) {
        self.user = user
        self.host = host
        self.port = port
    }

    public var url: String {
        "ssh://" + (user.map { "\($0)@" } ?? "") + (host.contains(":") ? "[\(host)]" : host) + (port.map { ":\($0)" } ?? "")
    }

    /// `-l`/`-p` only when given: anything else (keys, known hosts, proxies, the real host name)
    /// comes from the user's ssh configuration.
    var options: [String] {
        (user.map { ["-l", $0] } ?? []) + (port.map { ["-p", String($0)] } ?? [])
    }
}

/// An engine on another host, reached through the system `ssh` client: each connection is one
/// ssh process whose stdin and stdout are the connection (a NIO pipe channel). Connections are
/// pooled like any other, so a process serves many requests.
public final class SSHTransport: EngineTransport {
    public enum Target: Sendable, Equatable {
        /// `docker system dial-stdio` run on the remote host, as the docker CLI does.
        case dockerDialStdio
        /// Podman's socket at this path on the remote host (`ssh://host/path/to/podman.sock`),
        /// through `podman --url unix://PATH system dial-stdio` run there (OpenSSH's `-W` takes
        /// only host:port).
        case podmanSocket(String)
    }

    public let destination: SSHDestination
    public let target: Target
    private let executable: String
    /// What the last ssh process that failed wrote on stderr (host key, authentication...).
    private let lastFailure = Mutex<String?>(nil)

    public init(destination: SSHDestination, target: Target, executable: String = "ssh") {
        self.destination = destination
        self.target = target
        self.executable = executable
    }

    public var endpoint: String {
        switch target {
        case .dockerDialStdio: destination.url
        case .podmanSocket(let path): destination.url + path
        }
    }

    public var failureDetail: String? { lastFailure.withLock { $0 } }

    func arguments(connectTimeout: Duration) -> [String] {
        // BatchMode: a daemon has nobody to type a password or accept a new host key.
        let seconds = max(1, connectTimeout.components.seconds)
        var arguments = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=\(seconds)", "-T"] + destination.options
        switch target {
        case .dockerDialStdio: arguments += ["--", destination.host, "docker", "system", "dial-stdio"]
        case .podmanSocket(let path):
            // The remote shell reads the command line: the path is quoted for it.
            let quoted = "'" + "unix://\(path)".replacingOccurrences(of: "'", with: "'\\''") + "'"
            arguments += ["--", destination.host, "podman", "--url", quoted, "system", "dial-stdio"]
        }
        return arguments
    }

    public func connect(
        on eventLoop: any EventLoop, timeout: Duration, halfClosure: Bool,
        protocolHandlers: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.locate(executable))
        process.arguments = arguments(connectTimeout: timeout)
        let toSSH = Pipe()
        let fromSSH = Pipe()
        let errors = Pipe()
        process.standardInput = toSSH
        process.standardOutput = fromSSH
        process.standardError = errors
        let stderr = StderrTail()
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { stderr.append(data) }
        }
        let endpoint = self.endpoint
        process.terminationHandler = { [weak self] finished in
            // 255 is ssh's own failure; a remote command's failure is its status.
            guard finished.terminationReason == .exit, finished.terminationStatus != 0 else { return }
            let text = stderr.text
            self?.lastFailure.withLock {
                $0 = "ssh to \(endpoint) exited with status \(finished.terminationStatus)" + (text.isEmpty ? "" : ": \(text)")
            }
        }
        let input: Int32
        let output: Int32
        do {
            try process.run()
            // NIO owns its own copies (close-on-exec, so later ssh children do not hold them:
            // a pipe end held elsewhere would keep EOF from arriving).
            input = fcntl(fromSSH.fileHandleForReading.fileDescriptor, F_DUPFD_CLOEXEC, 0)
            output = fcntl(toSSH.fileHandleForWriting.fileDescriptor, F_DUPFD_CLOEXEC, 0)
            try fromSSH.fileHandleForReading.close()
            try toSSH.fileHandleForWriting.close()
            guard input >= 0, output >= 0 else { throw EngineError.unavailable("dup: errno \(errno)") }
        } catch {
            if process.isRunning { process.terminate() }
            throw EngineError.unavailable("cannot start ssh for \(endpoint): \(error)")
        }
        do {
            let channel = try await NIOPipeBootstrap(group: eventLoop)
                .channelOption(.allowRemoteHalfClosure, value: halfClosure)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try protocolHandlers(channel) }
                }
                .takingOwnershipOfDescriptors(input: input, output: output).get()
            // Our ends closed means ssh sees EOF and exits; the signal is for one that hangs.
            let child = SSHChild(process)
            channel.closeFuture.whenComplete { _ in child.terminate() }
            return channel
        } catch {
            close(input)
            close(output)
            if process.isRunning { process.terminate() }
            throw EngineError.unavailable("cannot use ssh's stdio for \(endpoint): \(error)")
        }
    }

    /// The host name the ssh configuration resolves the destination to (`ssh -G`): where the
    /// engine's published ports are. nil when ssh cannot tell.
    public func configuredHostName() -> String? {
        let process = Process()
        guard let path = try? Self.locate(executable) else { return nil }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-G"] + destination.options + ["--", destination.host]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("hostname ") {
            return String(line.dropFirst("hostname ".count))
        }
        return nil
    }

    static func locate(_ executable: String) throws -> String {
        if executable.contains("/") { return executable }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/\(executable)") {
            return "\(directory)/\(executable)"
        }
        throw EngineError.unavailable("\(executable) not found in PATH")
    }
}

/// The ssh process of one connection. Process is not Sendable; it is only asked whether it runs
/// and signalled, which Foundation does under its own lock.
private final class SSHChild: @unchecked Sendable {
    private let process: Process
    init(_ process: Process) { self.process = process }
    func terminate() { if process.isRunning { process.terminate() } }
}

/// The last few KiB an ssh process wrote on stderr.
private final class StderrTail: Sendable {
    private let bytes = Mutex<[UInt8]>([])
    private static let limit = 4096

    func append(_ data: Data) {
        bytes.withLock { bytes in
            bytes += data
            if bytes.count > Self.limit { bytes.removeFirst(bytes.count - Self.limit) }
        }
    }

    var text: String {
        String(decoding: bytes.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
