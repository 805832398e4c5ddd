import Foundation
import Testing

@testable import OcimanAPI

/// The exec body's input member leaves the JSON as it streams in; whatever the chunking, the
/// rest decodes to the same object and the spool holds exactly the decoded input.
@Suite("Exec body splitter")
struct ExecBodySplitterTests {
    static func split(_ body: String, chunk: Int, limit: Int = 1 << 20) async throws -> (rest: Any, stdin: [UInt8], member: String?) {
        let bytes = Array(body.utf8)
        var splitter = ExecBodySplitter(spool: StdinSpool(), memberLimit: limit)
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + chunk)
            try splitter.feed(bytes[start..<end])
            start = end
        }
        let rest = try splitter.finish()
        var stdin: [UInt8] = []
        for try await piece in splitter.spool.chunks() { stdin += piece }
        let object = try JSONSerialization.jsonObject(with: Data(rest))
        return (object, stdin, splitter.stdinMember)
    }

    @Test("text input with every escape, whatever the chunk size", arguments: [1, 2, 3, 7, 64, 4096])
    func textInput(chunk: Int) async throws {
        let body = #"{"command":["cat"], "env":{"A":"x,}\"]"},"stdin":"a\nb\t\"q\" \\ \/ \u00e9\ud83d\ude00 é","timeout_seconds":5}"#
        let (rest, stdin, member) = try await Self.split(body, chunk: chunk)
        #expect(member == "stdin")
        #expect(String(decoding: stdin, as: UTF8.self) == "a\nb\t\"q\" \\ / é😀 é")
        let object = try #require(rest as? [String: Any])
        #expect(object.keys.sorted() == ["command", "env", "timeout_seconds"])
        #expect((object["env"] as? [String: String])?["A"] == "x,}\"]")
        #expect(object["timeout_seconds"] as? Int == 5)
    }

    @Test("base64 input across chunks, first member or last", arguments: [1, 5, 4096])
    func base64Input(chunk: Int) async throws {
        let payload: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let encoded = Data(payload).base64EncodedString()
        for body in [#"{"stdin_base64":"\#(encoded)","command":["cat"]}"#, #"{"command":["cat"],"stdin_base64":"\#(encoded)"}"#] {
            let (rest, stdin, member) = try await Self.split(body, chunk: chunk)
            #expect(member == "stdin_base64")
            #expect(stdin == payload)
            #expect((rest as? [String: Any])?.keys.sorted() == ["command"])
        }
    }

    @Test("input past the memory limit is spooled to a file and read back whole")
    func largeInput() async throws {
        let text = String(repeating: "0123456789abcdef", count: (3 << 20) / 16)
        let (_, stdin, _) = try await Self.split(#"{"command":["wc"],"stdin":"\#(text)"}"#, chunk: 65536)
        #expect(stdin.count == text.utf8.count)
        #expect(stdin == Array(text.utf8))
    }

    @Test("refusals name the problem")
    func refusals() async throws {
        let cases: [(String, ExecBodySplitter.Failure)] = [
            (#"{"stdin":"a","stdin_base64":"YQ=="}"#, .both),
            (#"{"stdin":"bad \x"}"#, .invalidString(#"invalid escape \x"#)),
            (#"{"stdin":"\ud800x"}"#, .invalidString("unpaired surrogate")),
            ("{\"stdin\":\"tab\u{09}\"}", .invalidString("unescaped control character")),
            (#"{"stdin_base64":"YQ="}"#, .invalidString("stdin_base64 is not valid base64")),
            (#"{"stdin_base64":"YQ==YQ=="}"#, .invalidString("stdin_base64 is not valid base64")),
            (#"{"command":["\#(String(repeating: "x", count: 100))"]}"#, .membersTooLarge(limit: 64)),
        ]
        for (body, expected) in cases {
            await #expect(throws: expected, "\(body)") { _ = try await Self.split(body, chunk: 3, limit: 64) }
        }
    }

    @Test("bodies that are not one whole JSON object stay undecodable")
    func notAnObject() throws {
        for body in [#"["stdin"]"#, "42", #"{"command":["cat"],"stdin":"abc"#, #"{"command":["cat"]} x"#] {
            var splitter = ExecBodySplitter(spool: StdinSpool(), memberLimit: 1 << 20)
            try splitter.feed(Array(body.utf8)[...])
            let rest = try splitter.finish()
            #expect((try? JSONSerialization.jsonObject(with: Data(rest))) as? [String: Any] == nil, "\(body)")
        }
    }
}
