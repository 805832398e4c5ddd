import HTTPTypes

/// Why a request head is refused: answered as a problem document, then the connection is closed.
struct HeadRefusal: Error, Equatable {
    var status: HTTPResponse.Status
    var detail: String
}

/// The syntax of a request head (RFC 9112 §2–§6), checked on the raw bytes as they arrive.
///
/// libmicrohttpd answers heads it cannot parse itself, with an HTML body and no hook to replace
/// it (a malformed request line or header line, a bad `Content-Length`, an unsupported version, a
/// head too big for its memory pool). `ConnectionGate` runs this check on the first head of every
/// connection before libmicrohttpd sees a byte, so those heads get a problem document instead.
/// What passes is a strict subset of what libmicrohttpd 0.9.75 accepts, and parses the same way:
/// exactly one space between the parts of the request line, `HTTP/1.0` or `HTTP/1.1`, CRLF or a
/// bare LF as line ends (never a bare CR, which libmicrohttpd would take as one), no obsolete line
/// folding, token field names right before the colon, no control bytes, and the framing rules
/// of `checkFraming`.
enum HeadSyntax {
    struct Limits: Equatable {
        var targetBytes: Int
        var headBytes: Int
    }

    enum Verdict: Equatable {
        /// Not all of it yet; `requestLine` tells whether the request line is in.
        case incomplete(requestLine: Bool)
        /// The head is whole and sound: `length` bytes, up to and including the empty line;
        /// `chunked` when a chunked body follows.
        case complete(length: Int, chunked: Bool)
        case refused(HeadRefusal)
    }

    /// How far a head has been checked: the lines before `position`, with what they said. Kept
    /// between arrivals (`ConnectionGate`), so a client that trickles its head in costs each line
    /// one check, not a parse of everything before it on every byte.
    struct Progress {
        var position = 0
        var requestLineChecked = false
        var http10 = false
        var fields: [(name: String, value: String)] = []
    }

    static func check(_ bytes: UnsafeRawBufferPointer, limits: Limits) -> Verdict {
        var progress = Progress()
        return check(bytes, limits: limits, resuming: &progress)
    }

    /// `bytes` always start at the head's first byte (more of them each time); `progress` is what
    /// the last check on a shorter prefix of them left.
    static func check(_ bytes: UnsafeRawBufferPointer, limits: Limits, resuming progress: inout Progress) -> Verdict {
        if !progress.requestLineChecked {
            // RFC 9112 §2.2: empty lines before the request line are ignored (libmicrohttpd skips them too).
            while progress.position < bytes.count, bytes[progress.position] == cr || bytes[progress.position] == lf {
                switch lineEnd(bytes, from: progress.position) {
                case .found(let contentEnd, let next) where contentEnd == progress.position: progress.position = next
                case .found: return .refused(HeadRefusal(status: .badRequest, detail: "a CR not followed by LF"))
                case .missing: return .incomplete(requestLine: false)
                case .bareCR: return .refused(HeadRefusal(status: .badRequest, detail: "a CR not followed by LF"))
                }
            }
            switch lineEnd(bytes, from: progress.position) {
            case .bareCR:
                return .refused(HeadRefusal(status: .badRequest, detail: "a CR not followed by LF"))
            case .missing:
                return partialRequestLine(bytes, from: progress.position, limits: limits) ?? .incomplete(requestLine: false)
            case .found(let contentEnd, let next):
                if next > limits.headBytes { return tooLarge(limits) }
                do {
                    progress.http10 = try requestLine(
                        UnsafeRawBufferPointer(rebasing: bytes[progress.position..<contentEnd]), limits: limits)
                } catch {
                    return .refused(error)
                }
                progress.requestLineChecked = true
                progress.position = next
            }
        }
        while true {
            switch lineEnd(bytes, from: progress.position) {
            case .bareCR:
                return .refused(HeadRefusal(status: .badRequest, detail: "a CR not followed by LF"))
            case .missing:
                return bytes.count > limits.headBytes ? tooLarge(limits) : .incomplete(requestLine: true)
            case .found(let contentEnd, let next):
                if next > limits.headBytes { return tooLarge(limits) }
                if contentEnd == progress.position {
                    do {
                        return .complete(length: next, chunked: try checkFraming(progress.fields, http10: progress.http10))
                    } catch {
                        return .refused(error)
                    }
                }
                do {
                    progress.fields.append(
                        try fieldLine(UnsafeRawBufferPointer(rebasing: bytes[progress.position..<contentEnd])))
                } catch {
                    return .refused(error)
                }
                progress.position = next
            }
        }
    }

