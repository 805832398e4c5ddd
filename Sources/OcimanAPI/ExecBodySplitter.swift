import Foundation

/// Takes `stdin` / `stdin_base64` out of an exec request body as it arrives, so that up to
/// 32 MiB of standard input never sits in memory as JSON text, a decoded string and a byte
/// array at once: the input's bytes go to a `StdinSpool`, the other members (small, and
/// bounded) are kept as they are and reassembled into a JSON object for the generated decoder.
///
/// Only the top level is looked at; a body that is not a JSON object is passed on unchanged
/// for the decoder to refuse. Keys are matched as written (an escaped spelling of `stdin`
/// simply stays in the JSON).
struct ExecBodySplitter {
    enum Failure: Error, Equatable {
        case invalidString(String)
        case both
        case membersTooLarge(limit: Int)
    }

    private enum State {
        case start
        case beforeKey
        case key(escaped: Bool)
        case afterKey
        case beforeValue
        case value(depth: Int, inString: Bool, escaped: Bool)
        case stdinValue
        case afterStdinValue
        case afterObject
        /// Not a JSON object: everything goes to the decoder as it is.
        case passThrough
    }

    private var state = State.start
    private var members: [[UInt8]] = []
    private var current: [UInt8] = []
    private var key: [UInt8] = []
    private var keptBytes = 0
    private let memberLimit: Int
    private var stdinText = JSONStringDecoder()
    private var base64: Base64Decoder?
    /// Which input member was found: `stdin` or `stdin_base64`.
    private(set) var stdinMember: String?
    let spool: StdinSpool

    init(spool: StdinSpool, memberLimit: Int) {
        self.spool = spool
        self.memberLimit = memberLimit
    }

    mutating func feed(_ bytes: ArraySlice<UInt8>) throws {
        try bytes.withUnsafeBufferPointer { buffer in
            var index = 0
            while index < buffer.count {
                // The input's plain text (nearly all of a large body) is copied in runs, not stepped.
                if case .stdinValue = state, let run = stdinText.plainRun(in: buffer, from: index), run > 0 {
                    index += run
                    try flushStdinIfFull()
                    continue
                }
                try step(buffer[index])
                index += 1
            }
        }
        keptBytes = members.reduce(current.count + key.count) { $0 + $1.count }
        if keptBytes > memberLimit { throw Failure.membersTooLarge(limit: memberLimit) }
    }

    /// The body without its input member, for the generated decoder.
    mutating func finish() throws -> [UInt8] {
        if case .passThrough = state { return current }
        if case .value = state { members.append(current) }
        try base64?.finish(into: spool)
        var json: [UInt8] = [UInt8(ascii: "{")]
        for (index, member) in members.enumerated() {
            if index > 0 { json.append(UInt8(ascii: ",")) }
            json += member
        }
        // A truncated body stays truncated, so the decoder reports it.
        if case .afterObject = state { json.append(UInt8(ascii: "}")) }
        return json
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }

