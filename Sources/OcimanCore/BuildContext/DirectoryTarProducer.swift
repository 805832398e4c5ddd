import Glibc

// st_mode file types from the Linux ABI; Glibc's S_IF* are macros Swift does not always import.
private let fileTypeMask: mode_t = 0o170000
private let fileTypeRegular: mode_t = 0o100000
private let fileTypeDirectory: mode_t = 0o040000
private let fileTypeSymbolicLink: mode_t = 0o120000

/// Streams a directory as a tar archive, walking it in the content hash's order (SPEC §5):
/// depth first, siblings by name bytes, symbolic links stored as links and never followed.
/// Regular files, directories and symbolic links are archived; devices, FIFOs and sockets are
/// left out (the hash ignores them too, and the engine would refuse devices). Hidden files
/// are included and no `.dockerignore` is applied, so the engine receives exactly what the
/// hash covered. Modes and modification times are kept; owners become root.
///
/// Pull-based: each `next()` reads at most about `chunkSize` bytes of file data, so a slow
/// engine slows the walk and memory stays at one chunk whatever the context's size.
final class DirectoryTarProducer {
    static let chunkSize = 1 << 20

    private struct Frame {
        var fd: Int32
        var names: [[UInt8]]
        var next: Int
        var prefixLength: Int
    }

    private struct OpenFile {
        var fd: Int32
        var remaining: UInt64
        var padding: Int
    }

    private let root: String
    private var stack: [Frame] = []
    private var path: [UInt8] = []
    private var file: OpenFile?
    private var finished = false
    private let buffer: UnsafeMutableRawBufferPointer