    /// RFC 9112 §3.2, §6.1, §6.3, on the values as sent (libmicrohttpd trims leading whitespace
    /// only): shared with `RequestHead`, which applies it to every head libmicrohttpd parsed.
    /// True when the body is chunked.
    @discardableResult
    static func checkFraming(_ fields: [(name: String, value: String)], http10: Bool) throws(HeadRefusal) -> Bool {
        func values(_ lowercasedName: String) -> [String] {
            fields.filter { $0.name.lowercased() == lowercasedName }.map(\.value)
        }
        let hosts = values("host").count
        if hosts > 1 || (hosts == 0 && !http10) {
            throw HeadRefusal(status: .badRequest, detail: "an HTTP/1.1 request needs exactly one Host header")
        }
        let lengths = values("content-length")
        let codings = values("transfer-encoding")
        if lengths.count > 1 {
            throw HeadRefusal(status: .badRequest, detail: "more than one Content-Length header")
        }
        // 1*DIGIT, and small enough to count bytes with (libmicrohttpd takes nothing else either).
        if let length = lengths.first, !length.utf8.allSatisfy({ isDigit($0) }) || Int64(length) == nil {
            throw HeadRefusal(status: .badRequest, detail: "Content-Length must be a decimal number of bytes below 2^63")
        }
        guard !codings.isEmpty else { return false }
        if !lengths.isEmpty {
            throw HeadRefusal(status: .badRequest, detail: "Content-Length together with Transfer-Encoding")
        }
        if http10 {
            throw HeadRefusal(status: .badRequest, detail: "Transfer-Encoding in an HTTP/1.0 request")
        }
        let names = codings.flatMap { $0.split(separator: ",") }.map { coding in
            String(coding.filter { $0 != " " && $0 != "\t" }).lowercased()
        }
        if let unknown = names.first(where: { $0 != "chunked" }) {
            throw HeadRefusal(status: .notImplemented, detail: "transfer coding \"\(unknown)\" is not supported; only chunked is")
        }
        if names.count > 1 {
            throw HeadRefusal(status: .notImplemented, detail: "stacked transfer codings are not supported; only one chunked is")
        }
        // libmicrohttpd decodes chunked only for exactly this value (any case); it would read any
        // other spelling, "chunked " included, as a body that ends only when the connection does.
        if codings[0].lowercased() != "chunked" {
            throw HeadRefusal(status: .badRequest, detail: "malformed Transfer-Encoding header")
        }
        return true
    }