    private mutating func step(_ byte: UInt8) throws {
        switch state {
        case .start:
            if Self.isSpace(byte) { return }
            if byte == UInt8(ascii: "{") {
                state = .beforeKey
            } else {
                state = .passThrough
                current.append(byte)
            }
        case .passThrough:
            current.append(byte)
        case .beforeKey:
            if Self.isSpace(byte) || byte == UInt8(ascii: ",") { return }
            if byte == UInt8(ascii: "}") {
                state = .afterObject
            } else {
                key = [byte]
                state = .key(escaped: false)
            }
        case .key(let escaped):
            key.append(byte)
            if escaped {
                state = .key(escaped: false)
            } else if byte == UInt8(ascii: "\\") {
                state = .key(escaped: true)
            } else if byte == UInt8(ascii: "\"") {
                state = .afterKey
            }
        case .afterKey:
            if Self.isSpace(byte) { return }
            key.append(byte)  // the colon (or whatever stands there, for the decoder to refuse)
            state = .beforeValue
        case .beforeValue:
            if Self.isSpace(byte) { return }
            if byte == UInt8(ascii: "\""), let member = Self.inputMember(key) {
                guard stdinMember == nil else { throw Failure.both }
                stdinMember = member
                if member == "stdin_base64" { base64 = Base64Decoder() }
                key = []
                state = .stdinValue
            } else {
                current = key
                key = []
                state = .value(depth: 0, inString: false, escaped: false)
                try step(byte)
            }
        case .value(let depth, let inString, let escaped):
            if inString {
                current.append(byte)
                if escaped {
                    state = .value(depth: depth, inString: true, escaped: false)
                } else if byte == UInt8(ascii: "\\") {
                    state = .value(depth: depth, inString: true, escaped: true)
                } else if byte == UInt8(ascii: "\"") {
                    state = .value(depth: depth, inString: false, escaped: false)
                }
                return
            }
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "}"):
                if depth == 0 {
                    members.append(current)
                    current = []
                    state = byte == UInt8(ascii: ",") ? .beforeKey : .afterObject
                    return
                }
                current.append(byte)
                if byte == UInt8(ascii: "}") { state = .value(depth: depth - 1, inString: false, escaped: false) }
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                current.append(byte)
                state = .value(depth: depth + 1, inString: false, escaped: false)
            case UInt8(ascii: "]"):
                current.append(byte)
                state = .value(depth: depth - 1, inString: false, escaped: false)
            case UInt8(ascii: "\""):
                current.append(byte)
                state = .value(depth: depth, inString: true, escaped: false)
            default:
                current.append(byte)
            }
        case .stdinValue:
            let ended = try stdinText.feed(byte)
            if ended {
                try flushStdin()
                state = .afterStdinValue
            } else {
                try flushStdinIfFull()
            }
        case .afterStdinValue:
            if Self.isSpace(byte) { return }
            if byte == UInt8(ascii: ",") {
                state = .beforeKey
            } else if byte == UInt8(ascii: "}") {
                state = .afterObject
            } else {
                // Garbage after the string: keep it so the decoder refuses the body.
                current = [byte]
                state = .value(depth: 0, inString: false, escaped: false)
            }
        case .afterObject:
            if Self.isSpace(byte) { return }
            // Trailing garbage: a second member list the decoder will refuse.
            members.append([byte])
            state = .passThrough
        }
    }

    private mutating func flushStdinIfFull() throws {
        if stdinText.output.count >= 64 << 10 { try flushStdin() }
    }

    private mutating func flushStdin() throws {
        let run = stdinText.takeOutput()
        if base64 != nil { try base64!.feed(run, into: spool) } else { try spool.write(run) }
    }

    private static let stdinKey = Array("\"stdin\"".utf8)
    private static let stdinBase64Key = Array("\"stdin_base64\"".utf8)

    /// `key` holds the quoted key followed by the colon.
    private static func inputMember(_ key: [UInt8]) -> String? {
        guard key.last == UInt8(ascii: ":") else { return nil }
        let quoted = key.dropLast()
        if quoted.elementsEqual(stdinKey) { return "stdin" }
        if quoted.elementsEqual(stdinBase64Key) { return "stdin_base64" }
        return nil
    }
}

/// Decodes the inside of a JSON string (after its opening quote) one byte at a time.
struct JSONStringDecoder {
    private enum State { case text, escape, unicode(digits: Int, value: UInt32) }
    private var state = State.text
    private var highSurrogate: UInt32?
    /// What has been decoded and not yet taken: handed out in runs rather than byte by byte.
    private(set) var output: [UInt8] = []

    mutating func takeOutput() -> [UInt8] {
        defer { output.removeAll(keepingCapacity: true) }
        return output
    }

