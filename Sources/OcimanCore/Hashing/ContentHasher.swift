/// What a build is made from, as far as the content hash is concerned (SPEC §5).
public enum ContentSource: Sendable, Hashable {
    /// Inline Dockerfile text.
    case instructions(String)
    /// A build-context directory on this host. The root itself may be a symbolic link to a
    /// directory; nothing below it is followed.
    case directory(path: String)
}

/// Inputs besides the source that take part in the hash.
public struct ContentHashOptions: Sendable, Hashable {
    /// The Dockerfile name that leaves the digest unchanged.
    public static let defaultDockerfile = "Dockerfile"

    public var buildArguments: [String: String]
    public var labels: [String: String]
    /// Dockerfile name inside the context; `nil`, empty or `"Dockerfile"` means the default
    /// and adds nothing to the hash, so digests stay equal to the library's.
    public var dockerfile: String?
    /// Build stage; `nil` or empty means the last stage and adds nothing to the hash.
    public var target: String?

    public init(
        buildArguments: [String: String] = [:],
        labels: [String: String] = [:],
        dockerfile: String? = nil,
        target: String? = nil
    ) {
        self.buildArguments = buildArguments
        self.labels = labels
        self.dockerfile = dockerfile
        self.target = target
    }
}

/// The content hash of a build: its SHA-256 in the forms the API hands out.
public struct ContentHash: Sendable, Hashable, CustomStringConvertible {
    public let sha256: SHA256Digest

    public init(sha256: SHA256Digest) {
        self.sha256 = sha256
    }

    /// `sha256:<64 lowercase hex>`
    public var digest: String { "sha256:\(tag)" }

    /// The 64 lowercase hex digits, usable as an image tag.
    public var tag: String { sha256.hex }

    /// `<name>:<tag>`, the content-addressed image reference.
    public func reference(name: String) -> String { "\(name):\(tag)" }

    public var description: String { digest }
}

/// Why a directory (or spooled tar) could not be hashed.
public struct ContentHashError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The context root does not exist.
        case notFound
        /// The context root is not a directory.
        case notADirectory
        /// A directory or file could not be opened, listed or read.
        case unreadable
        /// A file shrank while it was read, so its length segment was already wrong.
        case changedDuringHashing
        /// The temporary spool file for a tar stream could not be created, written or read.
        case spoolFailed
    }

    public let kind: Kind
    /// The path that failed; non-UTF-8 bytes appear as U+FFFD.
    public let path: String
    /// The operating system's text for the errno, or an explanation when there is none.
    public let reason: String
    public let errno: Int32?

    public init(kind: Kind, path: String, reason: String, errno: Int32? = nil) {
        self.kind = kind
        self.path = path
        self.reason = reason
        self.errno = errno
    }

    public var description: String {
        switch kind {
        case .notFound: "build context \"\(path)\" does not exist: \(reason)"
        case .notADirectory: "build context \"\(path)\" is not a directory: \(reason)"
        case .unreadable: "cannot read \"\(path)\": \(reason)"
        case .changedDuringHashing: "\"\(path)\" changed while it was hashed: \(reason)"
        case .spoolFailed: "cannot spool the tar stream in \"\(path)\": \(reason)"
        }
    }
}

/// Computes the ociman content hash (SPEC §5), byte-compatible with the ociman library.
public enum ContentHasher {
    public static func hash(
        _ source: ContentSource,
        options: ContentHashOptions = ContentHashOptions()
    ) throws(ContentHashError) -> ContentHash {
        switch source {
        case .instructions(let text):
            return hash(instructions: text, options: options)
        case .directory(let path):
            return try hash(directory: path, options: options)
        }
    }

    public static func hash(
        instructions: String,
        options: ContentHashOptions = ContentHashOptions()
    ) -> ContentHash {
        var hasher = SegmentHasher()
        hasher.push(marker: "content")
        hasher.push(instructions)
        pushTrailer(options, into: &hasher)
        return ContentHash(sha256: hasher.finalize())
    }

    public static func hash(
        directory path: String,
        options: ContentHashOptions = ContentHashOptions()
    ) throws(ContentHashError) -> ContentHash {
        var hasher = SegmentHasher()
        hasher.push(marker: "directory")
        try pushTree(root: path, into: &hasher)
        pushTrailer(options, into: &hasher)
        return ContentHash(sha256: hasher.finalize())
    }

    /// Each regular file in walk order as `file.path`, its relative path, `file.content`, its
    /// bytes; everything else the walk meets contributes nothing.
    private static func pushTree(root: String, into hasher: inout SegmentHasher) throws(ContentHashError) {
        var walker = try DirectoryWalker(root: root, options: .hashing)
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: DirectoryWalker.readBufferSize, alignment: 4096)
        defer { buffer.deallocate() }
        while let entry = try walker.next() {
            guard entry.kind == .regularFile else { continue }
            hasher.push(marker: "file.path")
            walker.path.withUnsafeBytes { hasher.push($0) }
            hasher.push(marker: "file.content")
            // The length goes in first, so the bytes that follow must match the size opened.
            hasher.beginSegment(length: entry.size)
            var remaining = entry.size
            while remaining > 0 {
                let want = Int(min(remaining, UInt64(buffer.count)))
                let count = try walker.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
                if count == 0 {
                    throw walker.failure(
                        .changedDuringHashing,
                        reason: "file ended \(remaining) bytes short of the size it had when opened")
                }
                hasher.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                remaining -= UInt64(count)
            }
        }
    }

    /// Everything after the source: the library's two sections, then ociman-only options
    /// only when they differ from their defaults, so default builds keep library digests.
    static func pushTrailer(_ options: ContentHashOptions, into hasher: inout SegmentHasher) {
        hasher.push(marker: "build-arguments")
        pushSorted(options.buildArguments, into: &hasher)
        hasher.push(marker: "labels")
        pushSorted(options.labels, into: &hasher)

        if let dockerfile = options.dockerfile, !dockerfile.isEmpty,
            dockerfile != ContentHashOptions.defaultDockerfile
        {
            hasher.push(marker: "dockerfile")
            hasher.push(dockerfile)
        }
        if let target = options.target, !target.isEmpty {
            hasher.push(marker: "target")
            hasher.push(target)
        }
    }

    /// Keys go in UTF-8 byte order, as the library's BTreeMap<String, _> does; Swift's own
    /// String ordering is by Unicode canonical equivalence and can differ.
    private static func pushSorted(_ pairs: [String: String], into hasher: inout SegmentHasher) {
        let sorted = pairs.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        for (key, value) in sorted {
            hasher.push(key)
            hasher.push(value)
        }
    }
}

extension SegmentHasher {
    mutating func push(marker: StaticString) {
        marker.withUTF8Buffer { push(UnsafeRawBufferPointer($0)) }
    }
}
