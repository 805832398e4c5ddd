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
///
/// The first head of each connection has passed `HeadSyntax` on its raw bytes already
/// (`ConnectionGate`); later heads on a kept-alive connection reach libmicrohttpd directly, and
/// this is their only check.
struct RequestHead {
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
        limits: HeadSyntax.Limits
    ) throws(HeadRefusal) {
        let headSize = ociman_mhd_request_header_size(connection)
        if targetLength > limits.targetBytes {
            throw HeadRefusal(status: .uriTooLong, detail: "the request target exceeds \(limits.targetBytes) bytes")
        }
        if headSize > limits.headBytes {
            throw HeadRefusal(status: .requestHeaderFieldsTooLarge, detail: "the request head exceeds \(limits.headBytes) bytes")
        }
        let start = UnsafeRawPointer(method)
        let head = UnsafeRawBufferPointer(start: start, count: headSize)
        func offset(_ pointer: UnsafeRawPointer) -> Int { start.distance(to: pointer) }

        // Request line: METHOD SP target SP HTTP/1.x, each part where the one before it ends.
        let methodLength = strlen(method)
        guard offset(target) == methodLength + 1 else {
            throw HeadRefusal(status: .badRequest, detail: "the request line must separate method and target by one space")
        }
        guard offset(version) == offset(target) + targetLength + 1 else {
            throw HeadRefusal(status: .badRequest, detail: "the request target contains a NUL byte")
        }
        // The copy taken by the URI logger: in the buffer, the query's "?" is a NUL by now.
        guard targetCopy.utf8.allSatisfy(HeadSyntax.isTargetByte) else {
            throw HeadRefusal(status: .badRequest, detail: "the request target contains a space or control character")
        }

        let records = Self.records(connection)
        // libmicrohttpd accepts only the eight bytes HTTP/1.x as a version.
        var lineEnd = offset(version) + 8
        for record in records {
            guard record.name.count > 0, record.name.allSatisfy(HeadSyntax.isTokenByte) else {
                throw HeadRefusal(status: .badRequest, detail: "invalid header field name")
            }
            let nameStart = offset(record.name.baseAddress!)
            let valueStart = offset(record.value.baseAddress!)
            guard Self.isLineBreak(head, from: lineEnd, to: nameStart), valueStart <= headSize,
                Self.isSeparator(head, from: nameStart + record.name.count, to: valueStart)
            else {
                throw HeadRefusal(status: .badRequest, detail: "a header line contains a NUL byte or is folded")
            }
            guard record.value.allSatisfy(HeadSyntax.isValueByte) else {
                throw HeadRefusal(status: .badRequest, detail: "the \(Self.text(record.name)) header contains a control character")
            }
            lineEnd = valueStart + record.value.count
        }
        // The last line break, then the empty line's.
        guard (2...4).contains(headSize - lineEnd), head[lineEnd..<headSize].allSatisfy({ $0 == 0 }) else {
            throw HeadRefusal(status: .badRequest, detail: "a header line contains a NUL byte")
        }

        let raw = records.map { (name: Self.text($0.name), value: Self.text($0.value)) }
        try HeadSyntax.checkFraming(raw, http10: strncmp(version, "HTTP/1.0", 8) == 0)
        var fields = HTTPFields()
        fields.reserveCapacity(raw.count)
        for (name, value) in raw {
            // Names are tokens by now, so they always make a field name.
            guard let name = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: name, value: value))
        }
        self.fields = fields
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

    private static func text(_ bytes: UnsafeRawBufferPointer) -> String {
        String(decoding: bytes, as: UTF8.self)
    }
}
