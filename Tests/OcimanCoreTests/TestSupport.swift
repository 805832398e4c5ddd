import Foundation
import Glibc
import Testing

@testable import OcimanCore

/// A private directory under $TMPDIR, removed when the value is dropped. Paths are raw
/// bytes so tests can create names that are not UTF-8.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "ociman-test-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func absolute(_ relative: [UInt8]) -> [CChar] {
        (Array(path.utf8) + [UInt8(ascii: "/")] + relative + [0]).map { CChar(bitPattern: $0) }
    }

    /// Writes a file, creating parent directories.
    func write(_ relative: String, _ contents: String) throws {
        try write(bytes: Array(relative.utf8), Array(contents.utf8))
    }

    func write(bytes relative: [UInt8], _ contents: [UInt8]) throws {
        if let slash = relative.lastIndex(of: UInt8(ascii: "/")) {
            try makeDirectory(bytes: Array(relative[..<slash]))
        }
        let fd = open(absolute(relative), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
        defer { close(fd) }
        var offset = 0
        while offset < contents.count {
            let written = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            guard written > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
            offset += written
        }
    }

    func makeDirectory(_ relative: String) throws {
        try makeDirectory(bytes: Array(relative.utf8))
    }

    func makeDirectory(bytes relative: [UInt8]) throws {
        var prefix: [UInt8] = []
        for component in relative.split(separator: UInt8(ascii: "/")) {
            if !prefix.isEmpty { prefix.append(UInt8(ascii: "/")) }
            prefix.append(contentsOf: component)
            if mkdir(absolute(prefix), 0o755) != 0 && errno != EEXIST {
                throw POSIXError(POSIXErrorCode(rawValue: errno)!)
            }
        }
    }

    func symlink(_ relative: String, to target: String) throws {
        guard Glibc.symlink(target, absolute(Array(relative.utf8))) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno)!)
        }
    }

    func hardLink(_ relative: String, to existing: String) throws {
        guard link(absolute(Array(existing.utf8)), absolute(Array(relative.utf8))) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno)!)
        }
    }

    func fifo(_ relative: String) throws {
        guard mkfifo(absolute(Array(relative.utf8)), 0o644) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno)!)
        }
    }

    func subpath(_ relative: String) -> String { path + "/" + relative }

    func entries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path)
    }
}

/// The golden-vector tree of SPEC §5.
func makeGoldenTree(in directory: TemporaryDirectory) throws {
    try directory.write("Dockerfile", "FROM localhost/busybox:test\nCOPY . /ctx\n")
    try directory.write("a/z", "z\n")
    try directory.write("a.txt", "dot\n")
    try directory.write(".hidden/h", "h\n")
    try directory.symlink("link", to: "a.txt")
    try directory.makeDirectory("empty")
}

/// Runs /bin/tar and fails the test if it does not exit 0.
func runTar(_ arguments: [String]) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/tar")
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "tar \(arguments) failed")
}

/// The expected hash built segment by segment, independent of the walker and tar code:
/// `files` must already be in walk order.
func expectedDirectoryHash(
    files: [(path: [UInt8], contents: [UInt8])],
    options: ContentHashOptions = ContentHashOptions()
) -> ContentHash {
    var hasher = SegmentHasher()
    hasher.push("directory")
    for file in files {
        hasher.push("file.path")
        hasher.push(file.path)
        hasher.push("file.content")
        hasher.push(file.contents)
    }
    ContentHasher.pushTrailer(options, into: &hasher)
    return ContentHash(sha256: hasher.finalize())
}

// MARK: - Hand-built tar archives

/// Builds tar archives byte by byte so tests control every header field, including ones
/// /bin/tar will not produce (absolute paths, escaping links, bad checksums).
struct TarBuilder {
    private(set) var bytes: [UInt8] = []

    enum Format { case ustar, gnu, v7 }

