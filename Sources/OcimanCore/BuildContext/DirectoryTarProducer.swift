import Glibc

/// Streams a directory as a tar archive through the content hash's own walk (`DirectoryWalker`,
/// SPEC §5): depth first, siblings by name bytes, symbolic links stored as links, never followed.
/// Regular files, directories and symbolic links are archived; devices, FIFOs and sockets are
/// left out (the hash ignores them too, and the engine would refuse devices). Hidden files
/// are included and no `.dockerignore` is applied, so the engine receives exactly what the
/// hash covered. Modes and modification times are kept; owners become root.
///
/// Pull-based: each `next()` reads at most about `chunkSize` bytes of file data, so a slow
/// engine slows the walk and memory stays at one chunk whatever the context's size.
final class DirectoryTarProducer {
    static let chunkSize = 1 << 20

    private var walker: DirectoryWalker
    /// The current regular file's bytes still to copy, and the zeros that then end its member.
    private var remaining: UInt64 = 0
    private var padding = 0
    private var inFile = false
    private var finished = false
    private let buffer: UnsafeMutableRawBufferPointer

    init(root: String) throws(ContentHashError) {
        walker = try DirectoryWalker(root: root, options: .archiving)
        buffer = .allocate(byteCount: Self.chunkSize, alignment: 4096)
    }

    deinit {
        buffer.deallocate()
    }

    /// The next piece of the archive, or nil after the end-of-archive blocks were returned.
    func next() throws(ContentHashError) -> [UInt8]? {
        if finished { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(Self.chunkSize + 4 * TarWriter.blockSize)
        while output.count < Self.chunkSize {
            if inFile {
                try copyFileData(into: &output)
                continue
            }
            guard let entry = try walker.next() else {
                output += TarWriter.endOfArchive
                finished = true
                break
            }
            try appendHeader(for: entry, into: &output)
        }
        return output
    }

    private func copyFileData(into output: inout [UInt8]) throws(ContentHashError) {
        let want = Int(min(remaining, UInt64(min(buffer.count, Self.chunkSize - output.count))))
        if want > 0 {
            let count = try walker.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            if count == 0 {
                throw walker.failure(
                    .unreadable,
                    reason: "the file shrank while it was sent to the engine (\(remaining) bytes missing)")
            }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            remaining -= UInt64(count)
        }
        if remaining == 0 {
            output += [UInt8](repeating: 0, count: padding)
            inFile = false
        }
    }

    /// Appends the entry's header; a regular file's data follows through `copyFileData`.
    private func appendHeader(for entry: DirectoryWalker.Entry, into output: inout [UInt8]) throws(ContentHashError) {
        let mode = UInt32(entry.status.st_mode)
        let modificationTime = Int64(entry.status.st_mtim.tv_sec)
        switch entry.kind {
        case .regularFile:
            output += TarWriter.header(
                path: walker.path, kind: .regular, size: entry.size, mode: mode, modificationTime: modificationTime)
            remaining = entry.size
            padding = TarWriter.padding(for: entry.size)
            inFile = true
        case .directory:
            output += TarWriter.header(
                path: walker.path, kind: .directory, mode: mode, modificationTime: modificationTime)
        case .symbolicLink:
            guard let target = try walker.linkTarget() else { return }
            output += TarWriter.header(
                path: walker.path, kind: .symbolicLink, mode: mode, modificationTime: modificationTime,
                linkTarget: target)
        }
    }
}
