/// Errors the runtime core reports, one case per answer a client can act on.
/// The API layer maps each case to one HTTP status; the core never sees HTTP.
public enum OcimanError: Error, Sendable, CustomStringConvertible {
    /// Bad input; `field` names the offending JSON field when there is one.
    case invalid(field: String?, message: String)
    case forbidden(String)
    case notFound(String)
    case conflict(String)
    /// The engine cannot be reached or is down.
    case unavailable(String)
    /// A wait, or an engine call, ran out of time (504); carries what helps the client see why.
    case timedOut(String, containerID: String? = nil, logs: [String] = [])
    /// A new container stopped before its readiness wait was met (409, with its last output).
    case exitedBeforeReady(String, containerID: String, logs: [String])
    /// The engine failed in a way the request did not cause.
    case engineFailure(String)

    public var description: String {
        switch self {
        case .invalid(let field, let message): field.map { "\($0): \(message)" } ?? message
        case .forbidden(let message), .notFound(let message), .conflict(let message), .unavailable(let message),
            .engineFailure(let message):
            message
        case .timedOut(let message, _, _), .exitedBeforeReady(let message, _, _): message
        }
    }

    /// Engine failures keep the engine's own message; the classification decides the case.
    public init(_ failure: EngineFailure, context: String? = nil) {
        let message = context.map { "\($0): \(failure.message)" } ?? failure.message
        switch failure {
        case .notFound: self = .notFound(message)
        case .conflict: self = .conflict(message)
        case .rejected: self = .invalid(field: nil, message: message)
        case .unavailable: self = .unavailable(message)
        // One rule (README, contract): an engine that cannot be reached is 503, one that was
        // reached but gave no answer within --engine-timeout is 504.
        case .timedOut: self = .timedOut("the engine did not answer in time: \(message)")
        case .failed: self = .engineFailure(message)
        }
    }

    public init(_ error: ValidationError) {
        self = .invalid(field: error.field, message: error.message)
    }

    /// The one conversion of whatever an engine call, a stream or validation threw.
    public init(converting error: any Error, context: String? = nil) {
        switch error {
        case let error as OcimanError: self = error
        case let error as EngineFailure: self = OcimanError(error, context: context)
        case let error as ValidationError: self = OcimanError(error)
        case is CancellationError: self = .unavailable(context.map { "\($0): cancelled" } ?? "the request was cancelled")
        default: self = .engineFailure(context.map { "\($0): \(error)" } ?? "\(error)")
        }
    }

    /// Runs an engine call and converts what it throws.
    static func wrap<T>(_ context: String? = nil, _ body: () async throws -> T) async throws(OcimanError) -> T {
        do {
            return try await body()
        } catch {
            throw OcimanError(converting: error, context: context)
        }
    }
}
