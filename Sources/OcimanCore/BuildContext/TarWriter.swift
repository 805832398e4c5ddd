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
