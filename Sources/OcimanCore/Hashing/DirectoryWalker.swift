import Glibc

/// The one walk over a build-context directory. The content hash (SPEC §5) and the tar stream
/// sent to the engine both consume it, so they see the same entries in the same order: depth
/// first, each directory's entries sorted by name bytes, symbolic links never followed.
///
/// A cursor: each `next()` steps to one entry. Only the listings of the directories on the
/// current path are held (sorting needs a whole directory), and a regular file is handed over
/// open, to be read in pieces with `read(into:)`. Works on raw bytes and descriptors (openat
/// relative to the parent), so non-UTF-8 names survive and no path is resolved again per entry.
struct DirectoryWalker: ~Copyable {
    struct Entry {
        enum Kind {
            case regularFile
            case directory
            case symbolicLink
        }

        let kind: Kind
        /// A regular file's size when it was opened; 0 for the others.
        let size: UInt64
        /// A regular file's `fstat` through the open descriptor; for the others their `lstat`
        /// when `Options.statEntries` is set, else zeroed.
        let status: stat
    }

    struct Options {
        /// `lstat` every entry for its mode and time (the tar needs them; the hash classifies
        /// by `d_type` alone and saves a syscall per entry).
        var statEntries = false
        /// An entry removed between the listing and its opening is skipped (the tar sends what
        /// is there) rather than reported unreadable (the hash refuses a tree that moves).
        var skipVanished = false

        static let hashing = Options()
        static let archiving = Options(statEntries: true, skipVanished: true)
    }

    /// Large enough to amortise syscalls on big files, small enough to stay in L2/L3
    /// between the read and its consumer.
    static let readBufferSize = 1 << 20
    /// Below this a readahead hint is not worth its syscall.
    static let sequentialHintThreshold: UInt64 = 4 << 20

    let root: String
    private let options: Options
    /// Relative path of the current entry, `/`-separated raw bytes; a directory's ends in `/`.
    private(set) var path: [UInt8] = []
    private var stack: [Frame] = []
    /// The current regular file, or -1; closed when the walk moves on.
    private var file: Int32 = -1
    /// Where the current entry's name starts in its parent's (the top frame's) name arena.
    private var nameStart = 0

    /// Opens `root`; a root that is missing, not a directory or unreadable fails here.
    init(root: String, options: Options) throws(ContentHashError) {
        self.root = root
        self.options = options
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if rootFD < 0 {
            let code = errno
            let kind: ContentHashError.Kind =
                switch code {
                case ENOENT: .notFound
                case ENOTDIR: .notADirectory
                default: .unreadable
                }
            throw ContentHashError(kind: kind, path: root, reason: Self.errorText(code), errno: code)
        }
        try enter(directoryFD: rootFD)
    }

    deinit {
        if file >= 0 { close(file) }
        for frame in stack { close(frame.fd) }
    }

    static func errorText(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// Steps to the next entry (a directory is entered as it is returned); nil when the walk
    /// is complete. Devices, FIFOs and sockets are never returned.
    mutating func next() throws(ContentHashError) -> Entry? {
        if file >= 0 {
            close(file)
            file = -1
        }
        while let top = stack.indices.last {
            let index = stack[top].next
            if index == stack[top].listing.entries.count {
                close(stack[top].fd)
                stack.removeLast()
                continue
            }
            stack[top].next += 1
            let listed = stack[top].listing.entries[index]
            let directoryFD = stack[top].fd
            path.removeSubrange(stack[top].prefixLength...)
            nameStart = listed.start
            // A separate reference to the arena: entering a directory pushes onto `stack`.
            let names = stack[top].listing.names
            let entry = try names.withUnsafeBufferPointer { arena throws(ContentHashError) in
                path.append(contentsOf: arena[listed.start..<(listed.start + listed.length)])
                let name = UnsafeRawPointer(arena.baseAddress! + listed.start)
                    .assumingMemoryBound(to: CChar.self)
                return try visit(name: name, type: listed.type, in: directoryFD)
            }
            if let entry { return entry }
        }
        return nil
    }

    /// The current regular file's next bytes, as many as fit in `buffer`; 0 at its end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ContentHashError) -> Int {
        while true {
            let count = Glibc.read(file, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            let code = errno
            if code != EINTR { throw failure(.unreadable, code) }
        }
    }

    /// The current symbolic link's target; nil when the name no longer is a link.
    func linkTarget() throws(ContentHashError) -> [UInt8]? {
        guard let parent = stack.last?.fd else { return nil }
        var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = stack[stack.count - 1].listing.names.withUnsafeBufferPointer { arena in
            let name = UnsafeRawPointer(arena.baseAddress! + nameStart).assumingMemoryBound(to: CChar.self)
            return target.withUnsafeMutableBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { readlinkat(parent, name, $0.baseAddress!, $0.count) }
            }
        }
        guard count >= 0 else {
            let code = errno
            if code == ENOENT || code == EINVAL { return nil }
            throw failure(.unreadable, code)
        }
        return Array(target[0..<count])
    }

