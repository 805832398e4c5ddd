import Foundation
import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func createSession(_ input: Operations.CreateSession.Input) async throws -> Operations.CreateSession.Output {
        guard case .json(let lease) = input.body else { throw OcimanError.invalid(field: nil, message: "expected JSON") }
        let session = try runtime.sessions.create(leaseSeconds: lease.leaseSeconds)
        return .created(.init(body: .json(.init(session))))
    }

    public func renewSession(_ input: Operations.RenewSession.Input) async throws -> Operations.RenewSession.Output {
        guard case .json(let lease) = input.body else { throw OcimanError.invalid(field: nil, message: "expected JSON") }
        let session = try runtime.sessions.renew(input.path.id, leaseSeconds: lease.leaseSeconds)
        return .ok(.init(body: .json(.init(session))))
    }

    public func deleteSession(_ input: Operations.DeleteSession.Input) async throws -> Operations.DeleteSession.Output {
        let removed = try await runtime.deleteSession(input.path.id)
        return .ok(.init(body: .json(.init(removedContainers: removed))))
    }
}

extension Components.Schemas.Session {
    init(_ session: SessionStore.Session) {
        self.init(id: session.id, expiresAt: session.expiryDate)
    }
}
