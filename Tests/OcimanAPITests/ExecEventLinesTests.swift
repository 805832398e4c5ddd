import Testing

@testable import OcimanAPI
@testable import OcimanCore

@Suite("Streamed exec events keep text as text")
struct ExecEventLinesTests {
    /// What an event line says, whatever its case.
    private static func output(_ event: Components.Schemas.ExecEvent) -> Components.Schemas.ExecOutputEvent? {
        switch event {
        case .stdout(let output), .stderr(let output): output
        case .exit, .error: nil
        }
    }

    @Test func aCharacterSplitAcrossChunksIsHeldUntilComplete() {
        var lines = ExecEventLines()
        let euro = Array("€".utf8)  // three bytes
        let first = lines.lines(for: .output(.stdout, Array("a".utf8) + euro[..<2]))
        #expect(first.map { Self.output($0)?.data } == ["a"])
        let second = lines.lines(for: .output(.stdout, Array(euro[2...]) + Array("b".utf8)))
        #expect(second.map { Self.output($0)?.data } == ["€b"])
        #expect(second.allSatisfy { Self.output($0)?.dataBase64 == nil })
    }

    @Test func invalidBytesGoOutAsBase64AndHeldBytesAreFlushedBeforeExit() {
        var lines = ExecEventLines()
        let invalid = lines.lines(for: .output(.stderr, [0xFF, 0x41]))
        #expect(invalid.count == 1)
        guard case .stderr(let stderr) = invalid.first else { Issue.record("expected a stderr event: \(invalid)"); return }
        #expect(stderr.dataBase64 == "/0E=" && stderr.data == nil)
        #expect(lines.lines(for: .output(.stdout, [0x41, 0xE2])).map { Self.output($0)?.data } == ["A"])
        let end = lines.lines(for: .exit(code: 2))
        #expect(end.count == 2)
        guard case .stdout(let held) = end.first, case .exit(let exit) = end.last else { Issue.record("expected stdout, exit: \(end)"); return }
        #expect(held.dataBase64 == "4g==")
        #expect(exit.exitCode == 2)
    }

    @Test(arguments: [
        ([UInt8](), 0), (Array("abc".utf8), 3), ([0x61, 0xC3], 1), ([0x61, 0xC3, 0xA9], 3),
        ([0xF0, 0x9F, 0x98], 0), ([0xF0, 0x9F, 0x98, 0x80], 4), ([0x80, 0x80, 0x80, 0x80], 4),
    ])
    func completeCharactersEnd(bytes: [UInt8], end: Int) {
        #expect(ExecEventLines.completeCharactersEnd(bytes) == end)
    }
}
