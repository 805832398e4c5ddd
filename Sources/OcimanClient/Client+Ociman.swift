// OcimanClient: a Swift client for ocimand, generated from the same openapi.yaml as the server
// (swift-openapi-generator, client mode), with a transport for TCP and unix sockets.
//
//     import OcimanClient
//
//     let ociman = try Client.fromEnvironment()          // OCIMAN_HOST, OCIMAN_TOKEN / OCIMAN_TOKEN_FILE
//     // or: Client(host: .unix("/run/ociman.sock"), token: "...")
//     let run = try await ociman.runContainer(body: .json(.init(image: "localhost/busybox:test", command: ["sleep", "60"])))
//     let container = try run.created.body.json                 // throws unless the answer was 201
//     for try await event in try await ociman.execEvents(container: container.id, .init(command: ["sh", "-c", "echo hi"])) {
//         if case .stdout(let output) = event { print(output.data ?? "", terminator: "") }
//     }
//
// Every operation of the contract is a method of `Client` taking and returning the generated
// `Operations.*` and `Components.Schemas.*` types. The streaming operations (logs, streamed exec,
// builds, pull, push) are also offered as `*Events` methods (ClientStreams.swift) that yield the
// contract's event enums as an `AsyncThrowingStream`, pulled from the socket as you iterate;
// leaving the loop early closes the connection, which cancels the stream in ocimand.
import Foundation
import HTTPTypes
import OpenAPIRuntime
import RFC3339

extension Client {
    /// A client for the ocimand at `host`, sending `token` as bearer token when given.
    /// - Parameter timeout: how long to wait for an answer to start (see `SocketTransport`).
    public init(host: OcimanHost = .default, token: String? = nil, timeout: Duration = .seconds(3600)) {
        self.init(
            serverURL: host.serverURL,
            configuration: .ociman,
            transport: SocketTransport(host: host, timeout: timeout),
            middlewares: token.map { [BearerToken(token: $0)] } ?? [])
    }

    /// The client the environment describes: `OCIMAN_HOST` (`tcp://host:port` or
    /// `unix:///path`; default `tcp://127.0.0.1:8420`) and the token: `OCIMAN_TOKEN`, else the
    /// contents of `tokenFile`, else of the file `OCIMAN_TOKEN_FILE` names (the same variables
    /// ocimand reads).
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, tokenFile: String? = nil
    ) throws(OcimanClientError) -> Client {
        let host = try environment["OCIMAN_HOST"].flatMap { $0.isEmpty ? nil : $0 }.map { text throws(OcimanClientError) in
            try OcimanHost(parsing: text)
        } ?? .default
        var token = environment["OCIMAN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if token == nil, let path = tokenFile ?? environment["OCIMAN_TOKEN_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            do {
                token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw .configuration("cannot read the token file \(path): \(error)")
            }
        }
        return Client(host: host, token: token)
    }
}

extension Configuration {
    /// The contract's times (`format: date-time`) as ocimand writes them.
    public static let ociman = Configuration(dateTranscoder: RFC3339DateTranscoder())
}

/// `Authorization: Bearer <token>` on every request.
struct BearerToken: ClientMiddleware {
    let token: String

    func intercept(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, URL) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = request
        request.headerFields[.authorization] = "Bearer \(token)"
        return try await next(request, body, baseURL)
    }
}
