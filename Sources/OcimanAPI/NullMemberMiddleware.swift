import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime

/// Refuses JSON request bodies that set a member of the operation's request schema to `null`:
/// no member of the contract is nullable, but the generated decoders read `null` for an optional
/// member as "absent", so `{"changes": null}` would otherwise be accepted although it violates
/// the schema (found by the schemathesis contract run). Answers 400 naming the member, before
/// the body is decoded or any handler runs. Members the schema does not declare are ignored, as
/// the decoders ignore them.
///
/// It also names the member when the generated decoding fails on an integer member whose JSON
/// number is not a whole 64-bit one (`2^63`, `1.5`): Foundation's JSONDecoder reports that as
/// "not valid JSON" without a coding path, which would tell the client nothing. The range given
/// is the contract's; values within 64 bits are checked by the core (`IntegerBounds`).
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
        guard let body, let schema = Self.requestSchemas[operationID], Self.isJSON(request) else {
            return try await next(request, body, metadata)
        }
        // The transport has already capped the body's size; the decoder collects it whole anyway.
        let bytes = try await [UInt8](collecting: body, upTo: .max)
        if let field = Self.nullMember(in: bytes, schema: schema) {
            throw OcimanError.invalid(field: field, message: "must not be null; leave the member out instead")
        }
        do {
            return try await next(request, HTTPBody(bytes), metadata)
        } catch let error as ServerError where error.operationInput == nil {
            // Decoding failed; only a failure without a path is worth a second look.
            guard case .dataCorrupted(let context) = error.underlyingError as? DecodingError, context.codingPath.isEmpty,
                let (field, number, range) = Self.unrepresentableInteger(in: bytes, schema: schema)
            else { throw error }
            let bounds = "between \(range.minimum.map(String.init) ?? "\(Int64.min)") and \(range.maximum.map(String.init) ?? "\(Int64.max)")"
            throw OcimanError.invalid(field: field, message: "\(field) must be a whole number \(bounds), not \(number)")
        }
    }

    static func isJSON(_ request: HTTPRequest) -> Bool {
        request.headerFields[.contentType].map(RequestAdmission.mediaType) == "application/json"
    }

    /// The path of the first `null` the schema does not allow (`changes`, `publish[0].host_ip`,
    /// `labels.a`), or nil. Bodies that are not JSON objects pass: the decoder reports them.
    static func nullMember(in bytes: [UInt8], schema: MemberSchema) -> String? {
        // Cheap pre-check: without the token there is nothing to find.
        guard bytes.firstRange(of: Array("null".utf8)) != nil,
            let root = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        else { return nil }
        return find(in: root, schema: schema, at: "") { value, _ in value is NSNull }
    }

    /// The path, JSON text and contract range of the first integer member whose number is not a
    /// whole 64-bit one, or nil.
    static func unrepresentableInteger(in bytes: [UInt8], schema: MemberSchema)
        -> (field: String, number: String, range: IntegerRange)?
    {
        guard let root = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) else { return nil }
        var found: (String, IntegerRange)?
        guard let field = find(in: root, schema: schema, at: "", where: { value, memberSchema in
            guard case .integer(let range) = memberSchema, let number = value as? NSNumber,
                Int64(number.stringValue) == nil
            else { return false }
            found = (number.stringValue, range)
            return true
        }), let (number, range) = found else { return nil }
        return (field, number, range)
    }

    /// The path of the first member, element or map value (in key order) for which `matches`
    /// holds, given the schema it was declared with.
    private static func find(
        in value: Any, schema: MemberSchema, at path: String, where matches: (Any, MemberSchema) -> Bool
    ) -> String? {
        func member(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
        switch schema {
        case .object(let members):
            guard let object = value as? [String: Any] else { return nil }
            for key in object.keys.sorted() {
                guard let memberSchema = members[key] else { continue }
                if matches(object[key]!, memberSchema) { return member(key) }
                if let found = find(in: object[key]!, schema: memberSchema, at: member(key), where: matches) { return found }
            }
        case .map(let values):
            guard let object = value as? [String: Any] else { return nil }
            for key in object.keys.sorted() {
                if matches(object[key]!, values) { return member(key) }
                if let found = find(in: object[key]!, schema: values, at: member(key), where: matches) { return found }
            }
        case .array(let items):
            guard let array = value as? [Any] else { return nil }
            for (index, element) in array.enumerated() {
                if matches(element, items) { return "\(path)[\(index)]" }
                if let found = find(in: element, schema: items, at: "\(path)[\(index)]", where: matches) { return found }
            }
        case .integer, .scalar:
            break
        }
        return nil
    }

    // MARK: - The request schemas, read from the embedded contract

    /// What the null check needs to know of a schema.
    indirect enum MemberSchema: Sendable, Equatable {
        /// Declared members (`properties`); others are ignored.
        case object([String: MemberSchema])
        /// `additionalProperties` with a schema: every value must match it.
        case map(MemberSchema)
        case array(MemberSchema)
        /// `type: integer`, with the contract's `minimum`/`maximum`.
        case integer(IntegerRange)
        case scalar
    }

    struct IntegerRange: Sendable, Equatable {
        var minimum: Int?
        var maximum: Int?
    }

    /// The JSON request body schema of each operation, by operation id.
    static let requestSchemas = requestSchemas(inContract: embeddedOpenAPIDocument)

    static func requestSchemas(inContract text: String) -> [String: MemberSchema] {
        let document = YAMLOutline(text)
        let components = document["components"]?["schemas"]
        var schemas: [String: MemberSchema] = [:]
        for (_, pathItem) in document["paths"]?.children ?? [] {
            for (_, operation) in pathItem.children {
                guard let id = operation["operationId"]?.value,
                    let schema = operation["requestBody"]?["content"]?["application/json"]?["schema"]
                else { continue }
                schemas[String(id)] = memberSchema(schema, components: components, depth: 0)
            }
        }
        return schemas
    }

    private static func memberSchema(_ node: YAMLOutline.Node, components: YAMLOutline.Node?, depth: Int) -> MemberSchema {
        guard depth < 32 else { return .scalar }
        if let reference = node["$ref"]?.value {
            let name = reference.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")).split(separator: "/").last
            guard let name, let target = components?[String(name)] else { return .scalar }
            return memberSchema(target, components: components, depth: depth + 1)
        }
        if let properties = node["properties"] {
            var members: [String: MemberSchema] = [:]
            for (name, property) in properties.children {
                members[name] = memberSchema(property, components: components, depth: depth + 1)
            }
            return .object(members)
        }
        if let items = node["items"] { return .array(memberSchema(items, components: components, depth: depth + 1)) }
        if node["type"]?.value == "integer" {
            return .integer(IntegerRange(minimum: node["minimum"].flatMap { Int($0.value) }, maximum: node["maximum"].flatMap { Int($0.value) }))
        }
        if let values = node["additionalProperties"], !values.children.isEmpty {
            return .map(memberSchema(values, components: components, depth: depth + 1))
        }
        return .scalar
    }
}

