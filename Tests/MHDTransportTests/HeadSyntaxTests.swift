import HTTPTypes
import Testing

@testable import MHDTransport

/// `HeadSyntax` on raw bytes: what the gate refuses before libmicrohttpd reads a byte, what it
/// waits for, and what it lets through.
@Suite struct HeadSyntaxTests {
    static let limits = HeadSyntax.Limits(targetBytes: 64, headBytes: 256)

    static func verdict(_ text: String, limits: HeadSyntax.Limits = limits) -> HeadSyntax.Verdict {
        verdict(Array(text.utf8), limits: limits)
    }

    static func verdict(_ bytes: [UInt8], limits: HeadSyntax.Limits = limits) -> HeadSyntax.Verdict {
        bytes.withUnsafeBytes { HeadSyntax.check($0, limits: limits) }
    }

    /// The verdict when the bytes arrive one at a time and each check resumes where the last
    /// stopped, as the gate does: the first that is not `incomplete`, or the last.
    static func trickled(_ bytes: [UInt8]) -> HeadSyntax.Verdict {
        var progress = HeadSyntax.Progress()
        var last = HeadSyntax.Verdict.incomplete(requestLine: false)
        for end in 1...bytes.count {
            last = Array(bytes[..<end]).withUnsafeBytes { HeadSyntax.check($0, limits: limits, resuming: &progress) }
            if case .incomplete = last { continue }
            return last
        }
        return last
    }

    static func status(_ verdict: HeadSyntax.Verdict) -> Int? {
        if case .refused(let refusal) = verdict { return refusal.status.code }
        return nil
    }

    /// Well-formed heads, each complete at exactly its own length (bytes after it are a body or the
    /// next request, never looked at).
    static let sound: [String] = [
        "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /health HTTP/1.1\nHost: localhost\n\n",
        "GET /health HTTP/1.1\r\nHost: localhost\n\r\n",
        "\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /health HTTP/1.0\r\n\r\n",
        "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "DELETE /containers/x?force=true HTTP/1.1\r\nhost: a\r\n\r\n",
        "GET /health?x=%20%00 HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\tb\u{E9}\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 00017\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:chunked\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a/health HTTP/1.1\r\nHost: a\r\n\r\n",
        "M-SEARCH! /x HTTP/1.1\r\nHost: a\r\n\r\n",
    ]

    @Test(arguments: sound)
    func soundHeadIsCompleteAtItsEnd(_ head: String) {
        let bytes = Array(head.utf8)
        let chunked = head.lowercased().contains("transfer-encoding")
        #expect(Self.verdict(bytes + Array("GARBAGE after the head\0\r\r".utf8)) == .complete(length: bytes.count, chunked: chunked))
        #expect(Self.verdict(bytes) == .complete(length: bytes.count, chunked: chunked))
    }

    @Test(arguments: sound)
    func everyPrefixOfASoundHeadIsIncomplete(_ head: String) {
        let bytes = Array(head.utf8)
        for end in 0..<bytes.count {
            if case .incomplete = Self.verdict(Array(bytes[..<end])) { continue }
            Issue.record("prefix of \(end) bytes of \(head.debugDescription): \(Self.verdict(Array(bytes[..<end])))")
        }
    }

    @Test func incompleteTellsWhenTheRequestLineIsIn() {
        #expect(Self.verdict("GET /health HTT") == .incomplete(requestLine: false))
        #expect(Self.verdict("GET /health HTTP/1.1\r") == .incomplete(requestLine: false))
        #expect(Self.verdict("GET /health HTTP/1.1\r\n") == .incomplete(requestLine: true))
        #expect(Self.verdict("GET /health HTTP/1.1\r\nHost: a\r\n") == .incomplete(requestLine: true))
        #expect(Self.verdict("\r\n\r\n") == .incomplete(requestLine: false))
    }

