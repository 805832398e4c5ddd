import Foundation
import Glibc
import OcimanClient
import Synchronization

/// Drives an interactive session from this process's terminal: stdin to the process (raw mode
/// when `tty`), its output to stdout and stderr, the terminal's size on start and on every
/// SIGWINCH. Returns the process's exit status; a detach (Ctrl-P Ctrl-Q) returns 0.
enum TerminalSession {
    static let detachKeys: [UInt8] = [0x10, 0x11]

    /// `closesStdin`: whether the end of this process's stdin is passed on as end of file.
    static func run(
        connection options: ConnectionOptions, path: String, stdin: Bool, tty: Bool, detachable: Bool, closesStdin: Bool
    ) async throws -> Int32 {
        let connection = try await options.interactive(path)
        let rawMode = tty && stdin && isatty(STDIN_FILENO) == 1 ? RawMode() : nil
        defer { rawMode?.restore() }
        let resizes = tty ? WindowSizeWatch(connection: connection) : nil
        defer { resizes?.stop() }
        let detached = DetachFlag()
        let input =
            stdin
            ? StdinPump(
                connection: connection, detachKeys: detachable && tty ? detachKeys : nil, closesStdin: closesStdin,
                detached: detached)
            : nil
        var status: Int32?
        for try await event in connection.events {
            switch event {
            case .stdout(let bytes): Output.write(bytes)
            case .stderr(let bytes): Output.write(bytes, error: true)
            case .exit(let code): status = Int32(truncatingIfNeeded: code)
            case .failed(let message):
                rawMode?.restore()
                throw CommandFailure(message)
            }
        }
        _ = input
        if detached.isSet {
            rawMode?.restore()
            FileHandle.standardError.write(Data("\r\nociman: detached\n".utf8))
            return 0
        }
        guard let status else { throw CommandFailure("the session ended without an exit status") }
        return status
    }
}

/// The terminal in raw mode (no echo, no line editing, no signals: Ctrl-C goes to the process)
/// until restored.
final class RawMode: @unchecked Sendable {
    // Unchecked: set once, restored from the command's task.
    private var saved = termios()
    private var active = false

    init?() {
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else { return nil }
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0 else { return nil }
        active = true
    }

    func restore() {
        guard active else { return }
        active = false
        tcsetattr(STDIN_FILENO, TCSANOW, &saved)
    }
}

/// Sends the terminal's size now and after every SIGWINCH.
final class WindowSizeWatch: @unchecked Sendable {
    // Unchecked: the source is set once and only cancelled after.
    private let source: any DispatchSourceSignal

    init(connection: InteractiveConnection) {
        signal(SIGWINCH, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
        self.source = source
        let send: @Sendable () -> Void = {
            var size = winsize()
            guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0, size.ws_col > 0 else { return }
            Task { try? await connection.resize(rows: Int(size.ws_row), columns: Int(size.ws_col)) }
        }
        source.setEventHandler(handler: send)
        source.resume()
        send()
    }

    func stop() { source.cancel() }
}

final class DetachFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

/// Reads stdin on a thread of its own (a blocking read must not hold one of the few threads
/// async tasks share) and writes each chunk before reading the next; end of file closes the
/// process's stdin when `closesStdin`.
final class StdinPump: Sendable {
    init(connection: InteractiveConnection, detachKeys: [UInt8]?, closesStdin: Bool, detached: DetachFlag) {
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 32 << 10)
            var previous: UInt8?
            while true {
                let count = read(STDIN_FILENO, &buffer, buffer.count)
                let done = DispatchSemaphore(value: 0)
                if count <= 0 {
                    guard closesStdin else { return }
                    Task {
                        try? await connection.closeStdin()
                        done.signal()
                    }
                    done.wait()
                    return
                }
                let chunk = Array(buffer[0..<count])
                if let detachKeys, Self.contains(detachKeys, in: chunk, after: previous) {
                    detached.set()
                    Task {
                        await connection.close()
                        done.signal()
                    }
                    done.wait()
                    return
                }
                previous = chunk.last
                Task {
                    try? await connection.write(stdin: chunk)
                    done.signal()
                }
                done.wait()
            }
        }
        thread.start()
    }

    /// The detach sequence within `chunk`, or split across the previous chunk's last byte and it.
    static func contains(_ keys: [UInt8], in chunk: [UInt8], after previous: UInt8?) -> Bool {
        let bytes = (previous.map { [$0] } ?? []) + chunk
        guard bytes.count >= keys.count else { return false }
        return (0...(bytes.count - keys.count)).contains { Array(bytes[$0..<($0 + keys.count)]) == keys }
    }
}
