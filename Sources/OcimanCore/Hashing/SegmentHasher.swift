import CCrypto

/// One SHA-256 fed with length-framed segments (SPEC §5): each segment is its length as a
/// u64 little-endian, then its bytes. The framing keeps adjacent segments from blending,
/// so `"ab","c"` and `"a","bc"` hash differently.
///
/// Non-copyable because it owns an OpenSSL context; `finalize()` consumes it.
public struct SegmentHasher: ~Copyable {
    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new() else {
            fatalError("EVP_MD_CTX_new failed: out of memory")
        }
        guard EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1 else {
            fatalError("EVP_DigestInit_ex(SHA-256) failed: libcrypto lacks SHA-256")
        }
        self.context = context
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Pushes one complete segment.
    public mutating func push(_ bytes: UnsafeRawBufferPointer) {
        beginSegment(length: UInt64(bytes.count))
        append(bytes)
    }

    public mutating func push(_ string: String) {
        var string = string
        string.withUTF8 { push(UnsafeRawBufferPointer($0)) }
    }

    public mutating func push(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { push($0) }
    }

    /// Starts a segment whose body arrives in pieces through `append`; the caller must
    /// append exactly `length` bytes, which is what lets file contents stream through.
    public mutating func beginSegment(length: UInt64) {
        withUnsafeBytes(of: length.littleEndian) { append($0) }
    }

    /// Feeds raw bytes with no framing: only for the body of a segment begun with `beginSegment`.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // EVP_DigestUpdate only fails for a context that was never initialised.
        _ = EVP_DigestUpdate(context, base, bytes.count)
    }

    public consuming func finalize() -> SHA256Digest {
        var output = [UInt8](repeating: 0, count: 32)
        var written: UInt32 = 0
        let status = output.withUnsafeMutableBufferPointer {
            EVP_DigestFinal_ex(context, $0.baseAddress, &written)
        }
        precondition(status == 1 && written == 32, "EVP_DigestFinal_ex failed")
        return SHA256Digest(bytes: output)
    }
}

/// A finished SHA-256 value.
public struct SHA256Digest: Sendable, Hashable, CustomStringConvertible {
    /// The 32 raw digest bytes.
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a SHA-256 digest is 32 bytes")
        self.bytes = bytes
    }

    /// 64 lowercase hex digits.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(64)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    public var description: String { "sha256:\(hex)" }
}