/// The mapping structure of a block-style YAML document, as far as indentation shows it: enough
/// to look up `paths.<path>.<method>.requestBody...` in the contract. Sequences, flow collections
/// and block scalars are not interpreted (their lines become children nobody looks up).
struct YAMLOutline {
    final class Node {
        var value: Substring = ""
        var children: [(key: String, node: Node)] = []

        subscript(key: String) -> Node? { children.first { $0.key == key }?.node }
    }

    let root = Node()

    init(_ text: String) {
        var stack: [(indent: Int, node: Node)] = [(-1, root)]
        for line in text.split(separator: "\n") {
            let indent = line.prefix { $0 == " " }.count
            let content = line.dropFirst(indent)
            guard !content.isEmpty, !content.hasPrefix("#"), !content.hasPrefix("- ") else { continue }
            let key: Substring
            let value: Substring
            if content.hasSuffix(":") {
                key = content.dropLast()
                value = ""
            } else if let separator = content.range(of: ": ") {
                key = content[..<separator.lowerBound]
                value = content[separator.upperBound...].drop { $0 == " " }
            } else {
                continue
            }
            while let last = stack.last, last.indent >= indent { stack.removeLast() }
            let node = Node()
            node.value = value
            stack.last!.node.children.append((Self.unquoted(key), node))
            stack.append((indent, node))
        }
    }

    subscript(key: String) -> Node? { root[key] }

    private static func unquoted(_ key: Substring) -> String {
        if key.count >= 2, let first = key.first, first == key.last, first == "'" || first == "\"" {
            return String(key.dropFirst().dropLast())
        }
        return String(key)
    }
}
