import HTTPTypes

/// Matches request paths against OpenAPI path templates such as `/images/{reference}`.
///
/// Matching runs on the raw, still percent-encoded path: an image reference travels as one
/// segment with `/` encoded as `%2F`, and decoding first would split it into several.
public struct Router<Handler: Sendable>: Sendable {
    public enum Match {
        case found(Handler, template: String, parameters: [String: Substring])
        /// The path exists but not for this method; `allowed` feeds the `Allow` header.
        case methodNotAllowed(allowed: [HTTPRequest.Method])
        case notFound
    }

    private enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
    }

    private struct Route: Sendable {
        var template: String
        var segments: [Segment]
        var handlers: [HTTPRequest.Method: Handler]
    }

    private var routes: [Route] = []

    public init() {}

    public enum RegistrationError: Error, CustomStringConvertible {
        case duplicate(method: HTTPRequest.Method, template: String)
        case invalidTemplate(String)

        public var description: String {
            switch self {
            case .duplicate(let method, let template): "route \(method) \(template) registered twice"
            case .invalidTemplate(let template): "invalid path template \(template)"
            }
        }
    }

    public mutating func add(_ method: HTTPRequest.Method, _ template: String, _ handler: Handler) throws {
        let segments = try Self.parse(template: template)
        // `/images/{a}` and `/images/{b}` match the same requests: the later one would never run.
        if routes.contains(where: { Self.sameShape($0.segments, segments) && $0.handlers[method] != nil }) {
            throw RegistrationError.duplicate(method: method, template: template)
        }
        if let index = routes.firstIndex(where: { $0.segments == segments }) {
            guard routes[index].handlers[method] == nil else {
                throw RegistrationError.duplicate(method: method, template: template)
            }
            routes[index].handlers[method] = handler
        } else {
            routes.append(Route(template: template, segments: segments, handlers: [method: handler]))
            // Literal segments win over parameters at the same position, whatever the registration order.
            routes.sort { Self.specificity($1.segments).lexicographicallyPrecedes(Self.specificity($0.segments)) }
        }
    }

    /// `path` is the request target without the query, exactly as received.
    public func match(method: HTTPRequest.Method, path: Substring) -> Match {
        let requestSegments = Self.split(path)
        var allowed: [HTTPRequest.Method] = []
        for route in routes {
            guard let parameters = Self.bind(route.segments, to: requestSegments) else { continue }
            if let handler = route.handlers[method] {
                return .found(handler, template: route.template, parameters: parameters)
            }
            allowed.append(contentsOf: route.handlers.keys)
        }
        if allowed.isEmpty { return .notFound }
        return .methodNotAllowed(allowed: allowed.sorted { $0.rawValue < $1.rawValue })
    }

    private static func split(_ path: Substring) -> [Substring] {
        // A leading slash is required by HTTP; a trailing one is tolerated as the same resource.
        var trimmed = path.drop { $0 == "/" }
        if trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        if trimmed.isEmpty { return [] }
        return trimmed.split(separator: "/", omittingEmptySubsequences: false)
    }

    private static func parse(template: String) throws -> [Segment] {
        guard template.hasPrefix("/") else { throw RegistrationError.invalidTemplate(template) }
        return try split(template[...]).map { segment in
            if segment.hasPrefix("{") && segment.hasSuffix("}") {
                let name = segment.dropFirst().dropLast()
                guard !name.isEmpty else { throw RegistrationError.invalidTemplate(template) }
                return .parameter(String(name))
            }
            guard !segment.isEmpty, !segment.contains("{"), !segment.contains("}") else {
                throw RegistrationError.invalidTemplate(template)
            }
            return .literal(String(segment))
        }
    }

    private static func bind(_ segments: [Segment], to request: [Substring]) -> [String: Substring]? {
        guard segments.count == request.count else { return nil }
        var parameters: [String: Substring] = [:]
        for (segment, value) in zip(segments, request) {
            switch segment {
            case .literal(let literal):
                guard value == literal else { return nil }
            case .parameter(let name):
                guard !value.isEmpty else { return nil }
                parameters[name] = value
            }
        }
        return parameters
    }

    /// Equal literals at equal positions, whatever the parameters are called.
    private static func sameShape(_ lhs: [Segment], _ rhs: [Segment]) -> Bool {
        lhs.count == rhs.count
            && zip(lhs, rhs).allSatisfy { pair in
                switch pair {
                case (.literal(let a), .literal(let b)): a == b
                case (.parameter, .parameter): true
                default: false
                }
            }
    }

    private static func specificity(_ segments: [Segment]) -> [Int] {
        segments.map { if case .literal = $0 { 1 } else { 0 } }
    }
}
