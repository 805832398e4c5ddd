import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime

/// Checks every path parameter (container id or name, image reference, session id) before the
/// generated code decodes it and before any handler runs, so a malformed one never reaches the
/// engine. The generated decoding turns an invalid percent-escape into an empty string, and the
/// engines resolve `.` and `..` as path segments: `DELETE /containers/%zz` would otherwise become
/// `DELETE /containers/` on the engine. This is the one place those are refused (400 naming the
/// parameter).
///
/// Goes after `ProblemMiddleware`, which turns the thrown `OcimanError` into the problem document.
public struct PathParameterMiddleware: ServerMiddleware {
    public init() {}

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        for (name, raw) in metadata.pathParameters.sorted(by: { $0.key < $1.key }) {
            if let problem = Self.problem(raw) { throw OcimanError.invalid(field: name, message: problem) }
        }
        return try await next(request, body, metadata)
    }

    /// Why the raw (still percent-encoded) segment is not a usable identifier, or nil.
    static func problem(_ raw: Substring) -> String? {
        guard let decoded = strictlyDecoded(raw) else {
            return "invalid percent-encoding in \"\(raw.prefix(200))\": every % must be followed by two hex digits of UTF-8"
        }
        if decoded.isEmpty { return "must not be empty" }
        if decoded == "." || decoded == ".." { return "\"\(decoded)\" is not an identifier" }
        if decoded.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "must not contain control characters" }
        return nil
    }

    /// Percent-decodes without the leniency of the generated code: a `%` not followed by two hex
    /// digits, or bytes that are not UTF-8, make it nil. `+` stays a plus in a path.
    static func strictlyDecoded(_ raw: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.utf8.count)
        var iterator = raw.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
