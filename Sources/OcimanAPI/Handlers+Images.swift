import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func buildImage(_ input: Operations.BuildImage.Input) async throws -> Operations.BuildImage.Output {
        throw NotImplementedYet(operation: "buildImage")
    }

    public func hashContext(_ input: Operations.HashContext.Input) async throws -> Operations.HashContext.Output {
        throw NotImplementedYet(operation: "hashContext")
    }

    public func listImages(_ input: Operations.ListImages.Input) async throws -> Operations.ListImages.Output {
        throw NotImplementedYet(operation: "listImages")
    }

    public func pullImage(_ input: Operations.PullImage.Input) async throws -> Operations.PullImage.Output {
        throw NotImplementedYet(operation: "pullImage")
    }

    public func pushImage(_ input: Operations.PushImage.Input) async throws -> Operations.PushImage.Output {
        throw NotImplementedYet(operation: "pushImage")
    }

    public func inspectImage(_ input: Operations.InspectImage.Input) async throws -> Operations.InspectImage.Output {
        throw NotImplementedYet(operation: "inspectImage")
    }

    public func removeImage(_ input: Operations.RemoveImage.Input) async throws -> Operations.RemoveImage.Output {
        throw NotImplementedYet(operation: "removeImage")
    }

    public func checkImage(_ input: Operations.CheckImage.Input) async throws -> Operations.CheckImage.Output {
        throw NotImplementedYet(operation: "checkImage")
    }

    public func tagImage(_ input: Operations.TagImage.Input) async throws -> Operations.TagImage.Output {
        throw NotImplementedYet(operation: "tagImage")
    }
}
