import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func getHealth(_ input: Operations.GetHealth.Input) async throws -> Operations.GetHealth.Output {
        .ok(.init(body: .json(.init(status: .ok))))
    }

    public func getReady(_ input: Operations.GetReady.Input) async throws -> Operations.GetReady.Output {
        guard await runtime.isReady() else {
            throw OcimanError.unavailable("the \(runtime.kind.rawValue) engine at \(runtime.endpoint) does not answer")
        }
        return .ok(.init(body: .json(.init(status: .ok, backend: .init(runtime.kind)))))
    }

    public func getBackend(_ input: Operations.GetBackend.Input) async throws -> Operations.GetBackend.Output {
        let info = try await runtime.backendInfo()
        return .ok(
            .init(
                body: .json(
                    .init(
                        kind: .init(info.kind),
                        version: info.version,
                        apiVersion: info.apiVersion,
                        rootless: info.rootless,
                        endpoint: info.endpoint,
                        bridgeSubnets: info.bridgeSubnets,
                        hostGateway: info.hostGateway
                    ))))
    }

    public func getOpenAPIDocument(
        _ input: Operations.GetOpenAPIDocument.Input
    ) async throws -> Operations.GetOpenAPIDocument.Output {
        .ok(.init(body: .yaml(HTTPBody(Self.openAPIDocument))))
    }
}

extension Components.Schemas.BackendKind {
    init(_ kind: BackendKind) {
        switch kind {
        case .docker: self = .docker
        case .podman: self = .podman
        }
    }
}
