/// The safety policy for build-context tars before they reach the engine (SPEC §7): no
/// absolute paths, no `..` components, no device nodes or FIFOs, no hard or symbolic link
/// that points outside the archive root, and no entry written through an earlier
/// symbolic link (which is how a link that passes the first check would still redirect
/// a later write outside the root).
///
/// Checks are lexical and per entry, in archive order, so the stream can be refused before
/// the offending bytes are forwarded.
public struct TarValidator: Sendable, TarEntryHandler {
    /// Normalised paths of symbolic links (and hard links to them) seen so far.
    private var symbolicLinks: Set<[UInt8]> = []

    public init() {}

    public mutating func validate(_ entry: TarEntry) throws(TarError) {
        _ = try check(entry)
    }

    public mutating func tarEntryBegan(_ entry: TarEntry) throws {
        try validate(entry)
    }

    /// What `check` learned, for the spooler: where the entry lands and what it links to.
    struct Placement {
        /// `/`-joined components without `.` or empty ones; empty for the root itself.
        var path: [UInt8]
        /// Normalised hard link target (relative to the root).
        var hardLinkTarget: [UInt8]?
        /// The entry is, or hard-links to, a symbolic link: it adds no file to the tree.
        var isSymbolicLink: Bool
    }

    mutating func check(_ entry: TarEntry) throws(TarError) -> Placement {
        let name = entry.path
        let components = try Self.normalize(entry.pathBytes, entry: name)
        let path = Self.join(components[...])

        switch entry.kind {
        case .characterDevice, .blockDevice:
            throw TarError(.specialFile, entry: name, "device nodes are not allowed in a build context")
        case .fifo:
            throw TarError(.specialFile, entry: name, "FIFOs are not allowed in a build context")
        case .other(let flag):
            let shown = flag >= 0x20 && flag < 0x7f ? "'\(Character(Unicode.Scalar(flag)))'" : "\(flag)"
            throw TarError(.unsupported, entry: name, "entry type \(shown) is not supported")
        case .regular, .hardLink, .symbolicLink:
            if components.isEmpty {
                throw TarError(.malformed, entry: name, "only a directory may name the archive root")
            }
        case .directory:
            break
        }
        try requireNoSymbolicLinkPrefix(components, entry: name, what: "entry path")

        var placement = Placement(path: path, hardLinkTarget: nil, isSymbolicLink: false)
        switch entry.kind {
        case .symbolicLink:
            try checkSymbolicLinkTarget(entry.linkTargetBytes, from: components.dropLast(), entry: name)
            placement.isSymbolicLink = true
        case .hardLink:
            let target = try resolveHardLinkTarget(entry.linkTargetBytes, entry: name)
            if symbolicLinks.contains(target) {
                placement.isSymbolicLink = true
            } else {
                placement.hardLinkTarget = target
            }
        default:
            break
        }
        // A later entry replaces an earlier one at the same path, as extraction would.
        if placement.isSymbolicLink {
            symbolicLinks.insert(path)
        } else if !symbolicLinks.isEmpty {
            symbolicLinks.remove(path)
        }
        return placement
    }