    mutating func header(
        name: [UInt8], type: UInt8, size: UInt64 = 0, linkName: [UInt8] = [], prefix: [UInt8] = [],
        format: Format = .ustar, base256Size: Bool = false, corruptChecksum: Bool = false
    ) {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ value: [UInt8], at offset: Int, width: Int) {
            precondition(value.count <= width, "field too wide")
            for (index, byte) in value.enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: UInt64, width: Int) -> [UInt8] {
            let digits = String(value, radix: 8)
            return Array((String(repeating: "0", count: width - 1 - digits.count) + digits).utf8) + [0]
        }
        put(name, at: 0, width: 100)
        put(octal(0o644, width: 8), at: 100, width: 8)
        put(octal(0, width: 8), at: 108, width: 8)
        put(octal(0, width: 8), at: 116, width: 8)
        if base256Size {
            var field = [UInt8](repeating: 0, count: 12)
            field[0] = 0x80
            var value = size
            for index in stride(from: 11, through: 1, by: -1) {
                field[index] = UInt8(value & 0xff)
                value >>= 8
            }
            put(field, at: 124, width: 12)
        } else {
            put(octal(size, width: 12), at: 124, width: 12)
        }
        put(octal(0, width: 12), at: 136, width: 12)
        block[156] = type
        put(linkName, at: 157, width: 100)
        switch format {
        case .ustar:
            put(Array("ustar\u{0}00".utf8), at: 257, width: 8)
            put(prefix, at: 345, width: 155)
        case .gnu:
            put(Array("ustar  \u{0}".utf8), at: 257, width: 8)
        case .v7:
            break
        }
        for index in 148..<156 { block[index] = UInt8(ascii: " ") }
        var sum = block.reduce(0) { $0 + Int($1) }
        if corruptChecksum { sum += 1 }
        put(Array(String(format: "%06o", sum).utf8) + [0, UInt8(ascii: " ")], at: 148, width: 8)
        bytes += block
    }

    mutating func content(_ data: [UInt8]) {
        bytes += data
        let remainder = data.count % 512
        if remainder != 0 { bytes += [UInt8](repeating: 0, count: 512 - remainder) }
    }

    mutating func file(_ name: String, _ contents: String, format: Format = .ustar) {
        header(name: Array(name.utf8), type: UInt8(ascii: "0"), size: UInt64(contents.utf8.count), format: format)
        content(Array(contents.utf8))
    }

    mutating func directory(_ name: String) {
        header(name: Array(name.utf8), type: UInt8(ascii: "5"))
    }

    mutating func symlink(_ name: String, to target: String) {
        header(name: Array(name.utf8), type: UInt8(ascii: "2"), linkName: Array(target.utf8))
    }

    mutating func hardLink(_ name: String, to target: String) {
        header(name: Array(name.utf8), type: UInt8(ascii: "1"), linkName: Array(target.utf8))
    }

    /// A PAX extended header carrying the given records for the next entry.
    mutating func pax(_ records: [(String, [UInt8])]) {
        var data: [UInt8] = []
        for (key, value) in records {
            let body = Array(" \(key)=".utf8) + value + [UInt8(ascii: "\n")]
            // The length prefix counts its own digits.
            var length = body.count + 1
            while String(length).count + body.count != length { length = String(length).count + body.count }
            data += Array(String(length).utf8) + body
        }
        header(name: Array("PaxHeaders/x".utf8), type: UInt8(ascii: "x"), size: UInt64(data.count))
        content(data)
    }

    mutating func gnuLongName(_ name: [UInt8], type: UInt8 = UInt8(ascii: "L")) {
        let data = name + [0]
        header(name: Array("././@LongLink".utf8), type: type, size: UInt64(data.count), format: .gnu)
        content(data)
    }

    mutating func end() {
        bytes += [UInt8](repeating: 0, count: 1024)
    }
}

/// Collects what a TarReader reports.
struct RecordingHandler: TarEntryHandler {
    var entries: [TarEntry] = []
    var contents: [[UInt8]] = []
    var ended = 0

    mutating func tarEntryBegan(_ entry: TarEntry) throws {
        entries.append(entry)
        contents.append([])
    }

    mutating func tarEntryData(_ chunk: UnsafeRawBufferPointer) throws {
        contents[contents.count - 1] += Array(chunk)
    }

    mutating func tarEntryEnded() throws {
        ended += 1
    }
}

/// Feeds `bytes` to a reader in chunks of `chunkSize`.
func read(_ bytes: [UInt8], chunkSize: Int = 1 << 20) throws -> RecordingHandler {
    var reader = TarReader()
    var handler = RecordingHandler()
    try feedInChunks(bytes, chunkSize: chunkSize) { try reader.feed($0, to: &handler) }
    try reader.finish()
    return handler
}

func feedInChunks(_ bytes: [UInt8], chunkSize: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    try bytes.withUnsafeBytes { all in
        var offset = 0
        while offset < all.count {
            let end = min(offset + chunkSize, all.count)
            try body(UnsafeRawBufferPointer(rebasing: all[offset..<end]))
            offset = end
        }
    }
}

func hashTar(_ bytes: [UInt8], chunkSize: Int = 1 << 20, options: ContentHashOptions = ContentHashOptions())
    throws -> ContentHash
{
    var hasher = try TarContentHasher()
    try feedInChunks(bytes, chunkSize: chunkSize) { try hasher.feed($0) }
    return try hasher.finish(options: options)
}

func validateTar(_ bytes: [UInt8]) throws(TarError) {
    var validator = TarStreamValidator()
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { buffer.deallocate() }
    buffer.copyBytes(from: bytes)
    try validator.feed(UnsafeRawBufferPointer(buffer))
    try validator.finish()
}