    init(root: String) throws(ContentHashError) {
        self.root = root
        buffer = .allocate(byteCount: Self.chunkSize, alignment: 4096)
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            buffer.deallocate()
            let kind: ContentHashError.Kind = code == ENOENT ? .notFound : code == ENOTDIR ? .notADirectory : .unreadable
            throw ContentHashError(kind: kind, path: root, reason: String(cString: strerror(code)), errno: code)
        }
        try enter(fd)
    }

    deinit {
        if let file { close(file.fd) }
        for frame in stack { close(frame.fd) }
        buffer.deallocate()
    }

    /// The next piece of the archive, or nil after the end-of-archive blocks were returned.
    func next() throws(ContentHashError) -> [UInt8]? {
        if finished { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(Self.chunkSize + 4 * TarWriter.blockSize)
        while output.count < Self.chunkSize {
            if file != nil {
                try copyFileData(into: &output)
                continue
            }
            guard try nextEntry(into: &output) else {
                output += TarWriter.endOfArchive
                finished = true
                break
            }
        }
        return output
    }

    private func copyFileData(into output: inout [UInt8]) throws(ContentHashError) {
        guard var current = file else { return }
        let want = Int(min(current.remaining, UInt64(min(buffer.count, Self.chunkSize - output.count))))
        if want > 0 {
            let count = read(current.fd, buffer.baseAddress, want)
            if count < 0 {
                if errno == EINTR { return }
                throw failure(.unreadable, errno)
            }
            if count == 0 {
                throw ContentHashError(
                    kind: .unreadable, path: displayPath,
                    reason: "the file shrank while it was sent to the engine (\(current.remaining) bytes missing)")
            }
            output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            current.remaining -= UInt64(count)
        }
        if current.remaining == 0 {
            output += [UInt8](repeating: 0, count: current.padding)
            close(current.fd)
            file = nil
        } else {
            file = current
        }
    }

    /// Appends the next member's header; false once the walk is complete.
    private func nextEntry(into output: inout [UInt8]) throws(ContentHashError) -> Bool {
        while let top = stack.indices.last {
            let index = stack[top].next
            guard index < stack[top].names.count else {
                close(stack[top].fd)
                stack.removeLast()
                continue
            }
            stack[top].next += 1
            let name = stack[top].names[index]
            let directoryFD = stack[top].fd
            path.removeSubrange(stack[top].prefixLength...)
            path += name
            if try visit(name: name, in: directoryFD, into: &output) { return true }
        }
        return false
    }

    /// Emits the member for `name`; false when it is skipped (special files, vanished entries).
    private func visit(name: [UInt8], in directoryFD: Int32, into output: inout [UInt8]) throws(ContentHashError)
        -> Bool
    {
        let cName = name.map { CChar(bitPattern: $0) } + [0]
        var status = stat()
        guard fstatat(directoryFD, cName, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
            if errno == ENOENT { return false }  // removed since the listing
            throw failure(.unreadable, errno)
        }
        let modificationTime = Int64(status.st_mtim.tv_sec)
        switch status.st_mode & fileTypeMask {
        case fileTypeRegular:
            // O_NONBLOCK so a name swapped for a FIFO since the listing cannot hang the open.
            let fd = openat(directoryFD, cName, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
            if fd < 0 {
                let code = errno
                if code == ELOOP || code == ENOENT { return false }
                throw failure(.unreadable, code)
            }
            var opened = stat()
            guard fstat(fd, &opened) == 0, opened.st_mode & fileTypeMask == fileTypeRegular else {
                close(fd)
                return false
            }
            let size = UInt64(opened.st_size)
            output += TarWriter.header(
                path: path, kind: .regular, size: size, mode: UInt32(opened.st_mode),
                modificationTime: Int64(opened.st_mtim.tv_sec))
            file = OpenFile(fd: fd, remaining: size, padding: TarWriter.padding(for: size))
            if size >= 4 << 20 { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
            return true
        case fileTypeDirectory:
            let fd = openat(directoryFD, cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 {
                let code = errno
                if code == ELOOP || code == ENOTDIR || code == ENOENT { return false }
                throw failure(.unreadable, code)
            }
            output += TarWriter.header(
                path: path + [UInt8(ascii: "/")], kind: .directory, mode: UInt32(status.st_mode),
                modificationTime: modificationTime)
            path.append(UInt8(ascii: "/"))
            try enter(fd)
            return true
        case fileTypeSymbolicLink:
            var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = target.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { readlinkat(directoryFD, cName, $0.baseAddress!, $0.count) }
            }
            guard count >= 0 else {
                if errno == ENOENT || errno == EINVAL { return false }
                throw failure(.unreadable, errno)
            }
            output += TarWriter.header(
                path: path, kind: .symbolicLink, mode: UInt32(status.st_mode), modificationTime: modificationTime,
                linkTarget: Array(target[0..<count]))
            return true
        default:
            return false  // devices, FIFOs and sockets are not part of a build context
        }
    }

    private func enter(_ fd: Int32) throws(ContentHashError) {
        let names: [[UInt8]]
        do {
            names = try listing(fd)
        } catch {
            close(fd)
            throw error
        }
        stack.append(Frame(fd: fd, names: names, next: 0, prefixLength: path.count))
    }

    /// Entry names sorted by bytes, as the hash walk sorts them.
    private func listing(_ fd: Int32) throws(ContentHashError) -> [[UInt8]] {
        let streamFD = dup(fd)
        guard streamFD >= 0, let stream = fdopendir(streamFD) else {
            let code = errno
            if streamFD >= 0 { close(streamFD) }
            throw failure(.unreadable, code)
        }
        defer { closedir(stream) }
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw failure(.unreadable, errno) }
                break
            }
            let pointer = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: UInt8.self)
            let name = Array(UnsafeBufferPointer(start: pointer, count: strlen(pointer)))
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return names
    }

    private func failure(_ kind: ContentHashError.Kind, _ code: Int32) -> ContentHashError {
        ContentHashError(kind: kind, path: displayPath, reason: String(cString: strerror(code)), errno: code)
    }

    private var displayPath: String {
        if path.isEmpty { return root }
        return (root.hasSuffix("/") ? root : root + "/") + String(decoding: path, as: UTF8.self)
    }
}
