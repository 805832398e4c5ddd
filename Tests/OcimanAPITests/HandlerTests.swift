import Foundation
import HTTPTypes
import InMemoryEngine
import Logging
import OpenAPIRuntime
import Testing

@testable import OcimanAPI
@testable import OcimanCore

/// The handlers driven in-process: generated input in, generated output (or the problem
/// document the middleware would answer) out, over an in-memory engine.
@Suite("API handlers against an in-memory engine")
struct HandlerTests {
    static let image = "localhost/busybox:test"

    private func handler(_ engine: InMemoryEngine = InMemoryEngine()) -> APIHandler {
        APIHandler(runtime: Runtime(engine: engine, logger: Logger(label: "test")), logger: Logger(label: "test"))
    }

    /// The status and JSON the problem middleware answers for what `body` throws.
    private func problem(_ body: () async throws -> Void) async throws -> (status: Int, json: [String: Any]) {
        do {
            try await body()
        } catch let error as OcimanError {
            let (head, body) = ProblemDocument.response(for: error)
            let bytes = try await [UInt8](collecting: body, upTo: 1 << 20)
            let json = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] ?? [:]
            return (head.status.code, json)
        }
        Issue.record("no error thrown")
        return (0, [:])
    }

    private func ndjson(_ body: HTTPBody) async throws -> [[String: Any]] {
        let bytes = try await [UInt8](collecting: body, upTo: 1 << 20)
        return try String(decoding: bytes, as: UTF8.self).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] ?? [:]
        }
    }

    private func run(_ handler: APIHandler, name: String) async throws {
        _ = try await handler.runContainer(.init(body: .json(.init(image: Self.image, name: name))))
    }

    @Test func readyNamesTheBackendAndAnEngineDownIs503() async throws {
        let engine = InMemoryEngine(kind: .podman)
        let api = handler(engine)
        #expect(try await api.getReady(.init()).ok.body.json == .init(status: .ok, backend: .podman))
        engine.reachable = false
        let (status, json) = try await problem { _ = try await api.getReady(.init()) }
        #expect(status == 503)
        #expect((json["detail"] as? String)?.contains("podman engine at memory://engine") == true)
    }

    @Test func backendReportsWhatTheEngineSays() async throws {
        let info = try await handler().getBackend(.init()).ok.body.json
        #expect(info.kind == .docker && info.apiVersion == "1.41" && info.hostGateway == "10.0.0.1")
        #expect(info.bridgeSubnets == ["10.0.0.0/24"] && info.endpoint == "memory://engine")
    }

    @Test func statusesForWhatTheEngineRefuses() async throws {
        let api = handler()
        try await run(api, name: "web")
        let missing = try await problem { _ = try await api.inspectContainer(.init(path: .init(id: "ghost"))) }
        #expect(missing.status == 404 && missing.json["detail"] as? String == "no such container: ghost")
        let taken = try await problem { try await run(api, name: "web") }
        #expect(taken.status == 409)
        let running = try await problem { _ = try await api.removeContainer(.init(path: .init(id: "web"), query: .init())) }
        #expect(running.status == 409)
        let late = try await problem {
            _ = try await api.waitContainer(.init(path: .init(id: "web"), query: .init(condition: .notRunning, timeout: 1)))
        }
        #expect(late.status == 504 && late.json["container_id"] as? String != nil)
        let bad = try await problem {
            _ = try await api.runContainer(.init(body: .json(.init(image: Self.image, name: "-x"))))
        }
        #expect(bad.status == 400 && bad.json["field"] as? String == "name")
    }

    @Test func aStreamedExecIsNdjsonEndingInOneExit() async throws {
        let api = handler()
        try await run(api, name: "box")
        let output = try await api.execInContainer(
            .init(
                path: .init(id: "box"), headers: .init(accept: [.init(contentType: .applicationXNdjson)]),
                body: .json(.init(command: ["echo", "hi"]))))
        let lines = try await ndjson(try output.ok.body.applicationXNdjson)
        #expect(lines.map { $0["type"] as? String } == ["stdout", "exit"])
        #expect(lines.first?["data"] as? String == "hi\n")
        #expect(lines.last?["exit_code"] as? Int == 0)
        let collected = try await api.execInContainer(
            .init(
                path: .init(id: "box"), headers: .init(accept: [.init(contentType: .json)]),
                body: .json(.init(command: ["sh", "-c", "exit 3"]))))
        #expect(try collected.ok.body.json.exitCode == 3)
    }

    @Test func logsEndWithEnd() async throws {
        let engine = InMemoryEngine()
        engine.onStart(of: Self.image, prints: [LogLine(stream: .stderr, text: "warn")])
        let api = handler(engine)
        try await run(api, name: "logger")
        let output = try await api.getContainerLogs(.init(path: .init(id: "logger"), query: .init()))
        let lines = try await ndjson(try output.ok.body.applicationXNdjson)
        #expect(lines.map { $0["type"] as? String } == ["stderr", "end"])
        #expect(lines.first?["line"] as? String == "warn")
    }

    @Test func aBuildStreamEndsInOneResultOrOneError() async throws {
        let engine = InMemoryEngine()
        let api = handler(engine)
        let request = Operations.BuildImage.Input(
            body: .json(.init(context: .init(instructions: "FROM localhost/busybox:test\n"), tag: "localhost/built:1")))
        let built = try await ndjson(try await api.buildImage(request).ok.body.applicationXNdjson)
        #expect(built.map { $0["type"] as? String } == ["log", "result"])
        #expect(built.last?["reference"] as? String == "localhost/built:1")
        engine.scriptBuilds([.line("Step 1/1"), .failed("no space left")])
        let failed = try await ndjson(try await api.buildImage(request).ok.body.applicationXNdjson)
        #expect(failed.map { $0["type"] as? String } == ["log", "error"])
        #expect(failed.last?["message"] as? String == "no space left")
    }

    @Test func everyCoreErrorHasOneStatus() {
        let cases: [(OcimanError, Int)] = [
            (.invalid(field: "x", message: "m"), 400), (.forbidden("m"), 403), (.notFound("m"), 404), (.conflict("m"), 409),
            (.unavailable("m"), 503), (.timedOut("m"), 504), (.exitedBeforeReady("m", containerID: "c", logs: []), 409),
            (.engineFailure("m"), 502),
        ]
        for (error, status) in cases {
            #expect(ProblemDocument.response(for: error).0.status.code == status)
        }
    }
}