    /// An error about the current entry (the root before the first entry).
    func failure(_ kind: ContentHashError.Kind, reason: String) -> ContentHashError {
        ContentHashError(kind: kind, path: displayPath, reason: reason)
    }

    private func failure(_ kind: ContentHashError.Kind, _ code: Int32) -> ContentHashError {
        ContentHashError(kind: kind, path: displayPath, reason: Self.errorText(code), errno: code)
    }

    private var displayPath: String {
        if path.isEmpty { return root }
        let relative = String(decoding: path, as: UTF8.self)
        return root.hasSuffix("/") ? root + relative : root + "/" + relative
    }

    private mutating func visit(name: UnsafePointer<CChar>, type listedType: UInt8, in directoryFD: Int32)
        throws(ContentHashError) -> Entry?
    {
        var status = stat()
        let type: mode_t
        if options.statEntries || listedType == directoryEntryUnknown {
            // Some filesystems do not fill d_type; AT_SYMLINK_NOFOLLOW keeps symlinks unfollowed.
            guard fstatat(directoryFD, name, &status, AT_SYMLINK_NOFOLLOW) == 0 else {
                try vanishedOrFail(errno)
                return nil
            }
            type = status.st_mode & fileTypeMask
        } else {
            // DT_* values are the S_IF* file types shifted right by 12.
            type = mode_t(listedType) << 12
        }
        switch type {
        case fileTypeRegular:
            return try openFile(name: name, in: directoryFD)
        case fileTypeDirectory:
            // O_NOFOLLOW: if the name was swapped for a symlink since the listing, skip it.
            let fd = openat(directoryFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if fd < 0 {
                let code = errno
                if code != ELOOP && code != ENOTDIR { try vanishedOrFail(code) }
                return nil
            }
            path.append(UInt8(ascii: "/"))
            try enter(directoryFD: fd)
            return Entry(kind: .directory, size: 0, status: status)
        case fileTypeSymbolicLink:
            return Entry(kind: .symbolicLink, size: 0, status: status)
        default:
            return nil  // devices, FIFOs and sockets are not part of a build context
        }
    }

    private mutating func openFile(name: UnsafePointer<CChar>, in directoryFD: Int32)
        throws(ContentHashError) -> Entry?
    {
        // O_NONBLOCK so a name swapped for a FIFO since the listing cannot hang the open.
        let fd = openat(directoryFD, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            let code = errno
            if code != ELOOP { try vanishedOrFail(code) }  // ELOOP: became a symlink
            return nil
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            close(fd)
            throw failure(.unreadable, code)
        }
        guard status.st_mode & fileTypeMask == fileTypeRegular else {
            close(fd)
            return nil
        }
        file = fd
        let size = UInt64(status.st_size)
        if size >= Self.sequentialHintThreshold { _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL) }
        return Entry(kind: .regularFile, size: size, status: status)
    }

    private func vanishedOrFail(_ code: Int32) throws(ContentHashError) {
        if code == ENOENT && options.skipVanished { return }
        throw failure(.unreadable, code)
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
}

// d_type and st_mode values from the Linux ABI, spelled out because Glibc exposes them
// as macros Swift does not always import.
private let directoryEntryUnknown: UInt8 = 0
private let fileTypeMask: mode_t = 0o170000
private let fileTypeRegular: mode_t = 0o100000
private let fileTypeDirectory: mode_t = 0o040000
private let fileTypeSymbolicLink: mode_t = 0o120000

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
