import EngineDriver

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

    /// Engine errors keep the engine's own message; the status decides the case.
    public init(_ error: EngineError, context: String? = nil) {
        let message = context.map { "\($0): \(error.message)" } ?? error.message
        switch error {
        case .notFound: self = .notFound(message)
        case .conflict: self = .conflict(message)
        case .badRequest: self = .invalid(field: nil, message: message)
        case .unavailable: self = .unavailable(message)
        // One rule (README, contract): an engine that cannot be reached is 503, one that was
        // reached but gave no answer within --engine-timeout is 504.
        case .timeout: self = .timedOut("the engine did not answer in time: \(message)")
        case .notModified, .engine, .protocolViolation: self = .engineFailure(message)
        }
    }

    public init(_ error: ValidationError) {
        self = .invalid(field: error.field, message: error.message)
    }

    /// Runs an engine call and converts what it throws.
    static func wrap<T>(_ context: String? = nil, _ body: () async throws -> T) async throws(OcimanError) -> T {
        do {
            return try await body()
        } catch let error as OcimanError {
            throw error
        } catch let error as EngineError {
            throw OcimanError(error, context: context)
        } catch let error as ValidationError {
            throw OcimanError(error)
        } catch is CancellationError {
            throw OcimanError.unavailable("the request was cancelled")
        } catch {
            throw OcimanError.engineFailure("\(error)")
        }
    }
}
