import Glibc

/// Feeds a directory tree into a content hash in the order SPEC §5 fixes: depth first,
/// each directory's entries sorted by name bytes, regular files only, symlinks never followed.
///
/// Works on raw bytes and file descriptors throughout (openat relative to the parent
/// directory), so non-UTF-8 names hash exactly and no path is re-resolved per file.
enum DirectoryWalker {
    /// Large enough to amortise syscalls on big files, small enough to stay in L2/L3
    /// between the read and the hash.
    static let readBufferSize = 1 << 20
    /// Below this a readahead hint is not worth its syscall.
    static let sequentialHintThreshold: Int = 4 << 20

    static func hashTree(root: String, into hasher: inout SegmentHasher) throws(ContentHashError) {
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if rootFD < 0 {
            let code = errno
            let kind: ContentHashError.Kind =
                switch code {
                case ENOENT: .notFound
                case ENOTDIR: .notADirectory
                default: .unreadable
                }
            throw ContentHashError(kind: kind, path: root, reason: errorText(code), errno: code)
        }
        var walk = Walk(root: root)
        defer { walk.finish() }
        try walk.run(rootFD: rootFD, hasher: &hasher)
    }

    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }
}

// d_type and st_mode values from the Linux ABI, spelled out because Glibc exposes them
// as macros Swift does not always import.
private let directoryEntryUnknown: UInt8 = 0
private let directoryEntryDirectory: UInt8 = 4
private let directoryEntryRegular: UInt8 = 8
private let fileTypeMask: mode_t = 0o170000
private let fileTypeRegular: mode_t = 0o100000
private let fileTypeDirectory: mode_t = 0o040000

/// One directory's names, kept in a single NUL-separated byte arena: tens of thousands of
/// entries then cost two allocations instead of one per name.
private struct Listing {
    struct Entry {
        var start: Int
        var length: Int
        var type: UInt8
    }

    var names: [UInt8] = []
    var entries: [Entry] = []

    mutating func sortByNameBytes() {
        names.withUnsafeBufferPointer { arena in
            let base = arena.baseAddress!
            entries.sort { lhs, rhs in
                let shared = min(lhs.length, rhs.length)
                let order = memcmp(base + lhs.start, base + rhs.start, shared)
                return order != 0 ? order < 0 : lhs.length < rhs.length
            }
        }
    }
}

private struct Frame {
    var fd: Int32
    var listing: Listing
    var next: Int
    /// Length of the relative path prefix (including the trailing "/") for this directory.
    var prefixLength: Int
}

private struct Walk: ~Copyable {
    let root: String
    let buffer: UnsafeMutableRawBufferPointer
    /// Relative path of the current entry, `/`-separated raw bytes.
    var path: [UInt8] = []
    var stack: [Frame] = []

    init(root: String) {
        self.root = root
        self.buffer = .allocate(byteCount: DirectoryWalker.readBufferSize, alignment: 4096)
    }

    mutating func finish() {
        for frame in stack { close(frame.fd) }
        stack.removeAll()
        buffer.deallocate()
    }

    mutating func run(rootFD: Int32, hasher: inout SegmentHasher) throws(ContentHashError) {
        try enter(directoryFD: rootFD)
        while !stack.isEmpty {
            let top = stack.count - 1
            let index = stack[top].next
            if index == stack[top].listing.entries.count {
                close(stack[top].fd)
                stack.removeLast()
                continue
            }
            stack[top].next += 1
            let entry = stack[top].listing.entries[index]
            let directoryFD = stack[top].fd
            path.removeSubrange(stack[top].prefixLength...)
            // A separate reference to the arena: visiting may push frames onto `stack`.
            let names = stack[top].listing.names
            try names.withUnsafeBufferPointer { arena throws(ContentHashError) in
                path.append(contentsOf: arena[entry.start..<(entry.start + entry.length)])
                let name = UnsafeRawPointer(arena.baseAddress! + entry.start)
                    .assumingMemoryBound(to: CChar.self)
                try visit(name: name, type: entry.type, in: directoryFD, hasher: &hasher)
            }
        }
    }

