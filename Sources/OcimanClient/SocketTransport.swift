import EngineDriver
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import OpenAPIRuntime
import PulledStreams

/// swift-openapi-runtime's `ClientTransport` over the engine driver's HTTP/1.1 client: pooled
/// keep-alive connections to ocimand on a unix socket or TCP. Request bodies are sent a chunk at
/// a time as they are pulled; response bodies arrive as the caller reads them (the driver reads
/// the socket only while a few buffers wait), and a caller that stops reading early closes the
/// connection, which tells ocimand to cancel the stream behind it.
public struct SocketTransport: ClientTransport {
    let client: EngineClient

    /// - Parameter timeout: how long to wait for a response head (a run with a readiness wait
    ///   or a non-streamed exec answers only when done); a body then streams for as long as it lasts.
    public init(host: OcimanHost, timeout: Duration = .seconds(3600)) {
        client = EngineClient(transport: host.transport, defaultTimeout: timeout)
    }

    public func send(
        _ request: HTTPRequest, body: HTTPBody?, baseURL: URL, operationID: String
    ) async throws -> (HTTPResponse, HTTPBody?) {
        let method = NIOHTTP1.HTTPMethod(rawValue: request.method.rawValue)
        var headers: [(String, String)] = []
        var contentType = "application/octet-stream"
        for field in request.headerFields {
            switch field.name {
            case .contentType: contentType = field.value
            // The driver frames the body and names the host itself.
            case .contentLength, .transferEncoding: continue
            default: headers.append((field.name.rawName, field.value))
            }
        }
        let basePath = baseURL.path == "/" ? "" : baseURL.path
        let engineRequest = EngineRequest(
            method, basePath + (request.path ?? "/"), body: try await Self.requestBody(body, contentType: contentType),
            api: .unversioned, headers: headers)
        let answer: EngineStream
        do {
            answer = try await client.exchange(engineRequest)
        } catch let error as EngineError {
            throw SocketTransportError("\(request.method) \(request.path ?? "/") to \(client.transport.endpoint): \(error.message)")
        }
        var response = HTTPResponse(status: .init(code: answer.status))
        for header in answer.headers {
            guard let name = HTTPField.Name(header.name) else { continue }
            response.headerFields.append(HTTPField(name: name, value: header.value))
        }
        let length: HTTPBody.Length = answer.headers.first(name: "Content-Length").flatMap { Int64($0) }.map { .known($0) } ?? .unknown
        let bytes = AsyncThrowingStream.decoding(answer.body, with: ByteBufferSlices())
        return (response, HTTPBody(bytes, length: length, iterationBehavior: .single))
    }

    /// Small bodies (all JSON ones) go in one piece with a `Content-Length`; a body of unknown or
    /// large size (a tar upload) is sent chunked as it is pulled.
    private static func requestBody(_ body: HTTPBody?, contentType: String) async throws -> EngineRequest.Body {
        guard let body else { return .none }
        if case .known(let length) = body.length, length <= 1 << 20 {
            return .bytes(contentType: contentType, try await [UInt8](collecting: body, upTo: Int(length)))
        }
        return .stream(contentType: contentType, AsyncThrowingStream.decoding(body, with: ByteChunks()))
    }
}

public struct SocketTransportError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

private struct ByteBufferSlices: PullDecoder {
    func feed(_ buffer: ByteBuffer) -> [ArraySlice<UInt8>] { [ArraySlice(buffer.readableBytesView)] }
}

private struct ByteChunks: PullDecoder {
    func feed(_ chunk: ArraySlice<UInt8>) -> [[UInt8]] { chunk.isEmpty ? [] : [Array(chunk)] }
}
