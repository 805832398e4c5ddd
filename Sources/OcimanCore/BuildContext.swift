import Glibc
import Synchronization

// st_mode file types from the Linux ABI; Glibc's S_IF* are macros Swift does not always import.
private let fileTypeMask: mode_t = 0o170000
private let fileTypeRegular: mode_t = 0o100000
private let fileTypeDirectory: mode_t = 0o040000
private let fileTypeSymbolicLink: mode_t = 0o120000

// MARK: - Context roots

/// The directories a client may name as a build context (SPEC §7). Paths are compared after
/// `realpath`, so a symbolic link inside a root that points elsewhere does not open a way out.
public struct ContextRoots: Sendable {
    public let roots: [String]

    public init(_ roots: [String]) {
        self.roots = roots
    }

    static let howToConfigure =
        "no build-context roots are configured; start ocimand with --context-root DIR (repeatable) or OCIMAN_CONTEXT_ROOTS=DIR1:DIR2"

    /// The real path of `path` when it is a directory inside a root.
    ///
    /// A path that does not resolve is reported as missing (400) only when it lies lexically
    /// inside a root; otherwise it is forbidden (403) like any other outside path, so the
    /// answer does not reveal what exists outside the roots.
    public func resolve(_ path: String, field: String = "context.path") throws(OcimanError) -> String {
        guard !roots.isEmpty else { throw OcimanError.forbidden(Self.howToConfigure) }
        guard path.hasPrefix("/") else {
            throw OcimanError.invalid(field: field, message: "must be an absolute path, got \"\(path)\"")
        }
        let resolvedRoots = roots.compactMap(Self.realPath)
        guard let resolved = Self.realPath(path) else {
            let code = errno
            let lexical = Self.lexicallyNormalized(path)
            let lexicalRoots = roots.map(Self.lexicallyNormalized)
            if (resolvedRoots + lexicalRoots).contains(where: { Self.contains(root: $0, path: lexical) }) {
                throw OcimanError.invalid(
                    field: field, message: "cannot open \"\(path)\": \(String(cString: strerror(code)))")
            }
            throw outside(path)
        }
        guard resolvedRoots.contains(where: { Self.contains(root: $0, path: resolved) }) else {
            throw outside(path)
        }
        var status = stat()
        guard stat(resolved, &status) == 0, status.st_mode & fileTypeMask == fileTypeDirectory else {
            throw OcimanError.invalid(field: field, message: "\"\(path)\" is not a directory")
        }
        return resolved
    }

    private func outside(_ path: String) -> OcimanError {
        .forbidden(
            "build context \"\(path)\" is outside the configured context roots (\(roots.joined(separator: ", ")))")
    }

