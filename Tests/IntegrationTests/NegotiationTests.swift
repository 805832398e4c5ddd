import Foundation
import OcimanTestSupport
import Testing

/// Accept is decided before an operation runs: a 406 leaves nothing behind, never a 500.
/// Raw connections, so the Accept header is exactly what each case says (or absent).
@Suite("Content negotiation against real engines")
struct NegotiationIntegrationTests {
    static let image = TestEngines.baseImage

    @Test("406 before a container is made or a command runs; JSON unless ndjson is preferred", arguments: TestEngines.available)
    func sideEffectsAndChoices(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, _ in
                let connection = try await HTTPTestConnection.connect(host: server.host, port: server.port)
                defer { Task { await connection.close() } }
                func post(_ path: String, accept: String?, _ json: [String: Any]) async throws -> HTTPTestConnection.Response {
                    var headers = [("Content-Type", "application/json")]
                    if let accept { headers.append(("Accept", accept)) }
                    return try await connection.request(
                        "POST", path, headers: headers, body: [UInt8](try JSONSerialization.data(withJSONObject: json)))
                }
                let run: [String: Any] = ["image": Self.image, "command": ["sleep", "120"], "labels": fixture.labels, "ttl_seconds": 300]

                let refused = try await post("/containers", accept: "text/html", run)
                #expect(refused.status == 406, "\(refused.text)")
                #expect(refused.header("Content-Type") == "application/problem+json")
                #expect(try await fixture.labelledContainers().isEmpty)

                let created = try await post("/containers", accept: "application/json", run)
                #expect(created.status == 201, "\(created.text)")
                let id = try #require((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String)
                let exec = "/containers/\(id)/exec"

                let notRun = try await post(exec, accept: "text/html", ["command": ["touch", "/ran"]])
                #expect(notRun.status == 406, "\(notRun.text)")
                let check = try await post(exec, accept: nil, ["command": ["test", "-e", "/ran"]])
                #expect(check.status == 200 && check.header("Content-Type")?.hasPrefix("application/json") == true, "\(check.text)")
                #expect(check.text.contains(#""exit_code":1"#), "the refused exec ran: \(check.text)")

                for accept in ["*/*", "application/json, application/x-ndjson", "application/x-ndjson;q=0.5, application/json;q=0.5"] {
                    let answer = try await post(exec, accept: accept, ["command": ["true"]])
                    #expect(answer.header("Content-Type")?.hasPrefix("application/json") == true, "\(accept)")
                    #expect(answer.text.contains(#""exit_code":0"#), "\(accept): \(answer.text)")
                }
                for accept in ["application/x-ndjson", "application/x-ndjson, application/json;q=0.9"] {
                    let answer = try await post(exec, accept: accept, ["command": ["true"]])
                    #expect(answer.header("Content-Type") == "application/x-ndjson", "\(accept)")
                    #expect(answer.text == #"{"exit_code":0,"type":"exit"}"# + "\n", "\(accept)")
                }
                #expect(try await fixture.labelledContainers() == [id])
            }
        }
    }

    @Test("/metrics and /openapi.yaml answer their own type to any Accept that admits it, else 406", arguments: TestEngines.available)
    func ownMediaTypes(engine: String) async throws {
        try await withOcimand(engine: engine) { server, _ in
            let connection = try await HTTPTestConnection.connect(host: server.host, port: server.port)
            defer { Task { await connection.close() } }
            func get(_ path: String, accept: String?) async throws -> HTTPTestConnection.Response {
                try await connection.request("GET", path, headers: accept.map { [("Accept", $0)] } ?? [])
            }
            for accept in [nil, "*/*", "text/*", "text/plain", "application/json, text/plain;q=0.1"] {
                let metrics = try await get("/metrics", accept: accept)
                #expect(metrics.status == 200, "\(accept ?? "none")")
                #expect(metrics.header("Content-Type")?.hasPrefix("text/plain") == true)
            }
            for accept in [nil, "*/*", "application/*", "application/yaml"] {
                let contract = try await get("/openapi.yaml", accept: accept)
                #expect(contract.status == 200 && contract.header("Content-Type") == "application/yaml", "\(accept ?? "none")")
                #expect(contract.text.hasPrefix("openapi: 3.1"))
            }
            for (path, accept) in [
                ("/metrics", "application/problem+json"), ("/metrics", "application/json"),
                ("/openapi.yaml", "application/json"), ("/openapi.yaml", "text/html"), ("/health", "text/html"),
            ] {
                let answer = try await get(path, accept: accept)
                #expect(answer.status == 406, "\(path) with \(accept): \(answer.status) \(answer.text)")
                #expect(answer.header("Content-Type") == "application/problem+json")
            }
        }
    }
}
