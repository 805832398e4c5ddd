import CMicroHTTPD
import Glibc
import HTTPTypes

/// A request head as libmicrohttpd parsed it, checked before any of it is acted on.
///
/// libmicrohttpd 0.9.75 is lenient where a server in front of a root-equivalent API must not be
/// (RFC 9112 §3, §5, §6.1, §6.3): it frames the body by the first `Content-Length` and ignores
/// the rest, lets `Transfer-Encoding` override `Content-Length`, reads a body of unknown length
/// for any transfer coding but `chunked`, keeps NUL-terminated copies of the target and the
/// header values (so a NUL byte silently truncates them) and serves HTTP/1.1 without `Host`.
/// Every such request is refused here, answered and its connection closed, so bytes after it
/// (a smuggled second request) are never read.
///
/// The NUL checks work on libmicrohttpd's buffer: the head stays in place in the connection's
/// memory pool, with libmicrohttpd's own NULs where the line ends, the colons and the spaces
/// around the target were. Each header's key and value point into it, so the records must tile
/// the head exactly; a NUL sent by the client leaves bytes between them. One case cannot be told
/// apart: a single NUL right before a bare-LF line end looks like a CR, and hides nothing.
struct RequestHead {
    struct Refusal: Error {
        var status: HTTPResponse.Status
        var detail: String
    }

    struct Limits {
        var targetBytes: Int
        var headBytes: Int
    }

    var fields: HTTPFields