    /// Copies the plain bytes starting at `start` (up to a quote, backslash or control byte) to
    /// the output and returns how many; nil inside an escape.
    mutating func plainRun(in buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard case .text = state, highSurrogate == nil else { return nil }
        var end = start
        while end < buffer.count {
            let byte = buffer[end]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
            end += 1
        }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<end]))
        return end - start
    }

    /// Returns true at the closing quote.
    mutating func feed(_ byte: UInt8) throws -> Bool {
        switch state {
        case .text:
            if byte == UInt8(ascii: "\"") {
                guard highSurrogate == nil else { throw ExecBodySplitter.Failure.invalidString("unpaired surrogate") }
                return true
            }
            if byte == UInt8(ascii: "\\") {
                state = .escape
                return false
            }
            guard byte >= 0x20 else { throw ExecBodySplitter.Failure.invalidString("unescaped control character") }
            guard highSurrogate == nil else { throw ExecBodySplitter.Failure.invalidString("unpaired surrogate") }
            output.append(byte)
        case .escape:
            state = .text
            let decoded: UInt8
            switch byte {
            case UInt8(ascii: "\""): decoded = 0x22
            case UInt8(ascii: "\\"): decoded = 0x5C
            case UInt8(ascii: "/"): decoded = 0x2F
            case UInt8(ascii: "b"): decoded = 0x08
            case UInt8(ascii: "f"): decoded = 0x0C
            case UInt8(ascii: "n"): decoded = 0x0A
            case UInt8(ascii: "r"): decoded = 0x0D
            case UInt8(ascii: "t"): decoded = 0x09
            case UInt8(ascii: "u"):
                state = .unicode(digits: 0, value: 0)
                return false
            default: throw ExecBodySplitter.Failure.invalidString("invalid escape \\\(Character(UnicodeScalar(byte)))")
            }
            guard highSurrogate == nil else { throw ExecBodySplitter.Failure.invalidString("unpaired surrogate") }
            output.append(decoded)
        case .unicode(let digits, let value):
            guard let digit = Self.hexValue(byte) else { throw ExecBodySplitter.Failure.invalidString("invalid \\u escape") }
            let next = value << 4 | digit
            guard digits == 3 else {
                state = .unicode(digits: digits + 1, value: next)
                return false
            }
            state = .text
            try scalar(next)
        }
        return false
    }

    private mutating func scalar(_ code: UInt32) throws {
        if let high = highSurrogate {
            guard (0xDC00...0xDFFF).contains(code) else { throw ExecBodySplitter.Failure.invalidString("unpaired surrogate") }
            highSurrogate = nil
            append(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
        } else if (0xD800...0xDBFF).contains(code) {
            highSurrogate = code
        } else if (0xDC00...0xDFFF).contains(code) {
            throw ExecBodySplitter.Failure.invalidString("unpaired surrogate")
        } else {
            append(code)
        }
    }

    private mutating func append(_ code: UInt32) {
        output += Array(String(Character(UnicodeScalar(code)!)).utf8)
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}

/// Standard base64 (with padding, no whitespace, as `Data(base64Encoded:)` reads it), decoded
/// in whole four-character groups as the text arrives.
struct Base64Decoder {
    private var pending: [UInt8] = []
    private var ended = false

    mutating func feed(_ text: [UInt8], into spool: StdinSpool) throws {
        pending += text
        let whole = pending.count / 4 * 4
        guard whole > 0 else { return }
        // Padding may only close the last group of the whole text.
        guard !ended else { throw ExecBodySplitter.Failure.invalidString("stdin_base64 is not valid base64") }
        let groups = Data(pending[..<whole])
        pending.removeFirst(whole)
        guard let bytes = Data(base64Encoded: groups) else {
            throw ExecBodySplitter.Failure.invalidString("stdin_base64 is not valid base64")
        }
        if groups.last == UInt8(ascii: "=") { ended = true }
        try spool.write([UInt8](bytes))
    }

    func finish(into spool: StdinSpool) throws {
        guard pending.isEmpty else { throw ExecBodySplitter.Failure.invalidString("stdin_base64 is not valid base64") }
    }
}
