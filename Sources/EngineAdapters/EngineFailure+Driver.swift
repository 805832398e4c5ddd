import EngineDriver
import OcimanCore

extension EngineFailure {
    /// What a driver error means to the runtime. Engine-specific spellings of the same
    /// failure (Podman's 500s) are remapped by the adapters before this.
    init(_ error: EngineError) {
        switch error {
        case .notFound(let message): self = .notFound(message)
        case .conflict(let message): self = .conflict(message)
        case .badRequest(let message): self = .rejected(message)
        case .notModified: self = .failed(status: 304, message: error.message)
        case .unavailable(let message): self = .unavailable(message)
        case .timeout(let message): self = .timedOut(message)
        case .engine(let status, let message): self = .failed(status: status, message: message)
        case .protocolViolation(let message): self = .failed(status: nil, message: message)
        }
    }

    /// `error` as the protocol reports it: driver errors classified, anything else as it is.
    static func classifying(_ error: any Error) -> any Error {
        (error as? EngineError).map(EngineFailure.init) ?? error
    }
}

/// Runs driver calls, reporting their errors as `EngineFailure`.
func classified<T>(_ call: () async throws -> T) async throws -> T {
    do {
        return try await call()
    } catch {
        throw EngineFailure.classifying(error)
    }
}