    /// Malformed heads and the status each gets. Most are refused as soon as the bad line is in,
    /// without waiting for the rest of the head.
    static let malformed: [(String, [UInt8], Int)] = [
        // Request line
        ("method only", bytes("GET\r\n\r\n"), 400),
        ("method only, no head end", bytes("GET\r\n"), 400),
        ("no version", bytes("GET /health\r\n\r\n"), 400),
        ("no version, trailing space", bytes("GET /health \r\n\r\n"), 400),
        ("two spaces after the method", bytes("GET  /health HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("two spaces before the version", bytes("GET /health  HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("leading space", bytes(" GET /health HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("trailing space after the version", bytes("GET /health HTTP/1.1 \r\nHost: a\r\n\r\n"), 400),
        ("tab as separator", bytes("GET\t/health HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("space in the target", bytes("GET /hea lth HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("NUL in the target", bytes("DELETE /things/x\0/y?force=true HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("control byte in the target", bytes("GET /hea\u{1}lth HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("DEL in the target", bytes("GET /hea\u{7F}lth HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("method with a separator", bytes("GE(T /health HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
        ("garbage bytes", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, 0x0A], 400),
        ("binary line", [0xFF, 0xFE, 0x20, 0x2F, 0x20, 0x0A], 400),
        ("bare CR line end", bytes("GET /health HTTP/1.1\rHost: a\r\n\r\n"), 400),
        ("bare CR in the head end", bytes("GET /health HTTP/1.1\r\nHost: a\r\r\n"), 400),
        ("lowercase version", bytes("GET /health http/1.1\r\nHost: a\r\n\r\n"), 400),
        ("version with garbage", bytes("GET /health HTTP/1.1x\r\nHost: a\r\n\r\n"), 400),
        ("version without minor", bytes("GET /health HTTP/1\r\nHost: a\r\n\r\n"), 400),
        ("HTTP/2.0", bytes("GET /health HTTP/2.0\r\nHost: a\r\n\r\n"), 505),
        ("HTTP/1.2", bytes("GET /health HTTP/1.2\r\nHost: a\r\n\r\n"), 505),
        ("HTTP/0.9", bytes("GET /health HTTP/0.9\r\n\r\n"), 505),
        ("HTTP/9.9", bytes("GET /health HTTP/9.9\r\n"), 505),
        // Header lines
        ("no colon", bytes("GET /health HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), 400),
        ("no colon, no head end", bytes("GET /health HTTP/1.1\r\nNoColon\r\n"), 400),
        ("empty name", bytes("GET /health HTTP/1.1\r\nHost: a\r\n: value\r\n\r\n"), 400),
        ("space before the colon", bytes("GET /health HTTP/1.1\r\nHost : a\r\n\r\n"), 400),
        ("tab before the colon", bytes("GET /health HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400),
        ("space in a name", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n"), 400),
        ("folded line", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n"), 400),
        ("folded with a tab", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n"), 400),
        ("NUL in a value", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"), 400),
        ("NUL before CRLF", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\0\r\n\r\n"), 400),
        ("DEL in a value", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\u{7F}b\r\n\r\n"), 400),
        ("control byte in a value", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\u{1B}b\r\n\r\n"), 400),
        ("NUL in a name", bytes("GET /health HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n"), 400),
        // Framing
        ("Content-Length abc", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"), 400),
        ("Content-Length -1", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400),
        ("Content-Length +1", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"), 400),
        ("Content-Length overflowing", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400),
        ("Content-Length 2^63", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"), 400),
        ("Content-Length empty", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), 400),
        ("Content-Length with trailing space", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \r\n\r\n"), 400),
        ("Content-Length list", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), 400),
        ("two Content-Length", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"), 400),
        ("Content-Length and chunked", bytes("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
        ("unknown coding", bytes("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 501),
        ("stacked codings", bytes("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501),
        ("chunked with trailing space", bytes("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n"), 400),
        ("chunked in HTTP/1.0", bytes("POST /u HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400),
        ("HTTP/1.1 without Host", bytes("GET /health HTTP/1.1\r\n\r\n"), 400),
        ("two Host", bytes("GET /health HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400),
        // Sizes
        ("target over the cap", bytes("GET /" + String(repeating: "a", count: 64) + " HTTP/1.1\r\nHost: a\r\n\r\n"), 414),
        ("target over the cap, line unfinished", bytes("GET /" + String(repeating: "a", count: 64)), 414),
        ("head over the cap", bytes("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "a", count: 256) + "\r\n\r\n"), 431),
        ("head over the cap, unfinished", bytes("GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "a", count: 256)), 431),
        ("many headers", bytes("GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X-A: b\r\n", count: 40) + "\r\n"), 431),
        ("endless empty lines", bytes(String(repeating: "\r\n", count: 200)), 431),
    ]

    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test(arguments: malformed.indices)
    func malformedHeadIsRefusedWithItsStatus(_ index: Int) {
        let (name, bytes, status) = Self.malformed[index]
        let verdict = Self.verdict(bytes)
        #expect(Self.status(verdict) == status, "\(name): \(verdict)")
        if case .refused(let refusal) = verdict { #expect(!refusal.detail.isEmpty, "\(name)") }
        #expect(Self.trickled(bytes) == verdict, "\(name), byte by byte")
    }

    @Test(arguments: sound)
    func aSoundHeadTrickledInIsCompleteAtItsEnd(_ head: String) {
        let bytes = Array(head.utf8)
        #expect(Self.trickled(bytes) == Self.verdict(bytes))
    }

    @Test func detailsNameWhatIsWrong() {
        func detail(_ text: String) -> String {
            if case .refused(let refusal) = Self.verdict(text) { return refusal.detail }
            return ""
        }
        #expect(detail("GET /health HTTP/2.0\r\n").contains("HTTP/2.0"))
        #expect(detail("GET /health HTTP/1.1\r\nNoColon\r\n").contains("colon"))
        #expect(detail("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n").contains("Content-Length"))
        #expect(detail("GET /health HTTP/1.1\r\nHost: a\r\nX-A: a\u{1B}\r\n\r\n").contains("X-A"))
        #expect(detail("GET /" + String(repeating: "a", count: 64)).contains("64 bytes"))
    }

    /// A head of exactly the cap passes; one byte more does not.
    @Test func headCapIsInclusive() {
        let prefix = "GET / HTTP/1.1\r\nHost: a\r\nX: "
        let filler = String(repeating: "a", count: Self.limits.headBytes - prefix.utf8.count - 4)
        let exact = Self.bytes(prefix + filler + "\r\n\r\n")
        #expect(exact.count == Self.limits.headBytes)
        #expect(Self.verdict(exact) == .complete(length: exact.count, chunked: false))
        #expect(Self.status(Self.verdict(Self.bytes(prefix + filler + "a\r\n\r\n"))) == 431)
    }

    // MARK: - Chunked body bytes that arrive with the head

    static func chunkRefusal(_ text: String) -> HeadRefusal? {
        Array(text.utf8).withUnsafeBytes { HeadSyntax.checkChunkedPrefix($0) }
    }

    /// Whole or cut anywhere: never refused.
    static let soundChunks: [String] = [
        "2\r\n{}\r\n0\r\n\r\n",
        "2\n{}\n0\n\n",
        "A;name=value\r\n0123456789\r\n0\r\n\r\n",
        "1f\r\n" + String(repeating: "x", count: 31) + "\r\n0\r\nX-Trailer: yes\r\n\r\n",
        "0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
        "00000002\r\nab\r\n0\r\n\r\n",
    ]

    @Test(arguments: soundChunks)
    func soundChunkedBodiesAndTheirPrefixesPass(_ body: String) {
        let bytes = Array(body.utf8)
        for end in 0...bytes.count {
            let refusal = Array(bytes[..<end]).withUnsafeBytes { HeadSyntax.checkChunkedPrefix($0) }
            #expect(refusal == nil, "prefix of \(end) bytes of \(body.debugDescription): \(refusal?.detail ?? "")")
        }
    }

    static let malformedChunks: [String] = [
        "zz\r\nab\r\n0\r\n\r\n",
        "z",
        "-1\r\n",
        "\r\n",
        ";ext\r\n",
        "0x2\r\nab\r\n",
        " 2\r\nab\r\n",
        "2 \r\nab\r\n",
        "2\r\nabc\r\n0\r\n\r\n",
        "2\r\nab0\r\n\r\n",
        "2\rab",
        "10000000000000000\r\n",
        "0\r\nNoColon\r\n\r\n",
        "0\r\nX-A: a\0\r\n\r\n",
    ]

    @Test(arguments: malformedChunks)
    func malformedChunkFramingIsRefused(_ body: String) {
        let refusal = Self.chunkRefusal(body)
        #expect(refusal?.status == .badRequest, "\(body.debugDescription)")
        #expect(refusal?.detail.contains("chunked") == true)
    }
}
