import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime

/// Refuses JSON request bodies that set a member the contract declares to `null`: no member of
/// the contract is nullable, but the generated decoders read `null` for an optional member as
/// "absent", so `{"changes": null}` would otherwise be accepted although it violates the schema
/// (found by the schemathesis contract run). Answers 400 naming the member, before the body is
/// decoded or any handler runs. Members the contract does not declare are ignored by the
/// decoders, and so are they (and whatever they hold) here. `null` inside arrays and maps needs
/// no check: the decoders refuse it there.
///
/// Goes after `ProblemMiddleware`, which turns the thrown `OcimanError` into the problem document.
public struct NullMemberMiddleware: ServerMiddleware {
    public init() {}

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard let body, Self.isJSON(request) else { return try await next(request, body, metadata) }
        // The transport has already capped the body's size; the decoder collects it whole anyway.
        let bytes = try await [UInt8](collecting: body, upTo: .max)
        if let field = Self.nullMember(in: bytes, declared: Self.declaredMembers) {
            throw OcimanError.invalid(field: field, message: "must not be null; leave the member out instead")
        }
        return try await next(request, HTTPBody(bytes), metadata)
    }

    static func isJSON(_ request: HTTPRequest) -> Bool {
        guard let contentType = request.headerFields[.contentType] else { return false }
        let mediaType = contentType.split(separator: ";", maxSplits: 1).first ?? ""
        return mediaType.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    /// Every member name the contract's object schemas declare.
    static let declaredMembers = declaredMemberNames(inContract: embeddedOpenAPIDocument)

    /// The path of the first declared member set to `null` (`changes`, `publish[0].host_ip`), or
    /// nil. Bodies that are not JSON pass: the decoder reports them with its own message.
    static func nullMember(in bytes: [UInt8], declared: Set<String>) -> String? {
        // Cheap pre-check: without the token there is nothing to find.
        guard bytes.firstRange(of: Array("null".utf8)) != nil,
            let root = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        else { return nil }
        return find(in: root, at: "", declared: declared)
    }

    private static func find(in value: Any, at path: String, declared: Set<String>) -> String? {
        switch value {
        case let object as [String: Any]:
            for key in object.keys.sorted() where declared.contains(key) {
                let member = path.isEmpty ? key : "\(path).\(key)"
                if object[key] is NSNull { return member }
                if let found = find(in: object[key]!, at: member, declared: declared) { return found }
            }
        case let array as [Any]:
            for (index, element) in array.enumerated() {
                if let found = find(in: element, at: "\(path)[\(index)]", declared: declared) { return found }
            }
        default:
            break
        }
        return nil
    }

    /// The keys of every `properties:` block of the contract (block-style YAML, as it is written).
    static func declaredMemberNames(inContract text: String) -> Set<String> {
        var names: Set<String> = []
        var blocks: [Int] = []  // indentation of the enclosing `properties:` lines
        for line in text.split(separator: "\n") {
            let indent = line.prefix { $0 == " " }.count
            let content = line.dropFirst(indent)
            if content.isEmpty || content.hasPrefix("#") { continue }
            while let last = blocks.last, indent <= last { blocks.removeLast() }
            if let last = blocks.last, indent == last + 2, content.hasSuffix(":") {
                names.insert(String(content.dropLast()))
            }
            if content == "properties:" { blocks.append(indent) }
        }
        return names
    }
}
