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

    /// IDs of all containers (running or not) with this fixture's label.
    public func labelledContainers() async throws -> [String] {
        struct Summary: Decodable { var Id: String }
        let filters = "{\"label\":[\"\(labelKey)=\(runID)\"]}"
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
