/// What went wrong in a `ContainerEngine` call, classified by what the runtime can do about
/// it. Adapters map their engine's answers onto these cases (each engine spells the same
/// failure differently); the message is the engine's own words, or the adapter's where the
/// engine's would mislead.
public enum EngineFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// No such container, image or exec.
    case notFound(String)
    /// The resource is in a state that forbids the call (name in use, not running, running).
    case conflict(String)
    /// The engine refused the request as given.
    case rejected(String)
    /// The engine cannot be reached, or the connection broke.
    case unavailable(String)
    /// No answer within the deadline.
    case timedOut(String)
    /// Anything else; `status` is the engine's HTTP status when it answered with one.
    case failed(status: Int?, message: String)

    public var message: String {
        switch self {
        case .notFound(let message), .conflict(let message), .rejected(let message), .unavailable(let message),
            .timedOut(let message), .failed(_, let message):
            message
        }
    }

    public var description: String { message }
}
