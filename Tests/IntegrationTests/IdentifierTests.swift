import Foundation
import OcimanTestSupport
import Testing

/// Issue 11: a malformed container id, image reference or session id in a path is a 400 problem
/// naming the parameter and never reaches the engine (an EngineProxy in front of it records what
/// does).
@Suite("Identifiers in paths")
struct IdentifierTests {
    @Test("malformed ids and references in paths are 400 problems and never reach the engine", arguments: TestEngines.available)
    func malformedIdentifiers(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let proxy = try EngineProxy.started(for: engine)
        defer { proxy.stop() }
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, environment: proxy.environment(for: engine)) { server, client in
                _ = try await client.get("/containers?label=ociman.test=none")
                let segments = ["%zz", "%", "a%2", "%2e", ".", "..", "%2E%2E", "%00", "a%0Ab", "%ff"]
                let templates = [
                    ("DELETE", "/containers/{}?force=true", "id"), ("GET", "/containers/{}", "id"),
                    ("POST", "/containers/{}/stop?timeout=1", "id"), ("POST", "/containers/{}/kill", "id"),
                    ("POST", "/containers/{}/wait?timeout=1", "id"), ("GET", "/containers/{}/logs", "id"),
                    ("GET", "/images/{}", "reference"), ("DELETE", "/images/{}?force=true", "reference"),
                    ("HEAD", "/images/{}", "reference"), ("DELETE", "/sessions/{}", "id"),
                    ("GET", "/exec-sessions/{}", "id"), ("GET", "/pools/{}", "name"), ("DELETE", "/pools/{}", "name"),
                    ("DELETE", "/pools/web/members/{}", "id"),
                ]
                let connection = try await HTTPTestConnection.connect(port: server.port)
                for segment in segments {
                    for (method, template, parameter) in templates {
                        let target = template.replacingOccurrences(of: "{}", with: segment)
                        let response = try await connection.request(method, target, timeout: .seconds(10))
                        let what = "\(engine) \(method) \(target): \(response.status) \(response.text)"
                        #expect(response.status == 400, "\(what)")
                        #expect(response.header("Content-Type") == "application/problem+json", "\(what)")
                        if method != "HEAD" {
                            let problem = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                            #expect(problem?["field"] as? String == parameter, "\(what)")
                        }
                    }
                }
                await connection.close()
                // Not one of them was forwarded: the engine only ever saw the list above.
                let forwarded = proxy.seenRequests.filter { line in
                    ["/containers/", "/images/", "/exec/"].contains { line.contains($0) }
                        && !line.contains("/containers/json") && !line.contains("/images/json")
                }
                #expect(forwarded.isEmpty, "\(forwarded)")
                #expect(processExists(server.processIdentifier))
                // Well-formed escapes still work: a name percent-encoded is the name.
                let missing = try await client.get("/containers/no%2Dsuch%2Dcontainer")
                #expect(missing.status == 404, "\(missing.text)")
            }
        }
        #expect(try await fixture.labelledContainers().isEmpty)
    }
}
