/// Splits a byte stream of concatenated JSON values into one byte array per top-level value.
///
/// Docker's build, pull and push progress streams are JSON objects back to back (usually, not
/// always, newline-separated) whose boundaries do not line up with HTTP chunks. The splitter
/// only finds boundaries — nesting depth, strings and escapes — and leaves validation to the
/// JSON decoder that gets each value. It works on any byte boundary and buffers at most one
/// value, bounded by `maxValueSize`.
///
/// Top-level objects, arrays and strings end at their closing byte; bare numbers and literals
/// (`true`, `12`) end at whitespace, at the start of the next value, or at `finish()`.
/// After a thrown error the stream is unusable and every further call throws again.
public struct JSONStreamSplitter: Sendable {
    public enum Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        /// One value grew past the limit before it ended.
        case valueTooLarge(limit: Int)
        /// The stream ended inside a value; `bufferedBytes` of it had arrived.
        case truncated(bufferedBytes: Int)
        /// A byte that cannot start a value (`}`, `]`, `,`, `:`) between values.
        case unexpectedByte(UInt8, offset: Int)

        public var description: String {
            switch self {
            case .valueTooLarge(let limit): "JSON value larger than \(limit) bytes"
            case .truncated(let count): "JSON stream ended inside a value after \(count) bytes of it"
            case .unexpectedByte(let byte, let offset):
                "unexpected byte 0x\(String(byte, radix: 16)) at offset \(offset) between JSON values"
            }
        }
    }

    private enum State: Sendable {
        /// Between values, skipping whitespace.
        case idle
        /// Inside an object or array, outside any string.
        case container
        /// Inside a string; `depth` tells whether it is a top-level string.
        case string(escaped: Bool)
        /// A top-level number or literal.
        case scalar
    }

    public let maxValueSize: Int
    private var state = State.idle
    private var depth = 0
    /// Bytes of the value in progress from earlier chunks.
    private var partial: [UInt8] = []
    /// Bytes consumed since the start, for error offsets.
    private var consumed = 0
    private var failure: Error?

    public init(maxValueSize: Int = 16 << 20) {
        precondition(maxValueSize > 0)
        self.maxValueSize = maxValueSize
    }

    /// Feeds the next bytes; returns every value that ended within them, in order. When the
    /// bytes hold complete values and then an error, the values are returned and the error is
    /// thrown by the next call (a failed build's last message must not be lost to a bad tail).
    public mutating func feed(_ bytes: some Collection<UInt8>) throws -> [[UInt8]] {
        if let failure { throw failure }
        var values: [[UInt8]] = []
        do {
            if try bytes.withContiguousStorageIfAvailable({ try scan($0, into: &values) }) == nil {
                try Array(bytes).withUnsafeBufferPointer { try scan($0, into: &values) }
            }
        } catch let error as Error {
            failure = error
            if values.isEmpty { throw error }
        }
        return values
    }

    /// Ends the stream. Returns a trailing bare scalar if one was pending; throws if the stream
    /// stopped inside an object, array or string.
    @discardableResult
    public mutating func finish() throws -> [[UInt8]] {
        if let failure { throw failure }
        switch state {
        case .idle:
            return []
        case .scalar:
            var value: [UInt8] = []
            swap(&value, &partial)
            reset()
            return [value]
        case .container, .string:
            let error = Error.truncated(bufferedBytes: partial.count)
            failure = error
            throw error
        }
    }

    /// True while part of a value is buffered.
    public var isInsideValue: Bool {
        if case .idle = state { return false }
        return true
    }

    private mutating func reset() {
        state = .idle
        depth = 0
        partial.removeAll()
    }

    private mutating func scan(_ bytes: UnsafeBufferPointer<UInt8>, into values: inout [[UInt8]]) throws {
        // Start of the current value within `bytes`; everything before it is in `partial` or skipped.
        var start = 0
        var index = 0

        while index < bytes.count {
            let byte = bytes[index]
            switch state {
            case .idle:
                start = index
                switch byte {
                case 0x20, 0x09, 0x0A, 0x0D:
                    break
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    state = .container
                    depth = 1
                case UInt8(ascii: "\""):
                    state = .string(escaped: false)
                case UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: ":"):
                    throw Error.unexpectedByte(byte, offset: consumed + index)
                default:
                    state = .scalar
                }
            case .container:
                switch byte {
                case UInt8(ascii: "\""):
                    state = .string(escaped: false)
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { values.append(try complete(bytes[start..<index + 1])) }
                default:
                    break
                }
            case .string(let escaped):
                if escaped {
                    state = .string(escaped: false)
                } else if byte == UInt8(ascii: "\\") {
                    state = .string(escaped: true)
                } else if byte == UInt8(ascii: "\"") {
                    if depth == 0 {
                        values.append(try complete(bytes[start..<index + 1]))
                    } else {
                        state = .container
                    }
                }
            case .scalar:
                switch byte {
                case 0x20, 0x09, 0x0A, 0x0D:
                    values.append(try complete(bytes[start..<index]))
                case UInt8(ascii: "{"), UInt8(ascii: "["), UInt8(ascii: "\""):
                    // The next value starts right here: close the scalar and look at this byte again.
                    values.append(try complete(bytes[start..<index]))
                    continue
                case UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: ":"):
                    throw Error.unexpectedByte(byte, offset: consumed + index)
                default:
                    break
                }
            }
            index += 1
            // Checked as the value grows, so a value that never ends cannot buffer without bound.
            if isInsideValue, partial.count + (index - start) > maxValueSize {
                throw Error.valueTooLarge(limit: maxValueSize)
            }
        }
        if isInsideValue {
            partial.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<bytes.count]))
        }
        consumed += bytes.count
    }

    /// The buffered start of the value plus its last bytes.
    private mutating func complete(_ tail: Slice<UnsafeBufferPointer<UInt8>>) throws -> [UInt8] {
        if partial.count + tail.count > maxValueSize { throw Error.valueTooLarge(limit: maxValueSize) }
        var value: [UInt8] = []
        swap(&value, &partial)
        value.append(contentsOf: UnsafeBufferPointer(rebasing: tail))
        reset()
        return value
    }
}