    /// The start of a chunked body (RFC 9112 §7.1), as far as it has arrived: refused where
    /// libmicrohttpd would answer its own HTML 400 (a chunk size that is not hexadecimal, data
    /// not followed by a line end) or where it is looser than the RFC (a bare CR, a trailer field
    /// line that is not one). Chunks that arrive later are libmicrohttpd's alone to decode.
    static func checkChunkedPrefix(_ bytes: UnsafeRawBufferPointer) -> HeadRefusal? {
        let malformed = HeadRefusal(status: .badRequest, detail: "malformed chunked body: a chunk size line must be hexadecimal digits, then CRLF")
        var position = 0
        while position < bytes.count {
            let sizeLine: (contentEnd: Int, next: Int)
            switch lineEnd(bytes, from: position) {
            case .bareCR:
                return HeadRefusal(status: .badRequest, detail: "malformed chunked body: a CR not followed by LF")
            case .missing:
                // What is here of the size must already be hexadecimal digits.
                var end = bytes[position...].firstIndex(of: UInt8(ascii: ";")) ?? bytes.count
                if end == bytes.count, bytes[end - 1] == cr { end -= 1 }
                return bytes[position..<end].allSatisfy(isHexDigit) ? nil : malformed
            case .found(let contentEnd, let next):
                sizeLine = (contentEnd, next)
            }
            let sizeEnd = bytes[position..<sizeLine.contentEnd].firstIndex(of: UInt8(ascii: ";")) ?? sizeLine.contentEnd
            guard sizeEnd > position, bytes[position..<sizeEnd].allSatisfy(isHexDigit) else { return malformed }
            guard let size = UInt64(String(decoding: bytes[position..<sizeEnd], as: UTF8.self), radix: 16) else {
                return HeadRefusal(status: .badRequest, detail: "malformed chunked body: a chunk size over 2^64")
            }
            position = sizeLine.next
            if size == 0 { return trailerRefusal(bytes, from: position) }
            guard size <= UInt64(bytes.count - position) else { return nil }
            position += Int(size)
            // The data's line end.
            guard position < bytes.count else { return nil }
            if bytes[position] == lf {
                position += 1
            } else if bytes[position] == cr, position + 1 == bytes.count {
                return nil
            } else if bytes[position] == cr, bytes[position + 1] == lf {
                position += 2
            } else {
                return HeadRefusal(status: .badRequest, detail: "malformed chunked body: chunk data longer than its size, or not followed by CRLF")
            }
        }
        return nil
    }

