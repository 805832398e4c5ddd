import HTTPTypes
import OcimanCore
import OpenAPIRuntime
import WebSockets

extension APIHandler {
    public func createExecSession(_ input: Operations.CreateExecSession.Input) async throws
        -> Operations.CreateExecSession.Output
    {
        guard case .json(let request) = input.body else {
            throw OcimanError.invalid(field: nil, message: "the request body must be application/json")
        }
        var options = ExecOptions(
            command: request.command, environment: request.env?.additionalProperties ?? [:], user: request.user,
            workdir: request.workdir)
        options.tty = request.tty ?? false
        options.openStdin = request.stdin ?? false
        let session = try await runtime.createExecSession(in: input.path.id, options)
        return .created(
            .init(body: .json(.init(id: session.id, containerId: session.containerID, tty: session.tty, stdin: session.stdin))))
    }

    public func inspectExecSession(_ input: Operations.InspectExecSession.Input) async throws
        -> Operations.InspectExecSession.Output
    {
        let state = try await runtime.execSessionState(input.path.id)
        return .ok(.init(body: .json(.init(id: input.path.id, running: state.running, exitCode: state.running ? nil : state.exitCode))))
    }

    public func attachExecSession(_ input: Operations.AttachExecSession.Input) async throws
        -> Operations.AttachExecSession.Output
    {
        guard let offer = WebSocketOffer.current else { throw WebSocketRequired() }
        let session = try await runtime.attachExecSession(input.path.id)
        InteractiveBridge.accept(offer, for: session, logger: logger)
        return .switchingProtocols(.init())
    }

    public func resizeExecSession(_ input: Operations.ResizeExecSession.Input) async throws
        -> Operations.ResizeExecSession.Output
    {
        guard case .json(let size) = input.body else {
            throw OcimanError.invalid(field: nil, message: "the request body must be application/json")
        }
        try await runtime.resizeExecSession(input.path.id, TerminalSize(rows: size.rows, columns: size.columns))
        return .noContent(.init())
    }

    public func attachContainer(_ input: Operations.AttachContainer.Input) async throws -> Operations.AttachContainer.Output {
        guard let offer = WebSocketOffer.current else { throw WebSocketRequired() }
        let session = try await runtime.attachContainer(input.path.id)
        InteractiveBridge.accept(offer, for: session, logger: logger)
        return .switchingProtocols(.init())
    }

    public func resizeContainer(_ input: Operations.ResizeContainer.Input) async throws -> Operations.ResizeContainer.Output {
        guard case .json(let size) = input.body else {
            throw OcimanError.invalid(field: nil, message: "the request body must be application/json")
        }
        try await runtime.resizeContainer(input.path.id, TerminalSize(rows: size.rows, columns: size.columns))
        return .noContent(.init())
    }
}

/// A plain request to a WebSocket route: 426, a problem document like every refusal (thrown,
/// so that it is rendered whatever the client accepts).
struct WebSocketRequired: Error {
    static var response: (HTTPResponse, HTTPBody) {
        let (problemHead, body) = ProblemDocument.response(
            status: 426,
            bytes: ProblemDocument.render(status: 426, detail: "this route speaks WebSocket only: send a version 13 handshake"))
        var head = problemHead
        head.headerFields[.upgrade] = "websocket"
        return (head, body)
    }
}
