import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func createSession(_ input: Operations.CreateSession.Input) async throws -> Operations.CreateSession.Output {
        throw NotImplementedYet(operation: "createSession")
    }

    public func renewSession(_ input: Operations.RenewSession.Input) async throws -> Operations.RenewSession.Output {
        throw NotImplementedYet(operation: "renewSession")
    }

    public func deleteSession(_ input: Operations.DeleteSession.Input) async throws -> Operations.DeleteSession.Output {
        throw NotImplementedYet(operation: "deleteSession")
    }
}