    /// The trailer section after the last chunk, up to its empty line; what follows is the next request.
    private static func trailerRefusal(_ bytes: UnsafeRawBufferPointer, from start: Int) -> HeadRefusal? {
        var position = start
        while true {
            switch lineEnd(bytes, from: position) {
            case .missing:
                return nil
            case .bareCR:
                return HeadRefusal(status: .badRequest, detail: "malformed chunked body: a CR not followed by LF")
            case .found(let contentEnd, let next):
                if contentEnd == position { return nil }
                do {
                    _ = try fieldLine(UnsafeRawBufferPointer(rebasing: bytes[position..<contentEnd]))
                } catch {
                    return HeadRefusal(status: .badRequest, detail: "malformed chunked body trailer: \(error.detail)")
                }
                position = next
            }
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        isDigit(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte | 0x20)
    }

    // MARK: - Lines

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")

    private enum LineEnd {
        /// The line's content ends at `contentEnd`; the next line starts at `next`.
        case found(contentEnd: Int, next: Int)
        case missing
        case bareCR
    }

    /// The end of the line starting at `start`: CRLF or LF. A CR elsewhere is refused, since
    /// libmicrohttpd would end the line there and read the rest as another line.
    private static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> LineEnd {
        var index = start
        while index < bytes.count {
            switch bytes[index] {
            case lf: return .found(contentEnd: index, next: index + 1)
            case cr:
                guard index + 1 < bytes.count else { return .missing }
                return bytes[index + 1] == lf ? .found(contentEnd: index, next: index + 2) : .bareCR
            default: index += 1
            }
        }
        return .missing
    }

    /// METHOD SP request-target SP HTTP-version; true for HTTP/1.0.
    private static func requestLine(_ line: UnsafeRawBufferPointer, limits: Limits) throws(HeadRefusal) -> Bool {
        let shape = "the request line must be METHOD, target and HTTP version separated by single spaces"
        guard let methodEnd = line.firstIndex(of: space) else { throw HeadRefusal(status: .badRequest, detail: shape) }
        guard methodEnd > 0, line[..<methodEnd].allSatisfy(isTokenByte) else {
            throw HeadRefusal(status: .badRequest, detail: "the method must be a token")
        }
        let targetStart = methodEnd + 1
        let targetEnd = line[targetStart...].firstIndex(of: space) ?? line.count
        if targetEnd - targetStart > limits.targetBytes { throw uriTooLong(limits) }
        guard targetEnd > targetStart, targetEnd < line.count else { throw HeadRefusal(status: .badRequest, detail: shape) }
        guard line[targetStart..<targetEnd].allSatisfy(isTargetByte) else {
            throw HeadRefusal(status: .badRequest, detail: "the request target contains a NUL, control or whitespace byte")
        }
        let version = Array(line[(targetEnd + 1)...])
        switch version {
        case Array("HTTP/1.1".utf8): return false
        case Array("HTTP/1.0".utf8): return true
        default:
            guard version.count == 8, version.starts(with: "HTTP/".utf8), isDigit(version[5]), version[6] == UInt8(ascii: "."),
                isDigit(version[7])
            else {
                if version.contains(space) { throw HeadRefusal(status: .badRequest, detail: shape) }
                throw HeadRefusal(status: .badRequest, detail: "malformed HTTP version; expected HTTP/1.1")
            }
            throw HeadRefusal(
                status: .httpVersionNotSupported,
                detail: "\(String(decoding: version, as: UTF8.self)) is not supported; use HTTP/1.1 or HTTP/1.0")
        }
    }

    /// A request line still arriving: refused early once its target is over the cap, or the
    /// head over its own.
    private static func partialRequestLine(_ bytes: UnsafeRawBufferPointer, from start: Int, limits: Limits) -> Verdict? {
        let line = UnsafeRawBufferPointer(rebasing: bytes[start...])
        if let methodEnd = line.firstIndex(of: space) {
            let targetEnd = line[(methodEnd + 1)...].firstIndex(of: space) ?? line.count
            if targetEnd - methodEnd - 1 > limits.targetBytes { return .refused(uriTooLong(limits)) }
        }
        return bytes.count > limits.headBytes ? tooLarge(limits) : nil
    }

    /// field-name ":" OWS field-value OWS; the name and the value as libmicrohttpd will store them.
    private static func fieldLine(_ line: UnsafeRawBufferPointer) throws(HeadRefusal) -> (name: String, value: String) {
        if line[0] == space || line[0] == tab {
            throw HeadRefusal(status: .badRequest, detail: "obsolete line folding (a header line starting with whitespace) is not accepted")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw HeadRefusal(status: .badRequest, detail: "a header line without a colon")
        }
        guard colon > 0 else { throw HeadRefusal(status: .badRequest, detail: "a header line with an empty field name") }
        guard line[..<colon].allSatisfy(isTokenByte) else {
            throw HeadRefusal(status: .badRequest, detail: "invalid header field name (a token, with nothing between it and the colon)")
        }
        let name = String(decoding: line[..<colon], as: UTF8.self)
        var valueStart = colon + 1
        while valueStart < line.count, line[valueStart] == space || line[valueStart] == tab { valueStart += 1 }
        guard line[valueStart...].allSatisfy(isValueByte) else {
            throw HeadRefusal(status: .badRequest, detail: "the \(name) header contains a NUL or control byte")
        }
        return (name, String(decoding: line[valueStart...], as: UTF8.self))
    }

    private static func tooLarge(_ limits: Limits) -> Verdict {
        .refused(HeadRefusal(status: .requestHeaderFieldsTooLarge, detail: "the request head exceeds \(limits.headBytes) bytes"))
    }

    private static func uriTooLong(_ limits: Limits) -> HeadRefusal {
        HeadRefusal(status: .uriTooLong, detail: "the request target exceeds \(limits.targetBytes) bytes")
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// Field content: visible ASCII, space, tab and obs-text; no other control character.
    static func isValueByte(_ byte: UInt8) -> Bool {
        byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
    }

    /// A request target has no whitespace or control characters (RFC 9112 §3.2).
    static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte != 0x7F
    }
}
