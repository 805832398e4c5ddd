import EngineDriver
import Foundation

/// Direct engine access for tests: to check what ocimand did, and to remove everything a test
/// created even when the test failed. Every resource a test makes carries `label`.
public struct EngineFixture: Sendable {
    public let engine: String
    public let client: EngineClient
    /// `ociman.test=<run id>` — unique per fixture so parallel suites never remove each other's.
    public let labelKey = "ociman.test"
    public let runID: String

    public init(engine: String) {
        self.engine = engine
        self.client = EngineClient(socketPath: TestEngines.socket(for: engine), defaultTimeout: .seconds(60))
        self.runID = UUID().uuidString.lowercased().prefix(12).description
    }

    public var labels: [String: String] { [labelKey: runID] }

    /// This run's containers, stopped ones too, that also carry every label filter in `alsoLabelled`.
    public func labelledContainers(alsoLabelled: [String] = []) async throws -> [String] {
        struct Summary: Decodable { var Id: String }
        let labels = ["\(labelKey)=\(runID)"] + alsoLabelled
        let filters = String(decoding: try JSONEncoder().encode(["label": labels]), as: UTF8.self)
        let response = try await client.send(
            EngineRequest(.GET, "/containers/json", query: [("all", "true"), ("filters", filters)]))
        return try JSONDecoder().decode([Summary].self, from: Data(response.body)).map(\.Id)
    }

    /// Force-removes every labelled container and every image in `images`; never throws.
    public func cleanUp(images: [String] = []) async {
        for id in (try? await labelledContainers()) ?? [] {
            _ = try? await client.send(
                EngineRequest(.DELETE, "/containers/\(id)", query: [("force", "true"), ("v", "true")]))
        }
        for image in images {
            _ = try? await client.send(EngineRequest(.DELETE, "/images/\(EngineRequest.escape(image))", query: [("force", "true")]))
        }
    }

    /// Runs `body`, then cleans up whatever happened.
    public func withCleanup<T>(images: [String] = [], _ body: () async throws -> T) async throws -> T {
        do {
            let result = try await body()
            await cleanUp(images: images)
            return result
        } catch {
            await cleanUp(images: images)
            throw error
        }
    }
}

extension EngineFixture {
    public struct UnexpectedAnswer: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates and starts a busybox container with this fixture's labels, straight on the engine.
    public func startBusybox(_ command: [String]) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: [
            "Image": TestEngines.baseImage, "Cmd": command, "Labels": labels,
        ])
        let created = try await client.send(
            EngineRequest(.POST, "/containers/create", body: .bytes(contentType: "application/json", [UInt8](body))))
        let object = try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any]
        guard let containerID = object?["Id"] as? String else {
            throw UnexpectedAnswer(description: "create answered without an Id: \(String(decoding: created.body, as: UTF8.self))")
        }
        _ = try await client.send(EngineRequest(.POST, "/containers/\(containerID)/start"))
        return containerID
    }

    public func waitForExit(_ id: String) async throws {
        _ = try await client.send(EngineRequest(.POST, "/containers/\(id)/wait", timeout: .seconds(60)))
    }

    public func containerName(_ id: String) async throws -> String {
        let inspect = try await client.send(EngineRequest(.GET, "/containers/\(id)/json"))
        let object = try JSONSerialization.jsonObject(with: Data(inspect.body)) as? [String: Any]
        guard let name = object?["Name"] as? String else {
            throw UnexpectedAnswer(description: "inspect answered without a Name")
        }
        return name.hasPrefix("/") ? String(name.dropFirst()) : name
    }

    /// What a command prints on stdout, run straight on the engine (no ocimand in between).
    public func directExecOutput(_ id: String, _ command: [String]) async throws -> [UInt8] {
        let config = ExecCreateConfig(cmd: command, attachStdin: false)
        let execID = try await client.createExec(container: id, config)
        var stdout: [UInt8] = []
        for try await frame in try await client.attachExec(execID, stdin: nil).frames where frame.stream == .stdout {
            stdout += frame.payload
        }
        return stdout
    }
}
