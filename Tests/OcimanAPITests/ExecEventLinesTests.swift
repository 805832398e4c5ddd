import Testing

@testable import OcimanAPI
@testable import OcimanCore

@Suite("Streamed exec events keep text as text")
struct ExecEventLinesTests {
    @Test func aCharacterSplitAcrossChunksIsHeldUntilComplete() {
        var lines = ExecEventLines()
        let euro = Array("€".utf8)  // three bytes
        let first = lines.lines(for: .output(.stdout, Array("a".utf8) + euro[..<2]))
        #expect(first.map(\.data) == ["a"])
        let second = lines.lines(for: .output(.stdout, Array(euro[2...]) + Array("b".utf8)))
        #expect(second.map(\.data) == ["€b"])
        #expect(second.allSatisfy { $0.dataBase64 == nil })
    }

    @Test func invalidBytesGoOutAsBase64AndHeldBytesAreFlushedBeforeExit() {
        var lines = ExecEventLines()
        #expect(lines.lines(for: .output(.stderr, [0xFF, 0x41])).map(\.dataBase64) == ["/0E="])
        #expect(lines.lines(for: .output(.stdout, [0x41, 0xE2])).map(\.data) == ["A"])
        let end = lines.lines(for: .exit(code: 2))
        #expect(end.map(\._type) == [.stdout, .exit])
        #expect(end.first?.dataBase64 == "4g==")
        #expect(end.last?.exitCode == 2)
    }

    @Test(arguments: [
        ([UInt8](), 0), (Array("abc".utf8), 3), ([0x61, 0xC3], 1), ([0x61, 0xC3, 0xA9], 3),
        ([0xF0, 0x9F, 0x98], 0), ([0xF0, 0x9F, 0x98, 0x80], 4), ([0x80, 0x80, 0x80, 0x80], 4),
    ])
    func completeCharactersEnd(bytes: [UInt8], end: Int) {
        #expect(ExecEventLines.completeCharactersEnd(bytes) == end)
    }
}
