/// One archive member, with GNU long names and PAX overrides already applied.
public struct TarEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        case regular
        case hardLink
        case symbolicLink
        case characterDevice
        case blockDevice
        case directory
        case fifo
        /// A type flag this reader does not interpret (GNU volume labels, dump directories, ...).
        case other(UInt8)
    }

    public var kind: Kind
    /// The member name exactly as archived: raw bytes, not normalised.
    public var pathBytes: [UInt8]
    /// Link target for hard and symbolic links, raw bytes; empty otherwise.
    public var linkTargetBytes: [UInt8]
    /// Number of content bytes delivered for this entry. Always 0 for links, directories,
    /// devices and FIFOs, whatever the header says, as Go's archive/tar (and so the
    /// engines) treat them.
    public var size: UInt64
    public var mode: UInt32

    public init(
        kind: Kind, pathBytes: [UInt8], linkTargetBytes: [UInt8] = [], size: UInt64 = 0,
        mode: UInt32 = 0o644
    ) {
        self.kind = kind
        self.pathBytes = pathBytes
        self.linkTargetBytes = linkTargetBytes
        self.size = size
        self.mode = mode
    }

    /// The name for messages; invalid UTF-8 shows as U+FFFD.
    public var path: String { String(decoding: pathBytes, as: UTF8.self) }
    public var linkTarget: String { String(decoding: linkTargetBytes, as: UTF8.self) }
}

/// Why a tar stream was refused.
public struct TarError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Bad checksum, bad number field, malformed PAX record, stray data after a zero block.
        case malformed
        /// The stream ended inside a header, entry content or padding.
        case truncated
        /// Valid tar, but a feature this service does not accept (sparse files, unknown types).
        case unsupported
        /// A long-name or PAX header exceeds the metadata limit.
        case metadataTooLarge
        case absolutePath
        /// A `..` path component.
        case parentReference
        /// A device node or FIFO.
        case specialFile
        /// A hard or symbolic link whose target lies outside the archive root.
        case linkEscapesRoot
        /// An entry path (or hard link target) that runs through an earlier symbolic link entry.
        case throughSymbolicLink
        /// An entry that cannot be placed where the archive says (its parent is a file,
        /// a hard link names no earlier file).
        case conflict
        /// More regular files than the hasher's index is allowed to track.
        case tooManyFiles
    }

    public let kind: Kind
    /// The entry the problem belongs to, when there is one.
    public let entry: String?
    public let message: String

    public init(_ kind: Kind, entry: String?, _ message: String) {
        self.kind = kind
        self.entry = entry
        self.message = message
    }

    public var description: String {
        if let entry { return "tar entry \"\(entry)\": \(message)" }
        return "tar archive: \(message)"
    }
}

/// Receives a tar stream's entries as `TarReader` decodes them. Content arrives in
/// arbitrary-sized chunks that point into the caller's buffer and are valid only
/// for the duration of the call.
public protocol TarEntryHandler {
    mutating func tarEntryBegan(_ entry: TarEntry) throws
    mutating func tarEntryData(_ chunk: UnsafeRawBufferPointer) throws
    mutating func tarEntryEnded() throws
}

extension TarEntryHandler {
    public mutating func tarEntryData(_ chunk: UnsafeRawBufferPointer) throws {}
    public mutating func tarEntryEnded() throws {}
}

/// Push-style streaming tar decoder: feed it bytes as they arrive, in chunks of any size.
/// Entry content is passed through, never buffered, so memory stays flat whatever the
/// archive holds; only one header block and long-name/PAX metadata (bounded by
/// `maxMetadataSize`) are kept.
///
/// Reads ustar, GNU (`L`/`K` long names, base-256 numbers), PAX (`x`: `path`, `linkpath`,
/// `size`; `g` is skipped) and old v7 headers. Sparse files are refused.
public struct TarReader: Sendable {
    public static let blockSize = 512

    public let maxMetadataSize: Int

    private enum Sink: Sendable {
        case entry
        case longName
        case longLink
        case pax
        case discard
    }

    private enum Phase: Sendable {
        case header
        case afterZeroBlock
        case content(remaining: UInt64, padding: Int, sink: Sink)
        case padding(Int)
        case finished
    }

