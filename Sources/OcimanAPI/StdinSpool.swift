import Foundation
import Glibc
import Synchronization

/// Holds an exec's standard input between the request body and the engine: in memory up to
/// `memoryLimit` (most inputs are small), beyond that in an unlinked temporary file, so twenty 30 MB inputs arriving at
/// once cost twenty small buffers of memory, not 600 MB. Written while the body arrives (the
/// exec's options may follow its input in the JSON, so the exec cannot start earlier), then
/// read once, in chunks, as the engine takes them.
final class StdinSpool: Sendable {
    static let memoryLimit = 256 << 10
    static let readChunk = 64 << 10

    private struct State {
        var memory: [UInt8] = []
        var file: Int32 = -1
        var fileSize = 0
    }

    private let state = Mutex(State())

    var isEmpty: Bool { state.withLock { $0.memory.isEmpty && $0.fileSize == 0 } }

    func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        try state.withLock { state in
            if state.file < 0, state.memory.count + bytes.count <= Self.memoryLimit {
                state.memory += bytes
                return
            }
            if state.file < 0 { state.file = try Self.openTemporaryFile() }
            try Self.write(bytes, to: state.file, at: state.fileSize)
            state.fileSize += bytes.count
        }
    }

    /// The input, memory first, then the file, a chunk per pull.
    func chunks() -> AsyncThrowingStream<[UInt8], any Error> {
        let offset = Mutex(0)
        return AsyncThrowingStream { [self] in
            try offset.withLock { offset in
                try state.withLock { state -> [UInt8]? in
                    if offset < state.memory.count {
                        let end = min(state.memory.count, offset + Self.readChunk)
                        defer { offset = end }
                        return Array(state.memory[offset..<end])
                    }
                    let fileOffset = offset - state.memory.count
                    guard fileOffset < state.fileSize else { return nil }
                    var chunk = [UInt8](repeating: 0, count: min(Self.readChunk, state.fileSize - fileOffset))
                    let count = chunk.withUnsafeMutableBytes { pread(state.file, $0.baseAddress, $0.count, off_t(fileOffset)) }
                    guard count > 0 else { throw SpoolError("cannot read the spooled stdin: errno \(errno)") }
                    offset += count
                    return Array(chunk[..<count])
                }
            }
        }
    }

    deinit {
        let file = state.withLock { $0.file }
        if file >= 0 { close(file) }
    }

    private static func openTemporaryFile() throws -> Int32 {
        var template = Array((NSTemporaryDirectory() + "ociman-stdin-XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { throw SpoolError("cannot spool stdin: errno \(errno)") }
        _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
        // Unlinked at once: the file lives exactly as long as the descriptor.
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return descriptor
    }

    private static func write(_ bytes: [UInt8], to descriptor: Int32, at offset: Int) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset + written)) }
            guard count > 0 else { throw SpoolError("cannot spool stdin: errno \(errno)") }
            written += count
        }
    }

    struct SpoolError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
