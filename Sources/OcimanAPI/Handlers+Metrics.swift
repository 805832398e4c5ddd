import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func getMetrics(_ input: Operations.GetMetrics.Input) async throws -> Operations.GetMetrics.Output {
        throw NotImplementedYet(operation: "getMetrics")
    }
}
