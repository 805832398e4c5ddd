import EngineDriver
import Foundation
import Synchronization

/// A running `ocimand` binary, started the way a user would start it.
public final class OcimandProcess: Sendable {
    public let engine: String
    public let host: String
    public let port: Int
    /// Set when it listens on a unix socket instead (`host` and `port` are then empty).
    public let unixSocket: String?
    private let process: ProcessBox
    public let logPath: String

    public var baseURL: String { "http://\(host):\(port)" }

    /// Starts ocimand on an ephemeral loopback port (or on `unixSocket`) with `OCIMAN_BACKEND` set
    /// to the engine's backend, in the variant's environment (`TestEngines`), as the variant's account.
    public static func start(
        engine: String,
        arguments: [String] = [],
        environment: [String: String] = [:],
        unixSocket: String? = nil
    ) async throws -> OcimandProcess {
        let binary = try locateBinary()
        let logPath = NSTemporaryDirectory() + "ocimand-test-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        let ocimandArguments = ["--listen", unixSocket.map { "unix:\($0)" } ?? "127.0.0.1:0"] + arguments
        var variables: [String: String]
        if let account = TestEngines.account(for: engine) {
            // setpriv execs ocimand itself: the pid and its signals are ocimand's.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(account.uid)", "--regid=\(account.gid)", "--init-groups", "--", binary] + ocimandArguments
            variables = [:]
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = ocimandArguments
            variables = ProcessInfo.processInfo.environment
        }
        variables["OCIMAN_BACKEND"] = TestEngines.backend(for: engine)
        for (key, value) in TestEngines.environment(for: engine) { variables[key] = value }
        for (key, value) in environment { variables[key] = value }
        process.environment = variables
        process.standardOutput = log
        process.standardError = log
        try process.run()
        let box = ProcessBox(process)
        // ocimand logs "address=HOST:PORT" (or "address":"HOST:PORT" with --log-format json) once it listens.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let unixSocket, text.contains("listening") && FileManager.default.fileExists(atPath: unixSocket) {
                return OcimandProcess(engine: engine, host: "", port: 0, unixSocket: unixSocket, process: box, logPath: logPath)
            }
            if let range = text.range(of: #"address"?[=:]"?127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                let port = Int(text[range].split(separator: ":").last!)!
                return OcimandProcess(engine: engine, host: "127.0.0.1", port: port, unixSocket: nil, process: box, logPath: logPath)
            }
            if !process.isRunning {
                throw TestSupportError("ocimand exited with \(process.terminationStatus) at startup:\n\(text)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        _ = box.terminate()
        throw TestSupportError("ocimand did not start listening within 30 s")
    }

    private init(engine: String, host: String, port: Int, unixSocket: String?, process: ProcessBox, logPath: String) {
        self.engine = engine
        self.host = host
        self.port = port
        self.unixSocket = unixSocket
        self.process = process
        self.logPath = logPath
    }

    public var processIdentifier: Int32 { process.pid }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        process.terminate()
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public static func locateBinary() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["OCIMAN_BINARY"] { return explicit }
        // The test bundle sits in the build directory next to the products.
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = directory.appendingPathComponent("ocimand").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        for candidate in [".build/debug/ocimand", ".build/release/ocimand"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw TestSupportError("ocimand binary not found; run `swift build` first or set OCIMAN_BINARY")
    }
}

private final class ProcessBox: @unchecked Sendable {
    private let process: Process
    private let lock = Mutex(false)

    init(_ process: Process) { self.process = process }

    var pid: Int32 { process.processIdentifier }

    func terminate() -> Int32 {
        lock.withLock { stopped in
            if !stopped, process.isRunning {
                process.terminate()
            }
            stopped = true
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Unix-socket connections the process holds (its engine connections: ocimand listens on TCP here).
public func engineConnections(of pid: Int32) -> Int {
    let unixInodes = Set(
        String(decoding: FileHandle(forReadingAtPath: "/proc/net/unix")?.readDataToEndOfFile() ?? Data(), as: UTF8.self)
            .split(separator: "\n").dropFirst()
            .compactMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst(6).first.map(String.init) })
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
    return descriptors.filter { descriptor in
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)"),
            target.hasPrefix("socket:[")
        else { return false }
        return unixInodes.contains(String(target.dropFirst(8).dropLast()))
    }.count
}