    private mutating func visit(
        name: UnsafePointer<CChar>, type: UInt8, in directoryFD: Int32,
        hasher: inout SegmentHasher
    ) throws(ContentHashError)
    {
        var type = type
        if type == directoryEntryUnknown {
            // Some filesystems do not fill d_type; lstat-equivalent keeps symlinks unfollowed.
            var status = stat()
            guard fstatat(directoryFD, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                throw failure(.unreadable, errno)
            }
            switch status.st_mode & fileTypeMask {
            case fileTypeRegular: type = directoryEntryRegular
            case fileTypeDirectory: type = directoryEntryDirectory
            default: return
            }
        }
        switch type {
        case directoryEntryRegular:
            try hashFile(name: name, in: directoryFD, hasher: &hasher)
        case directoryEntryDirectory:
            // O_NOFOLLOW: if the name was swapped for a symlink since readdir, skip it.
            let fd = openat(directoryFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 {
                let code = errno
                if code == ELOOP || code == ENOTDIR { return }
                throw failure(.unreadable, code)
            }
            path.append(UInt8(ascii: "/"))
            try enter(directoryFD: fd)
        default:
            return  // symlinks, devices, FIFOs and sockets contribute nothing
        }
    }

    private mutating func enter(directoryFD fd: Int32) throws(ContentHashError) {
        let listing: Listing
        do {
            listing = try readListing(fd)
        } catch {
            close(fd)
            throw error
        }
        stack.append(Frame(fd: fd, listing: listing, next: 0, prefixLength: path.count))
    }

    /// Reads the whole directory, then releases the DIR stream so deep trees hold only
    /// one descriptor per level, not a readdir buffer per level.
    private func readListing(_ fd: Int32) throws(ContentHashError) -> Listing {
        let streamFD = dup(fd)
        guard streamFD >= 0, let stream = fdopendir(streamFD) else {
            let code = errno
            if streamFD >= 0 { close(streamFD) }
            throw failure(.unreadable, code)
        }
        defer { closedir(stream) }
        var listing = Listing()
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        while true {
            errno = 0
            guard let entry = readdir(stream) else {
                if errno != 0 { throw failure(.unreadable, errno) }
                break
            }
            let name = UnsafeRawPointer(entry).advanced(by: nameOffset)
                .assumingMemoryBound(to: UInt8.self)
            let length = strlen(name)
            if name[0] == UInt8(ascii: ".")
                && (length == 1 || (length == 2 && name[1] == UInt8(ascii: ".")))
            {
                continue
            }
            let start = listing.names.count
            listing.names.append(contentsOf: UnsafeBufferPointer(start: name, count: length))
            listing.names.append(0)  // lets openat take the name straight from the arena
            listing.entries.append(.init(start: start, length: length, type: entry.pointee.d_type))
        }
        listing.sortByNameBytes()
        return listing
    }

    private func hashFile(
        name: UnsafePointer<CChar>, in directoryFD: Int32, hasher: inout SegmentHasher
    ) throws(ContentHashError)
    {
        // O_NONBLOCK so a name swapped for a FIFO since readdir cannot hang the open.
        let fd = openat(directoryFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let code = errno
            if code == ELOOP { return }  // became a symlink since readdir
            throw failure(.unreadable, code)
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw failure(.unreadable, errno) }
        guard status.st_mode & fileTypeMask == fileTypeRegular else { return }

        var remaining = Int(status.st_size)
        hasher.push(marker: "file.path")
        path.withUnsafeBytes { hasher.push($0) }
        hasher.push(marker: "file.content")
        hasher.beginSegment(length: UInt64(remaining))
        if remaining >= DirectoryWalker.sequentialHintThreshold {
            _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
        }
        while remaining > 0 {
            let count = read(fd, buffer.baseAddress, min(buffer.count, remaining))
            if count < 0 {
                let code = errno
                if code == EINTR { continue }
                throw failure(.unreadable, code)
            }
            if count == 0 {
                throw failure(
                    .changedDuringHashing,
                    reason: "file ended \(remaining) bytes short of the size it had when opened")
            }
            hasher.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            remaining -= count
        }
    }

    private func failure(_ kind: ContentHashError.Kind, _ code: Int32) -> ContentHashError {
        ContentHashError(
            kind: kind, path: displayPath, reason: DirectoryWalker.errorText(code), errno: code)
    }

    private func failure(_ kind: ContentHashError.Kind, reason: String) -> ContentHashError {
        ContentHashError(kind: kind, path: displayPath, reason: reason)
    }

    private var displayPath: String {
        if path.isEmpty { return root }
        let relative = String(decoding: path, as: UTF8.self)
        return root.hasSuffix("/") ? root + relative : root + "/" + relative
    }
}