    static func contains(root: String, path: String) -> Bool {
        if root == "/" { return path.hasPrefix("/") }
        return path == root || path.hasPrefix(root + "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// `.` and `..` removed without touching the filesystem (for paths that do not exist).
    static func lexicallyNormalized(_ path: String) -> String {
        var components: [Substring] = []
        for component in path.split(separator: "/") {
            if component == "." { continue }
            if component == ".." {
                _ = components.popLast()
            } else {
                components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}

// MARK: - Tar writer

/// Encodes tar members as ustar headers, preceded by a PAX extended header when a name or link
/// target is longer than the 100 bytes ustar holds or a size exceeds its 11 octal digits.
/// Owner is always root (uid/gid 0), as `docker build` sends contexts.
public enum TarWriter {
    public enum Kind: Sendable {
        case regular
        case directory
        case symbolicLink
    }

    public static let blockSize = 512
    /// Two zero blocks end an archive.
    public static let endOfArchive = [UInt8](repeating: 0, count: 2 * blockSize)
    private static let maxOctalSize: UInt64 = 0o77777777777

    /// The header block(s) for one member; for a directory, `path` should end in `/`.
    public static func header(
        path: [UInt8], kind: Kind, size: UInt64 = 0, mode: UInt32, modificationTime: Int64,
        linkTarget: [UInt8] = []
    ) -> [UInt8] {
        var records: [UInt8] = []
        if path.count > 100 { records += paxRecord("path", path) }
        if linkTarget.count > 100 { records += paxRecord("linkpath", linkTarget) }
        if size > maxOctalSize { records += paxRecord("size", Array(String(size).utf8)) }

        var output: [UInt8] = []
        if !records.isEmpty {
            output += block(
                name: Array("././@PaxHeader".utf8), typeFlag: UInt8(ascii: "x"), size: UInt64(records.count),
                mode: 0o644, modificationTime: 0, linkTarget: [])
            output += records
            output += [UInt8](repeating: 0, count: padding(for: UInt64(records.count)))
        }
        let typeFlag: UInt8 =
            switch kind {
            case .regular: UInt8(ascii: "0")
            case .directory: UInt8(ascii: "5")
            case .symbolicLink: UInt8(ascii: "2")
            }
        output += block(
            name: Array(path.prefix(100)), typeFlag: typeFlag, size: min(size, maxOctalSize), mode: mode,
            modificationTime: modificationTime, linkTarget: Array(linkTarget.prefix(100)))
        return output
    }

    /// Zero bytes after `size` content bytes up to the next block boundary.
    public static func padding(for size: UInt64) -> Int {
        let remainder = Int(size % UInt64(blockSize))
        return remainder == 0 ? 0 : blockSize - remainder
    }

    /// A whole archive holding one regular file (inline Dockerfile contexts).
    public static func singleFileArchive(name: String, contents: [UInt8], modificationTime: Int64 = 0) -> [UInt8] {
        var archive = header(
            path: Array(name.utf8), kind: .regular, size: UInt64(contents.count), mode: 0o644,
            modificationTime: modificationTime)
        archive += contents
        archive += [UInt8](repeating: 0, count: padding(for: UInt64(contents.count)))
        archive += endOfArchive
        return archive
    }

    /// `"<length> <key>=<value>\n"`, where the length counts the whole record including itself.
    static func paxRecord(_ key: String, _ value: [UInt8]) -> [UInt8] {
        let body = 1 + key.utf8.count + 1 + value.count + 1  // " key=value\n"
        var length = body + String(body).utf8.count
        if String(length).utf8.count != String(body).utf8.count { length = body + String(length).utf8.count }
        return Array("\(length) \(key)=".utf8) + value + [UInt8(ascii: "\n")]
    }

    private static func block(
        name: [UInt8], typeFlag: UInt8, size: UInt64, mode: UInt32, modificationTime: Int64, linkTarget: [UInt8]
    ) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: blockSize)
        func put(_ bytes: [UInt8], at offset: Int) {
            for (index, byte) in bytes.enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: UInt64, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
        }
        put(name, at: 0)
        put(octal(UInt64(mode & 0o7777), width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(size, width: 12), at: 124)
        put(octal(UInt64(clamping: max(0, min(modificationTime, Int64(maxOctalSize)))), width: 12), at: 136)
        header[156] = typeFlag
        put(linkTarget, at: 157)
        put(Array("ustar\0".utf8), at: 257)
        put(Array("00".utf8), at: 263)
        put(octal(0, width: 8), at: 329)
        put(octal(0, width: 8), at: 337)
        // The checksum is computed with its own field read as eight spaces.
        put([UInt8](repeating: UInt8(ascii: " "), count: 8), at: 148)
        let checksum = header.reduce(0) { $0 + UInt64($1) }
        put(octal(checksum, width: 7), at: 148)
        header[155] = UInt8(ascii: " ")
        return header
    }
}

// MARK: - Directory contexts as tar streams

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

/// The tar stream of a directory context, for `EngineRequest` bodies. Opening happens here, so
/// a missing or unreadable root fails before any engine call.
enum BuildContextArchive {
    /// `failure` keeps what went wrong mid-walk: the engine client only reports that the
    /// upload broke off, and the client deserves the file that could not be read.
    static func directory(_ root: String, failure: UploadFailure) throws(ContentHashError)
        -> AsyncThrowingStream<[UInt8], any Error>
    {
        let producer = Mutex<DirectoryTarProducer>(try DirectoryTarProducer(root: root))
        return AsyncThrowingStream {
            do {
                return try producer.withLock { producer throws(ContentHashError) in try producer.next() }
            } catch {
                throw failure.record(OcimanError(contextError: error))
            }
        }
    }

    /// Inline instructions: an archive with the Dockerfile as its only member.
    static func instructions(_ text: String) -> AsyncThrowingStream<[UInt8], any Error> {
        let archive = TarWriter.singleFileArchive(name: ContentHashOptions.defaultDockerfile, contents: Array(text.utf8))
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [UInt8].self)
        continuation.yield(archive)
        continuation.finish()
        return stream
    }
}

/// The first reason an upload to the engine was stopped on our side.
final class UploadFailure: Sendable {
    private let first = Mutex<OcimanError?>(nil)

    var error: OcimanError? { first.withLock { $0 } }

    func record(_ error: OcimanError) -> OcimanError {
        first.withLock { if $0 == nil { $0 = error } }
        return error
    }
}
