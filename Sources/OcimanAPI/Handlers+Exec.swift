import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func execInContainer(_ input: Operations.ExecInContainer.Input) async throws -> Operations.ExecInContainer.Output {
        throw NotImplementedYet(operation: "execInContainer")
    }

    public func getContainerLogs(_ input: Operations.GetContainerLogs.Input) async throws -> Operations.GetContainerLogs.Output {
        throw NotImplementedYet(operation: "getContainerLogs")
    }
}
