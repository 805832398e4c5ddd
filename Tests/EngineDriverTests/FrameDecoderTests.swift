import Testing

@testable import EngineDriver

/// Builds a frame the way the engines do.
func encodeFrame(_ type: UInt8, _ payload: [UInt8]) -> [UInt8] {
    let length = UInt32(payload.count)
    return [type, 0, 0, 0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        + payload
}

func encodeFrame(_ stream: StreamKind, _ text: String) -> [UInt8] {
    encodeFrame(stream.rawValue, Array(text.utf8))
}

@Suite struct FrameDecoderTests {
    static let frames: [Frame] = [
        Frame(stream: .stdout, payload: Array("hello\n".utf8)),
        Frame(stream: .stderr, payload: Array("warning: x\n".utf8)),
        Frame(stream: .stdout, payload: []),
        Frame(stream: .stdout, payload: Array(0...255)),
        Frame(stream: .stdin, payload: [0]),
        Frame(stream: .stderr, payload: []),
        Frame(stream: .stdout, payload: Array("tail without newline".utf8)),
    ]
    static let wire = frames.flatMap { encodeFrame($0.stream.rawValue, $0.payload) }

    @Test func allFramesInOneChunk() throws {
        var decoder = FrameDecoder()
        #expect(try decoder.feed(Self.wire) == Self.frames)
        try decoder.finish()
    }

    @Test func splitAtEveryByteBoundary() throws {
        for cut in 0...Self.wire.count {
            var decoder = FrameDecoder()
            var frames = try decoder.feed(Self.wire[..<cut])
            frames += try decoder.feed(Self.wire[cut...])
            try decoder.finish()
            #expect(frames == Self.frames, "cut at \(cut)")
        }
    }

    @Test func splitAtEveryPairOfBoundaries() throws {
        let wire = encodeFrame(.stdout, "abc") + encodeFrame(.stderr, "") + encodeFrame(.stderr, "de\n")
        let expected = [
            Frame(stream: .stdout, payload: Array("abc".utf8)), Frame(stream: .stderr, payload: []),
            Frame(stream: .stderr, payload: Array("de\n".utf8)),
        ]
        for first in 0...wire.count {
            for second in first...wire.count {
                var decoder = FrameDecoder()
                let frames = try decoder.feed(wire[..<first]) + decoder.feed(wire[first..<second]) + decoder.feed(wire[second...])
                try decoder.finish()
                #expect(frames == expected, "cuts at \(first), \(second)")
            }
        }
    }

    @Test func oneByteAtATime() throws {
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        for byte in Self.wire { frames += try decoder.feed([byte]) }
        #expect(frames == Self.frames)
        try decoder.finish()
    }

    @Test func largeFrameAcrossManyChunks() throws {
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let wire = encodeFrame(2, payload)
        var decoder = FrameDecoder()
        var frames: [Frame] = []
        var start = 0
        while start < wire.count {
            let end = min(wire.count, start + 4093)
            frames += try decoder.feed(wire[start..<end])
            start = end
        }
        #expect(frames == [Frame(stream: .stderr, payload: payload)])
    }

    @Test(arguments: [UInt8(4), 7, 0x7B, 0xFF])
    func invalidStreamType(_ type: UInt8) throws {
        var decoder = FrameDecoder()
        #expect(throws: FrameDecoder.Error.invalidStreamType(type)) { try decoder.feed([type, 0, 0, 0, 0, 0, 0, 1, 0x41]) }
        #expect(throws: FrameDecoder.Error.invalidStreamType(type)) { try decoder.feed(encodeFrame(.stdout, "x")) }
    }

    @Test func ttyOutputIsRejectedNotMisread() {
        // Raw TTY output fed to the decoder: '{' is not a stream type.
        var decoder = FrameDecoder()
        #expect(throws: FrameDecoder.Error.invalidStreamType(UInt8(ascii: "{"))) {
            try decoder.feed(Array(#"{"status":"ok"}"#.utf8))
        }
    }

    @Test func nonZeroPaddingIsInvalid() {
        var decoder = FrameDecoder()
        #expect(throws: FrameDecoder.Error.invalidHeader([1, 0, 1, 0, 0, 0, 0, 0])) { try decoder.feed([1, 0, 1, 0, 0, 0, 0, 0]) }
    }

    @Test func oversizeLengthIsRefusedBeforeBuffering() {
        var decoder = FrameDecoder(maxFrameSize: 1024)
        #expect(throws: FrameDecoder.Error.frameTooLarge(length: 0xFFFF_FFFF, limit: 1024)) {
            try decoder.feed([1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        }
    }

    @Test func framesBeforeAnErrorAreReturnedAndTheErrorComesNext() throws {
        var decoder = FrameDecoder()
        let frames = try decoder.feed(encodeFrame(.stdout, "ok") + [9, 0, 0, 0, 0, 0, 0, 0])
        #expect(frames == [Frame(stream: .stdout, payload: Array("ok".utf8))])
        #expect(throws: FrameDecoder.Error.invalidStreamType(9)) { try decoder.finish() }
    }

    @Test func engineErrorFrame() throws {
        var decoder = FrameDecoder()
        let frames = try decoder.feed(encodeFrame(.stdout, "partial") + encodeFrame(3, Array("exec failed".utf8)))
        #expect(frames.count == 1)
        #expect(throws: FrameDecoder.Error.engineError("exec failed")) { try decoder.feed([UInt8]()) }
    }

    @Test func truncatedHeader() throws {
        var decoder = FrameDecoder()
        _ = try decoder.feed(encodeFrame(.stdout, "x") + [1, 0, 0])
        #expect(decoder.isInsideFrame)
        #expect(throws: FrameDecoder.Error.truncated(headerBytes: 3, payloadBytes: 0, expectedPayload: nil)) {
            try decoder.finish()
        }
    }

    @Test func truncatedPayload() throws {
        var decoder = FrameDecoder()
        let wire = encodeFrame(.stderr, "0123456789")
        #expect(try decoder.feed(wire.dropLast(4)).isEmpty)
        #expect(throws: FrameDecoder.Error.truncated(headerBytes: 0, payloadBytes: 6, expectedPayload: 10)) {
            try decoder.finish()
        }
    }

    @Test func headerOfAZeroLengthFrameAloneIsComplete() throws {
        var decoder = FrameDecoder()
        #expect(try decoder.feed([2, 0, 0, 0, 0, 0, 0, 0]) == [Frame(stream: .stderr, payload: [])])
        #expect(!decoder.isInsideFrame)
        try decoder.finish()
    }
}

@Suite struct LineSplitterTests {
    private static func texts(_ lines: [LineSplitter.Line]) -> [String] {
        lines.map { "\($0.stream):\($0.text)" }
    }

    @Test func linesAcrossPayloadsPerStream() {
        var splitter = LineSplitter()
        var lines: [LineSplitter.Line] = []
        lines += splitter.feed(Array("one\ntw".utf8), stream: .stdout)
        lines += splitter.feed(Array("err ".utf8), stream: .stderr)
        lines += splitter.feed(Array("o\nthree".utf8), stream: .stdout)
        lines += splitter.feed(Array("line\n".utf8), stream: .stderr)
        lines += splitter.finish()
        #expect(Self.texts(lines) == ["stdout:one", "stdout:two", "stderr:err line", "stdout:three"])
    }

    @Test func carriageReturns() {
        var splitter = LineSplitter()
        var lines = splitter.feed(Array("a\r\nb\r".utf8), stream: .stdout)
        // The CRLF of "b" is split across payloads.
        lines += splitter.feed(Array("\nprogress 10%\rprogress 20%\r\n\r\n".utf8), stream: .stdout)
        lines += splitter.feed(Array("last\r".utf8), stream: .stdout)
        lines += splitter.finish()
        #expect(Self.texts(lines) == ["stdout:a", "stdout:b", "stdout:progress 10%\rprogress 20%", "stdout:", "stdout:last"])
    }

    @Test func emptyLinesAndNoTrailingLine() {
        var splitter = LineSplitter()
        let lines = splitter.feed(Array("\n\nx\n".utf8), stream: .stderr) + splitter.finish()
        #expect(Self.texts(lines) == ["stderr:", "stderr:", "stderr:x"])
        #expect(splitter.finish().isEmpty)
    }

    @Test func framesThroughDecoderAndSplitter() throws {
        let wire = encodeFrame(.stdout, "build 1\nbuil") + encodeFrame(.stderr, "oops\n") + encodeFrame(.stdout, "d 2\nend")
        for cut in 0...wire.count {
            var decoder = FrameDecoder()
            var splitter = LineSplitter()
            var lines: [LineSplitter.Line] = []
            for frame in try decoder.feed(wire[..<cut]) + decoder.feed(wire[cut...]) { lines += splitter.feed(frame) }
            try decoder.finish()
            lines += splitter.finish()
            #expect(Self.texts(lines) == ["stdout:build 1", "stderr:oops", "stdout:build 2", "stdout:end"], "cut at \(cut)")
        }
    }

    @Test func longLinesAreCutAtTheLimit() {
        var splitter = LineSplitter(maxLineLength: 4)
        var lines = splitter.feed(Array("abcdefgh\nij".utf8), stream: .stdout)
        lines += splitter.feed(Array("klmnop".utf8), stream: .stdout)
        lines += splitter.finish()
        // "abcdefgh" is exactly two pieces: the newline after it does not add an empty line.
        #expect(Self.texts(lines) == ["stdout:abcd", "stdout:efgh", "stdout:ijkl", "stdout:mnop"])
    }

    @Test func invalidUTF8IsReplacedInText() {
        var splitter = LineSplitter()
        let lines = splitter.feed([0x61, 0xFF, 0x62, 0x0A], stream: .stdout)
        #expect(lines.first?.bytes == [0x61, 0xFF, 0x62])
        #expect(lines.first?.text == "a\u{FFFD}b")
    }
}
