import OcimanCore
import Testing

@testable import EngineAdapters

@Suite("Log decoding: frames, lines and timestamps")
struct LogLineDecoderTests {
    private static func frame(_ stream: UInt8, _ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        let length = UInt32(payload.count)
        return [stream, 0, 0, 0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
            + payload
    }

    @Test func framedLinesPerStreamKeepTheLastLineWithoutNewline() throws {
        var decoder = LogLineDecoder(framed: true, timestamps: false)
        let bytes = Self.frame(1, "out1\nou") + Self.frame(2, "err1\n") + Self.frame(1, "t2\nnonl")
        var lines: [LogLine] = []
        // Split anywhere: frames do not line up with reads.
        for piece in [bytes[..<3], bytes[3..<20], bytes[20...]] { lines += try decoder.feed(piece) }
        lines += try decoder.finish()
        #expect(lines == [
            LogLine(stream: .stdout, text: "out1"), LogLine(stream: .stderr, text: "err1"),
            LogLine(stream: .stdout, text: "out2"), LogLine(stream: .stdout, text: "nonl"),
        ])
    }

    @Test func timestampsComeOffEachEntryAndALineKeepsTheTimeItBeganAt() throws {
        var decoder = LogLineDecoder(framed: true, timestamps: true)
        var lines = try decoder.feed(
            Self.frame(1, "2024-01-01T00:00:01Z one\n") + Self.frame(1, "2024-01-01T00:00:02Z par")
                + Self.frame(1, "2024-01-01T00:00:03Z tial\nnext") + Self.frame(2, "2024-01-01T00:00:04Z e\n"))
        lines += try decoder.finish()
        #expect(lines == [
            LogLine(stream: .stdout, text: "one", timestamp: "2024-01-01T00:00:01Z"),
            LogLine(stream: .stdout, text: "partial", timestamp: "2024-01-01T00:00:02Z"),
            LogLine(stream: .stderr, text: "e", timestamp: "2024-01-01T00:00:04Z"),
            LogLine(stream: .stdout, text: "next", timestamp: "2024-01-01T00:00:03Z"),
        ])
    }

    @Test func ttyOutputIsOneRawStream() throws {
        var decoder = LogLineDecoder(framed: false, timestamps: true)
        var lines = try decoder.feed(Array("2024-01-01T00:00:01Z a b\r\n2024-01-01T00:00:02Z c".utf8))
        lines += try decoder.finish()
        #expect(lines == [
            LogLine(stream: .stdout, text: "a b", timestamp: "2024-01-01T00:00:01Z"),
            LogLine(stream: .stdout, text: "c", timestamp: "2024-01-01T00:00:02Z"),
        ])
    }

    @Test func truncatedFrameIsAnError() throws {
        var decoder = LogLineDecoder(framed: true, timestamps: false)
        _ = try decoder.feed(Self.frame(1, "abc").dropLast())
        #expect(throws: (any Error).self) { _ = try decoder.finish() }
    }
}