    /// Splits a member name into components, refusing absolute paths and `..`.
    static func normalize(_ bytes: [UInt8], entry: String) throws(TarError) -> [ArraySlice<UInt8>] {
        if bytes.first == UInt8(ascii: "/") {
            throw TarError(.absolutePath, entry: entry, "absolute paths are not allowed")
        }
        var components: [ArraySlice<UInt8>] = []
        for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if component.elementsEqual([UInt8(ascii: ".")]) { continue }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                throw TarError(.parentReference, entry: entry, "\"..\" path components are not allowed")
            }
            components.append(component)
        }
        return components
    }

    static func join(_ components: ArraySlice<ArraySlice<UInt8>>) -> [UInt8] {
        var path: [UInt8] = []
        for component in components {
            if !path.isEmpty { path.append(UInt8(ascii: "/")) }
            path.append(contentsOf: component)
        }
        return path
    }

    /// Symbolic link targets resolve from the link's own directory.
    private func checkSymbolicLinkTarget(
        _ target: [UInt8], from directory: ArraySlice<ArraySlice<UInt8>>, entry: String
    ) throws(TarError) {
        let shown = String(decoding: target, as: UTF8.self)
        if target.isEmpty {
            throw TarError(.malformed, entry: entry, "symbolic link has an empty target")
        }
        if target.first == UInt8(ascii: "/") {
            throw TarError(
                .linkEscapesRoot, entry: entry, "symbolic link target \"\(shown)\" is absolute")
        }
        var resolved = Array(directory)
        for component in target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if component.elementsEqual([UInt8(ascii: ".")]) { continue }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if resolved.isEmpty {
                    throw TarError(
                        .linkEscapesRoot, entry: entry,
                        "symbolic link target \"\(shown)\" points outside the archive root")
                }
                // `link/..` is the parent of wherever `link` points, not of `link`'s directory.
                if symbolicLinks.contains(Self.join(resolved[...])) {
                    throw TarError(
                        .throughSymbolicLink, entry: entry,
                        "symbolic link target \"\(shown)\" climbs out of another symbolic link")
                }
                resolved.removeLast()
            } else {
                resolved.append(component)
            }
        }
    }

    /// Hard link targets in tar name another member, relative to the archive root.
    private func resolveHardLinkTarget(_ target: [UInt8], entry: String) throws(TarError) -> [UInt8] {
        let shown = String(decoding: target, as: UTF8.self)
        if target.isEmpty {
            throw TarError(.malformed, entry: entry, "hard link has an empty target")
        }
        if target.first == UInt8(ascii: "/") {
            throw TarError(.linkEscapesRoot, entry: entry, "hard link target \"\(shown)\" is absolute")
        }
        var resolved: [ArraySlice<UInt8>] = []
        for component in target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if component.elementsEqual([UInt8(ascii: ".")]) { continue }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                if resolved.isEmpty {
                    throw TarError(
                        .linkEscapesRoot, entry: entry,
                        "hard link target \"\(shown)\" points outside the archive root")
                }
                resolved.removeLast()
            } else {
                resolved.append(component)
            }
        }
        if resolved.isEmpty {
            throw TarError(.conflict, entry: entry, "hard link target \"\(shown)\" is the archive root")
        }
        try requireNoSymbolicLinkPrefix(resolved, entry: entry, what: "hard link target")
        return Self.join(resolved[...])
    }

    private func requireNoSymbolicLinkPrefix(
        _ components: [ArraySlice<UInt8>], entry: String, what: String
    ) throws(TarError) {
        guard !symbolicLinks.isEmpty, components.count > 1 else { return }
        var prefix: [UInt8] = []
        for component in components.dropLast() {
            if !prefix.isEmpty { prefix.append(UInt8(ascii: "/")) }
            prefix.append(contentsOf: component)
            if symbolicLinks.contains(prefix) {
                throw TarError(
                    .throughSymbolicLink, entry: entry,
                    "\(what) runs through the symbolic link \"\(String(decoding: prefix, as: UTF8.self))\"")
            }
        }
    }
}

/// Checks a tar stream chunk by chunk, before each chunk is passed on: a chunk that is
/// fed without throwing holds no entry the policy refuses.
public struct TarStreamValidator: Sendable {
    private var reader: TarReader
    private var validator = TarValidator()

    public init(maxMetadataSize: Int = 1 << 20) {
        reader = TarReader(maxMetadataSize: maxMetadataSize)
    }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) throws(TarError) {
        do {
            try reader.feed(chunk, to: &validator)
        } catch let error as TarError {
            throw error
        } catch {
            preconditionFailure("TarValidator throws only TarError, got \(error)")
        }
    }

    /// Call when the body ends: throws if the archive is truncated.
    public func finish() throws(TarError) {
        try reader.finish()
    }
}
