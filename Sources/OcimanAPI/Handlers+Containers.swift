import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func runContainer(_ input: Operations.RunContainer.Input) async throws -> Operations.RunContainer.Output {
        throw NotImplementedYet(operation: "runContainer")
    }

    public func listContainers(_ input: Operations.ListContainers.Input) async throws -> Operations.ListContainers.Output {
        throw NotImplementedYet(operation: "listContainers")
    }

    public func inspectContainer(_ input: Operations.InspectContainer.Input) async throws -> Operations.InspectContainer.Output {
        throw NotImplementedYet(operation: "inspectContainer")
    }

    public func removeContainer(_ input: Operations.RemoveContainer.Input) async throws -> Operations.RemoveContainer.Output {
        throw NotImplementedYet(operation: "removeContainer")
    }

    public func stopContainer(_ input: Operations.StopContainer.Input) async throws -> Operations.StopContainer.Output {
        throw NotImplementedYet(operation: "stopContainer")
    }

    public func killContainer(_ input: Operations.KillContainer.Input) async throws -> Operations.KillContainer.Output {
        throw NotImplementedYet(operation: "killContainer")
    }

    public func waitContainer(_ input: Operations.WaitContainer.Input) async throws -> Operations.WaitContainer.Output {
        throw NotImplementedYet(operation: "waitContainer")
    }

    public func commitContainer(_ input: Operations.CommitContainer.Input) async throws -> Operations.CommitContainer.Output {
        throw NotImplementedYet(operation: "commitContainer")
    }
}
