import Testing

@testable import EngineDriver

@Suite struct JSONStreamSplitterTests {
    private static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
    private static func texts(_ values: [[UInt8]]) -> [String] { values.map { String(decoding: $0, as: UTF8.self) } }

    /// A build-stream-like sequence whose strings hold braces, brackets, escaped quotes and
    /// backslashes, with assorted whitespace between values.
    static let values = [
        #"{"stream":"Step 1/2 : FROM localhost/busybox:test\n"}"#,
        #"{"stream":" ---> {not} [a] \"container\" }}}\\"}"#,
        #"{"aux":{"ID":"sha256:abc"},"list":[1,[2,{"x":"]"}],3]}"#,
        #"{"errorDetail":{"message":"a \\\"quoted\\\" \\\\ path"},"error":"}{"}"#,
        #"[{"a":"{"},"}",{}]"#,
        #""top-level \" string with { and }""#,
        #"{"unicode":"h\u00e9llo ☃ {"}"#,
    ]
    static let stream = values.joined(separator: "\r\n") + "\n \t\n"

    @Test func wholeStreamInOneChunk() throws {
        var splitter = JSONStreamSplitter()
        let values = try splitter.feed(Self.bytes(Self.stream))
        #expect(Self.texts(values) == Self.values)
        #expect(try splitter.finish().isEmpty)
        #expect(!splitter.isInsideValue)
    }

    @Test func splitAtEveryByteBoundary() throws {
        let all = Self.bytes(Self.stream)
        for cut in 0...all.count {
            var splitter = JSONStreamSplitter()
            var values = try splitter.feed(all[..<cut])
            values += try splitter.feed(all[cut...])
            values += try splitter.finish()
            #expect(Self.texts(values) == Self.values, "cut at \(cut)")
        }
    }

    @Test func splitAtEveryPairOfBoundaries() throws {
        let all = Self.bytes(Self.values[1] + Self.values[3])
        for first in 0...all.count {
            for second in first...all.count {
                var splitter = JSONStreamSplitter()
                var values = try splitter.feed(all[..<first])
                values += try splitter.feed(all[first..<second])
                values += try splitter.feed(all[second...])
                try splitter.finish()
                #expect(Self.texts(values) == [Self.values[1], Self.values[3]], "cuts at \(first), \(second)")
            }
        }
    }

    @Test func oneByteAtATime() throws {
        var splitter = JSONStreamSplitter()
        var values: [[UInt8]] = []
        for byte in Self.bytes(Self.stream) { values += try splitter.feed(CollectionOfOne(byte)) }
        #expect(Self.texts(values) == Self.values)
        try splitter.finish()
    }

    @Test func manyObjectsInOneChunkWithoutSeparators() throws {
        let objects = (0..<1000).map { #"{"n":\#($0),"s":"}\"{"}"# }
        var splitter = JSONStreamSplitter()
        let values = try splitter.feed(Self.bytes(objects.joined()))
        #expect(Self.texts(values) == objects)
    }

    @Test func bareScalarsEndAtWhitespaceNextValueOrFinish() throws {
        var splitter = JSONStreamSplitter()
        var values = try splitter.feed(Self.bytes("1 true\nnull{\"a\":1}-2.5e3"))
        #expect(Self.texts(values) == ["1", "true", "null", #"{"a":1}"#])
        values = try splitter.finish()
        #expect(Self.texts(values) == ["-2.5e3"])
    }

    @Test func emptyAndWhitespaceOnlyStreams() throws {
        var splitter = JSONStreamSplitter()
        #expect(try splitter.feed([UInt8]()).isEmpty)
        #expect(try splitter.feed(Self.bytes(" \n\r\n\t ")).isEmpty)
        #expect(try splitter.finish().isEmpty)
    }

    @Test func valueAtExactlyTheLimitPasses() throws {
        let value = #"{"k":"\#(String(repeating: "x", count: 20))"}"#
        var splitter = JSONStreamSplitter(maxValueSize: value.utf8.count)
        let values = try splitter.feed(Self.bytes(value + value))
        #expect(values.count == 2)
    }

    @Test func oversizeValueIsATypedErrorEvenWhenItNeverEnds() throws {
        var splitter = JSONStreamSplitter(maxValueSize: 64)
        #expect(try splitter.feed(Self.bytes(#"{"ok":1}"#)).count == 1)
        _ = try splitter.feed(Self.bytes(#"{"k":""#))
        let filler = [UInt8](repeating: UInt8(ascii: "a"), count: 32)
        _ = try splitter.feed(filler)
        #expect(throws: JSONStreamSplitter.Error.valueTooLarge(limit: 64)) { try splitter.feed(filler) }
        // The splitter stays failed.
        #expect(throws: JSONStreamSplitter.Error.valueTooLarge(limit: 64)) { try splitter.feed(Self.bytes("{}")) }
        #expect(throws: JSONStreamSplitter.Error.valueTooLarge(limit: 64)) { try splitter.finish() }
    }

    @Test func oversizeValueClosingInTheSameChunk() {
        var splitter = JSONStreamSplitter(maxValueSize: 8)
        #expect(throws: JSONStreamSplitter.Error.valueTooLarge(limit: 8)) { try splitter.feed(Self.bytes(#"{"a":"12"}"#)) }
    }

    @Test func valuesBeforeAnErrorInTheSameChunkAreReturnedFirst() throws {
        var splitter = JSONStreamSplitter(maxValueSize: 16)
        let values = try splitter.feed(Self.bytes(#"{"a":1} {"error":"too long for the limit"}"#))
        #expect(Self.texts(values) == [#"{"a":1}"#])
        #expect(throws: JSONStreamSplitter.Error.valueTooLarge(limit: 16)) { try splitter.finish() }
    }

    @Test(arguments: [#"{"a":1"#, #"{"a":"}"#, #"[1,[2]"#, #""open string"#, #"{"a":"\""#])
    func truncatedTrailingValue(_ tail: String) throws {
        var splitter = JSONStreamSplitter()
        let values = try splitter.feed(Self.bytes(#"{"done":true}"# + "\n" + tail))
        #expect(values.count == 1)
        #expect(splitter.isInsideValue)
        #expect(throws: JSONStreamSplitter.Error.truncated(bufferedBytes: tail.utf8.count)) { try splitter.finish() }
    }

    @Test func strayClosingByteBetweenValues() throws {
        var splitter = JSONStreamSplitter()
        // The complete value comes first, the error with the next call.
        #expect(try splitter.feed(Self.bytes("{}\n}")).count == 1)
        #expect(throws: JSONStreamSplitter.Error.unexpectedByte(UInt8(ascii: "}"), offset: 3)) { try splitter.finish() }
        var other = JSONStreamSplitter()
        #expect(throws: JSONStreamSplitter.Error.unexpectedByte(UInt8(ascii: ","), offset: 3)) {
            _ = try other.feed(Self.bytes("{} "))
            return try other.feed(Self.bytes(",{}"))
        }
    }

    @Test func valuesAreCopiesIndependentOfLaterInput() throws {
        var splitter = JSONStreamSplitter()
        let first = try splitter.feed(Self.bytes(#"{"a":"#))
        #expect(first.isEmpty)
        let second = try splitter.feed(Self.bytes(#""x"}{"b":"#))
        let third = try splitter.feed(Self.bytes(#"2}"#))
        #expect(Self.texts(second + third) == [#"{"a":"x"}"#, #"{"b":2}"#])
    }
}