    private var phase = Phase.header
    private var partialHeader: [UInt8] = []
    private var metadata: [UInt8] = []
    private var pendingLongName: [UInt8]?
    private var pendingLongLink: [UInt8]?
    private var pendingPaxPath: [UInt8]?
    private var pendingPaxLinkPath: [UInt8]?
    private var pendingPaxSize: UInt64?
    /// The entry being read, for error messages.
    private var currentName: String?

    public init(maxMetadataSize: Int = 1 << 20) {
        self.maxMetadataSize = maxMetadataSize
        partialHeader.reserveCapacity(Self.blockSize)
    }

    /// True once the end-of-archive marker (two zero blocks) was read; later bytes are ignored.
    public var isFinished: Bool {
        if case .finished = phase { return true }
        return false
    }

    /// Decodes `bytes`, calling `handler` for each entry. Throws `TarError` for a bad
    /// archive and rethrows whatever the handler throws; either way the reader is then
    /// in an undefined state and must be discarded.
    public mutating func feed<Handler: TarEntryHandler>(
        _ bytes: UnsafeRawBufferPointer, to handler: inout Handler
    ) throws {
        var offset = 0
        while offset < bytes.count {
            let available = bytes.count - offset
            switch phase {
            case .finished:
                return  // tar writers pad the archive to a record size; nothing follows
            case .header, .afterZeroBlock:
                if partialHeader.isEmpty && available >= Self.blockSize {
                    try parseHeader(
                        UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Self.blockSize)]),
                        handler: &handler)
                    offset += Self.blockSize
                } else {
                    let take = min(Self.blockSize - partialHeader.count, available)
                    partialHeader.append(contentsOf: bytes[offset..<(offset + take)])
                    offset += take
                    if partialHeader.count == Self.blockSize {
                        let block = partialHeader
                        partialHeader.removeAll(keepingCapacity: true)
                        try block.withUnsafeBytes { try parseHeader($0, handler: &handler) }
                    }
                }
            case .content(let remaining, let padding, let sink):
                let take = Int(min(UInt64(available), remaining))
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)])
                offset += take
                switch sink {
                case .entry: try handler.tarEntryData(chunk)
                case .longName, .longLink, .pax: metadata.append(contentsOf: chunk)
                case .discard: break
                }
                let left = remaining - UInt64(take)
                if left > 0 {
                    phase = .content(remaining: left, padding: padding, sink: sink)
                } else {
                    phase = padding > 0 ? .padding(padding) : .header
                    try finishContent(sink, handler: &handler)
                }
            case .padding(let remaining):
                let take = min(available, remaining)
                offset += take
                phase = take == remaining ? .header : .padding(remaining - take)
            }
        }
    }

    /// Call at the end of the stream: throws unless it ended on an entry boundary.
    /// A missing end-of-archive marker is accepted, as Go's archive/tar does.
    public func finish() throws(TarError) {
        switch phase {
        case .finished, .afterZeroBlock:
            return
        case .header:
            if !partialHeader.isEmpty {
                throw TarError(.truncated, entry: nil, "the stream ends inside a header block")
            }
            if pendingLongName != nil || pendingLongLink != nil || pendingPaxPath != nil
                || pendingPaxLinkPath != nil || pendingPaxSize != nil
            {
                throw TarError(
                    .truncated, entry: nil,
                    "the stream ends after a long-name or PAX header, before its entry")
            }
        case .content(let remaining, _, _):
            throw TarError(
                .truncated, entry: currentName, "the stream ends \(remaining) content bytes early")
        case .padding:
            throw TarError(.truncated, entry: currentName, "the stream ends inside block padding")
        }
    }

    // MARK: - Headers

    private mutating func parseHeader<Handler: TarEntryHandler>(
        _ block: UnsafeRawBufferPointer, handler: inout Handler
    ) throws {
        if block.allSatisfy({ $0 == 0 }) {
            if case .afterZeroBlock = phase {
                phase = .finished
            } else {
                phase = .afterZeroBlock
            }
            return
        }
        if case .afterZeroBlock = phase {
            throw TarError(.malformed, entry: nil, "a single zero block is followed by more headers")
        }

        let headerName = Self.field(block, 0, 100)
        currentName = String(decoding: headerName, as: UTF8.self)
        try verifyChecksum(block)

        let typeFlag = block[156]
        let headerSize = try number(block, 124, 12, field: "size")
        let mode = UInt32(truncatingIfNeeded: try number(block, 100, 8, field: "mode"))

        switch typeFlag {
        case UInt8(ascii: "L"):
            try beginMetadata(.longName, size: headerSize)
            return
        case UInt8(ascii: "K"):
            try beginMetadata(.longLink, size: headerSize)
            return
        case UInt8(ascii: "x"):
            try beginMetadata(.pax, size: headerSize)
            return
        case UInt8(ascii: "g"):
            beginContent(size: headerSize, sink: .discard)
            return
        case UInt8(ascii: "S"):
            throw TarError(.unsupported, entry: currentName, "GNU sparse files are not supported")
        default:
            break
        }

        var name = headerName
        if let prefix = Self.ustarPrefix(block), !prefix.isEmpty {
            name = prefix + [UInt8(ascii: "/")] + headerName
        }
        if let long = pendingLongName { name = long }
        if let pax = pendingPaxPath { name = pax }
        var linkTarget = Self.field(block, 157, 100)
        if let long = pendingLongLink { linkTarget = long }
        if let pax = pendingPaxLinkPath { linkTarget = pax }
        let size = pendingPaxSize ?? headerSize
        pendingLongName = nil
        pendingLongLink = nil
        pendingPaxPath = nil
        pendingPaxLinkPath = nil
        pendingPaxSize = nil
        currentName = String(decoding: name, as: UTF8.self)

        let kind: TarEntry.Kind
        switch typeFlag {
        case 0:
            // v7 archives mark directories only by a trailing slash.
            kind = name.last == UInt8(ascii: "/") ? .directory : .regular
        case UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .regular
        case UInt8(ascii: "1"): kind = .hardLink
        case UInt8(ascii: "2"): kind = .symbolicLink
        case UInt8(ascii: "3"): kind = .characterDevice
        case UInt8(ascii: "4"): kind = .blockDevice
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "6"): kind = .fifo
        default: kind = .other(typeFlag)
        }
        let contentSize: UInt64 =
            switch kind {
            case .regular, .other: size
            default: 0
            }
        if kind != .hardLink && kind != .symbolicLink { linkTarget = [] }

        try handler.tarEntryBegan(
            TarEntry(
                kind: kind, pathBytes: name, linkTargetBytes: linkTarget, size: contentSize,
                mode: mode))
        if contentSize == 0 {
            try handler.tarEntryEnded()
        } else {
            beginContent(size: contentSize, sink: .entry)
        }
    }

    private mutating func beginMetadata(_ sink: Sink, size: UInt64) throws(TarError) {
        guard size <= UInt64(maxMetadataSize) else {
            throw TarError(
                .metadataTooLarge, entry: currentName,
                "extended header of \(size) bytes exceeds the limit of \(maxMetadataSize)")
        }
        metadata.removeAll(keepingCapacity: true)
        beginContent(size: size, sink: sink)
        if size == 0 { phase = .header }
    }

    private mutating func beginContent(size: UInt64, sink: Sink) {
        let padding = Int((UInt64(Self.blockSize) - size % UInt64(Self.blockSize)) % UInt64(Self.blockSize))
        phase = size > 0 ? .content(remaining: size, padding: padding, sink: sink) : .header
    }

    private mutating func finishContent<Handler: TarEntryHandler>(
        _ sink: Sink, handler: inout Handler
    ) throws {
        switch sink {
        case .entry:
            try handler.tarEntryEnded()
        case .longName:
            pendingLongName = Self.trimmingNUL(metadata)
        case .longLink:
            pendingLongLink = Self.trimmingNUL(metadata)
        case .pax:
            try applyPax(metadata)
        case .discard:
            break
        }
    }

    /// PAX records are `"<length> <key>=<value>\n"`, length counting the whole record.
    private mutating func applyPax(_ data: [UInt8]) throws(TarError) {
        var start = 0
        while start < data.count {
            var cursor = start
            var length = 0
            while cursor < data.count, data[cursor] >= UInt8(ascii: "0"), data[cursor] <= UInt8(ascii: "9") {
                length = length * 10 + Int(data[cursor] - UInt8(ascii: "0"))
                guard length <= data.count else { throw paxError("record length exceeds the header") }
                cursor += 1
            }
            guard cursor > start, cursor < data.count, data[cursor] == UInt8(ascii: " "),
                length > cursor - start + 1, start + length <= data.count,
                data[start + length - 1] == UInt8(ascii: "\n")
            else { throw paxError("malformed record") }
            let record = data[(cursor + 1)..<(start + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else {
                throw paxError("record without \"=\"")
            }
            let key = String(decoding: record[record.startIndex..<equals], as: UTF8.self)
            let value = Array(record[(equals + 1)...])
            // An empty value cancels the override, falling back to the ustar field.
            switch key {
            case "path":
                pendingPaxPath = value.isEmpty ? nil : value
            case "linkpath":
                pendingPaxLinkPath = value.isEmpty ? nil : value
            case "size":
                if value.isEmpty {
                    pendingPaxSize = nil
                } else {
                    guard let size = UInt64(String(decoding: value, as: UTF8.self)) else {
                        throw paxError("size \"\(String(decoding: value, as: UTF8.self))\" is not a number")
                    }
                    pendingPaxSize = size
                }
            default:
                if key.hasPrefix("GNU.sparse.") {
                    throw TarError(.unsupported, entry: currentName, "PAX sparse files are not supported")
                }
            }
            start += length
        }
    }

    private func paxError(_ message: String) -> TarError {
        TarError(.malformed, entry: currentName, "PAX header: \(message)")
    }

    private func verifyChecksum(_ block: UnsafeRawBufferPointer) throws(TarError) {
        let recorded = try number(block, 148, 8, field: "checksum")
        // Historic writers summed signed chars; accept either interpretation.
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for index in 0..<Self.blockSize {
            let byte = (148..<156).contains(index) ? UInt8(ascii: " ") : block[index]
            unsigned += Int64(byte)
            signed += Int64(Int8(bitPattern: byte))
        }
        guard Int64(recorded) == unsigned || Int64(recorded) == signed else {
            throw TarError(.malformed, entry: currentName, "header checksum mismatch")
        }
    }

    /// Octal ASCII, or GNU base-256 when the high bit of the first byte is set.
    private func number(
        _ block: UnsafeRawBufferPointer, _ offset: Int, _ length: Int, field: String
    ) throws(TarError) -> UInt64 {
        let bytes = UnsafeRawBufferPointer(rebasing: block[offset..<(offset + length)])
        if bytes[0] & 0x80 != 0 {
            guard bytes[0] == 0x80 else {
                throw TarError(.malformed, entry: currentName, "negative or oversized \(field) field")
            }
            var value: UInt64 = 0
            for byte in bytes.dropFirst() {
                guard value >> 56 == 0 else {
                    throw TarError(.malformed, entry: currentName, "\(field) field overflows 64 bits")
                }
                value = value << 8 | UInt64(byte)
            }
            return value
        }
        var index = 0
        while index < length, bytes[index] == UInt8(ascii: " ") || bytes[index] == 0 { index += 1 }
        var value: UInt64 = 0
        while index < length, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "7") {
            guard value >> 61 == 0 else {
                throw TarError(.malformed, entry: currentName, "\(field) field overflows 64 bits")
            }
            value = value << 3 | UInt64(bytes[index] - UInt8(ascii: "0"))
            index += 1
        }
        while index < length {
            guard bytes[index] == UInt8(ascii: " ") || bytes[index] == 0 else {
                throw TarError(.malformed, entry: currentName, "\(field) field is not an octal number")
            }
            index += 1
        }
        return value
    }

    /// A NUL-terminated (or full-width) string field.
    private static func field(_ block: UnsafeRawBufferPointer, _ offset: Int, _ length: Int) -> [UInt8] {
        let bytes = block[offset..<(offset + length)]
        let end = bytes.firstIndex(of: 0) ?? bytes.endIndex
        return Array(bytes[offset..<end])
    }

    /// The POSIX ustar name prefix; GNU headers use that space for other fields.
    private static func ustarPrefix(_ block: UnsafeRawBufferPointer) -> [UInt8]? {
        let magic = Array(block[257..<265])
        guard magic == Array("ustar\u{0}00".utf8) else { return nil }
        // Schily's star format keeps a "tar\0" trailer and a shorter prefix.
        let isStar = Array(block[508..<512]) == Array("tar\u{0}".utf8)
        return field(block, 345, isStar ? 131 : 155)
    }

    private static func trimmingNUL(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytes.prefix { $0 != 0 })
    }
}
