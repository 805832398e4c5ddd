import EngineDriver
import Foundation
import OpenAPIRuntime
import PulledStreams
import RFC3339

/// The streaming operations as typed event streams. Each waits for the answer to start; a
/// refusal (a problem document) throws `OcimanClientError.unexpectedResponse`. Events are
/// decoded one line at a time as the caller iterates, and the stream ends after the terminal
/// event (`exit`, `end`, `result` or `error`, which arrives as an event, not a thrown error).
extension Client {
    public typealias EventStream<Event> = AsyncThrowingStream<Event, any Error>

    public func logEvents(
        container id: String, follow: Bool = false, tail: Int? = nil, since: Int? = nil, timestamps: Bool = false
    ) async throws -> EventStream<Components.Schemas.LogEvent> {
        let output = try await getContainerLogs(
            path: .init(id: id), query: .init(follow: follow, tail: tail, since: since, timestamps: timestamps))
        guard case .ok(let ok) = output else { throw Self.failure("getContainerLogs", output) }
        return Self.events(try ok.body.applicationXNdjson)
    }

    /// A command's output as it is produced (the exec operation with `Accept: application/x-ndjson`).
    public func execEvents(
        container id: String, _ request: Components.Schemas.ExecRequest
    ) async throws -> EventStream<Components.Schemas.ExecEvent> {
        let output = try await execInContainer(
            path: .init(id: id), headers: .init(accept: [.init(contentType: .applicationXNdjson)]), body: .json(request))
        guard case .ok(let ok) = output else { throw Self.failure("execInContainer", output) }
        return Self.events(try ok.body.applicationXNdjson)
    }

    public func buildEvents(_ request: Components.Schemas.BuildRequest) async throws -> EventStream<Components.Schemas.BuildEvent> {
        let output = try await buildImage(body: .json(request))
        guard case .ok(let ok) = output else { throw Self.failure("buildImage", output) }
        return Self.events(try ok.body.applicationXNdjson)
    }

    /// A build from a tar context; `tar` is uploaded as it is pulled (give its length when known).
    public func buildEvents(
        tar: HTTPBody, _ query: Operations.BuildImageFromTar.Input.Query = .init()
    ) async throws -> EventStream<Components.Schemas.BuildEvent> {
        let output = try await buildImageFromTar(query: query, body: .applicationXTar(tar))
        guard case .ok(let ok) = output else { throw Self.failure("buildImageFromTar", output) }
        return Self.events(try ok.body.applicationXNdjson)
    }

    public func pullEvents(reference: String) async throws -> EventStream<Components.Schemas.ImageTransferEvent> {
        let output = try await pullImage(body: .json(.init(reference: reference)))
        guard case .ok(let ok) = output else { throw Self.failure("pullImage", output) }
        return Self.events(try ok.body.applicationXNdjson)
    }

    public func pushEvents(reference: String) async throws -> EventStream<Components.Schemas.ImageTransferEvent> {
        let output = try await pushImage(body: .json(.init(reference: reference)))
        guard case .ok(let ok) = output else { throw Self.failure("pushImage", output) }
        return Self.events(try ok.body.applicationXNdjson)
    }

    /// An ndjson body as events of the contract, decoded as pulled.
    public static func events<Event: Decodable & Sendable>(_ body: HTTPBody, as type: Event.Type = Event.self) -> EventStream<Event> {
        .decoding(body, with: NDJSONEvents<Event>())
    }

    static func failure(_ operation: String, _ output: some Any) -> OcimanClientError {
        .unexpectedResponse(operation: operation, output: "\(output)")
    }
}

/// ndjson lines to events. Lines are found by the driver's JSON splitter, which holds at most one
/// line, bounded (a stream is never buffered whole).
struct NDJSONEvents<Event: Decodable>: PullDecoder {
    static var maxLineSize: Int { 16 << 20 }
    private var splitter = JSONStreamSplitter(maxValueSize: Self.maxLineSize)
    private let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .rfc3339
        return decoder
    }()

    mutating func feed(_ chunk: ArraySlice<UInt8>) throws -> [Event] {
        try splitter.feed(chunk).map(decode)
    }

    mutating func finish() throws -> [Event] {
        try splitter.finish().map(decode)
    }

    private func decode(_ line: [UInt8]) throws -> Event {
        do {
            return try decoder.decode(Event.self, from: Data(line))
        } catch {
            throw OcimanClientError.malformedEvent("\(error): \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
    }
}