    /// - Parameters:
    ///   - method, target, version: libmicrohttpd's pointers into its buffer, as the access handler gets them.
    ///   - targetCopy, targetLength: the target up to its first NUL and that length, as the URI logger
    ///     saw it, before libmicrohttpd cut off the query and unescaped the path in place.
    init(
        connection: OpaquePointer,
        method: UnsafePointer<CChar>,
        target: UnsafePointer<CChar>,
        targetCopy: String,
        targetLength: Int,
        version: UnsafePointer<CChar>,
        limits: Limits
    ) throws(Refusal) {
        let headSize = ociman_mhd_request_header_size(connection)
        if targetLength > limits.targetBytes {
            throw Refusal(status: .uriTooLong, detail: "the request target exceeds \(limits.targetBytes) bytes")
        }
        if headSize > limits.headBytes {
            throw Refusal(status: .requestHeaderFieldsTooLarge, detail: "the request head exceeds \(limits.headBytes) bytes")
        }
        let start = UnsafeRawPointer(method)
        let head = UnsafeRawBufferPointer(start: start, count: headSize)
        func offset(_ pointer: UnsafeRawPointer) -> Int { start.distance(to: pointer) }

        // Request line: METHOD SP target SP HTTP/1.x, each part where the one before it ends.
        let methodLength = strlen(method)
        guard offset(target) == methodLength + 1 else {
            throw Refusal(status: .badRequest, detail: "the request line must separate method and target by one space")
        }
        guard offset(version) == offset(target) + targetLength + 1 else {
            throw Refusal(status: .badRequest, detail: "the request target contains a NUL byte")
        }
        // The copy taken by the URI logger: in the buffer, the query's "?" is a NUL by now.
        guard targetCopy.utf8.allSatisfy(Self.isTargetByte) else {
            throw Refusal(status: .badRequest, detail: "the request target contains a space or control character")
        }

        let records = Self.records(connection)
        // libmicrohttpd accepts only the eight bytes HTTP/1.x as a version.
        var lineEnd = offset(version) + 8
        for record in records {
            guard record.name.count > 0, record.name.allSatisfy(Self.isTokenByte) else {
                throw Refusal(status: .badRequest, detail: "invalid header field name")
            }
            let nameStart = offset(record.name.baseAddress!)
            let valueStart = offset(record.value.baseAddress!)
            guard Self.isLineBreak(head, from: lineEnd, to: nameStart), valueStart <= headSize,
                Self.isSeparator(head, from: nameStart + record.name.count, to: valueStart)
            else {
                throw Refusal(status: .badRequest, detail: "a header line contains a NUL byte or is folded")
            }
            guard record.value.allSatisfy(Self.isValueByte) else {
                throw Refusal(status: .badRequest, detail: "the \(Self.text(record.name)) header contains a control character")
            }
            lineEnd = valueStart + record.value.count
        }
        // The last line break, then the empty line's.
        guard (2...4).contains(headSize - lineEnd), head[lineEnd..<headSize].allSatisfy({ $0 == 0 }) else {
            throw Refusal(status: .badRequest, detail: "a header line contains a NUL byte")
        }

        let raw = records.map { (name: Self.text($0.name), value: Self.text($0.value)) }
        try Self.checkFraming(raw, http10: strncmp(version, "HTTP/1.0", 8) == 0)
        var fields = HTTPFields()
        fields.reserveCapacity(raw.count)
        for (name, value) in raw {
            // Names are tokens by now, so they always make a field name.
            guard let name = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: name, value: value))
        }
        self.fields = fields
    }

    /// RFC 9112 §3.2, §6.1, §6.3, on the values as sent: HTTPFields trims them, libmicrohttpd does not.
    private static func checkFraming(_ fields: [(name: String, value: String)], http10: Bool) throws(Refusal) {
        func values(_ lowercasedName: String) -> [String] {
            fields.filter { $0.name.lowercased() == lowercasedName }.map(\.value)
        }
        let hosts = values("host").count
        if hosts > 1 || (hosts == 0 && !http10) {
            throw Refusal(status: .badRequest, detail: "an HTTP/1.1 request needs exactly one Host header")
        }
        let lengths = values("content-length")
        let codings = values("transfer-encoding")
        if lengths.count > 1 {
            throw Refusal(status: .badRequest, detail: "more than one Content-Length header")
        }
        guard !codings.isEmpty else { return }
        if !lengths.isEmpty {
            throw Refusal(status: .badRequest, detail: "Content-Length together with Transfer-Encoding")
        }
        if http10 {
            throw Refusal(status: .badRequest, detail: "Transfer-Encoding in an HTTP/1.0 request")
        }
        let names = codings.flatMap { $0.split(separator: ",") }.map { coding in
            String(coding.filter { $0 != " " && $0 != "\t" }).lowercased()
        }
        if let unknown = names.first(where: { $0 != "chunked" }) {
            throw Refusal(status: .notImplemented, detail: "transfer coding \"\(unknown)\" is not supported; only chunked is")
        }
        if names.count > 1 {
            throw Refusal(status: .notImplemented, detail: "stacked transfer codings are not supported; only one chunked is")
        }
        // libmicrohttpd decodes chunked only for exactly this value (any case); it would read any
        // other spelling, "chunked " included, as a body that ends only when the connection does.
        if codings[0].lowercased() != "chunked" {
            throw Refusal(status: .badRequest, detail: "malformed Transfer-Encoding header")
        }
    }

    private struct Record {
        var name: UnsafeRawBufferPointer
        var value: UnsafeRawBufferPointer
    }

    private final class RecordCollector {
        var records: [Record] = []
    }

    /// Header records in arrival order, pointing into libmicrohttpd's buffer.
    private static func records(_ connection: OpaquePointer) -> [Record] {
        let collector = RecordCollector()
        withExtendedLifetime(collector) {
            _ = MHD_get_connection_values_n(
                connection, .HEADER_KIND,
                { cls, _, key, keySize, value, valueSize in
                    // A record without both would leave a gap in the head, which is refused.
                    guard let cls, let key, let value else { return .YES }
                    Unmanaged<RecordCollector>.fromOpaque(cls).takeUnretainedValue().records.append(
                        Record(
                            name: UnsafeRawBufferPointer(start: key, count: keySize),
                            value: UnsafeRawBufferPointer(start: value, count: valueSize)))
                    return .YES
                },
                Unmanaged.passUnretained(collector).toOpaque())
        }
        return collector.records
    }

    /// CRLF or a bare LF, both NUL after libmicrohttpd's parse.
    private static func isLineBreak(_ head: UnsafeRawBufferPointer, from end: Int, to next: Int) -> Bool {
        (1...2).contains(next - end) && next <= head.count && head[end..<next].allSatisfy { $0 == 0 }
    }

    /// The colon (NUL now), then optional whitespace.
    private static func isSeparator(_ head: UnsafeRawBufferPointer, from nameEnd: Int, to valueStart: Int) -> Bool {
        valueStart > nameEnd && head[nameEnd] == 0
            && head[(nameEnd + 1)..<valueStart].allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
    }

    /// RFC 9110 §5.6.2 tchar.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// Field content: visible ASCII, space, tab and obs-text; no other control character.
    private static func isValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    /// A request target has no whitespace or control characters (RFC 9112 §3.2).
    private static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte != 0x7F
    }

    private static func text(_ bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
