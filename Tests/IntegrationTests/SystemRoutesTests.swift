import Foundation
import OcimanTestSupport
import Testing

@Suite("System routes against real engines")
struct SystemRoutesTests {
    @Test("health, ready, backend and the contract", arguments: TestEngines.available)
    func systemRoutes(engine: String) async throws {
        try await withOcimand(engine: engine) { _, client in
            let health = try await client.get("/health")
            #expect(health.status == 200)
            #expect(try health.object()["status"] as? String == "ok")

            let ready = try await client.get("/ready")
            #expect(ready.status == 200)
            #expect(try ready.object()["backend"] as? String == engine)

            let backend = try await client.get("/backend")
            #expect(backend.status == 200)
            let info = try backend.object()
            #expect(info["kind"] as? String == engine)
            #expect(info["rootless"] as? Bool == false)
            #expect(info["endpoint"] as? String == "unix://\(TestEngines.socket(for: engine))")
            #expect((info["version"] as? String)?.isEmpty == false)
            #expect((info["api_version"] as? String)?.hasPrefix("1.") == true)
            let subnets = info["bridge_subnets"] as? [String] ?? []
            #expect(!subnets.isEmpty && subnets.allSatisfy { $0.contains("/") })
            #expect((info["host_gateway"] as? String)?.split(separator: ".").count == 4)

            let contract = try await client.get("/openapi.yaml")
            #expect(contract.status == 200)
            let onDisk = try String(contentsOfFile: Self.repositoryRoot + "/openapi.yaml", encoding: .utf8)
            #expect(contract.text == onDisk)
        }
    }

    @Test("unknown routes and methods answer problem+json", arguments: TestEngines.available)
    func unknownRoutes(engine: String) async throws {
        try await withOcimand(engine: engine) { _, client in
            let missing = try await client.get("/no/such/route")
            #expect(missing.status == 404)
            #expect(missing.header("Content-Type") == "application/problem+json")
            #expect(try missing.object()["status"] as? Int == 404)

            let wrongMethod = try await client.request("DELETE", "/health")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.header("Allow") == "GET")
        }
    }

    @Test("OCIMAN_BACKEND with a typo exits non-zero naming the variable")
    func invalidBackend() throws {
        for value in ["dockr", ""] {
            let (status, output) = try Self.runOcimand(environment: ["OCIMAN_BACKEND": value])
            #expect(status != 0)
            #expect(output.contains("invalid OCIMAN_BACKEND \"\(value)\": expected \"docker\" or \"podman\""))
        }
    }

    @Test("an explicitly chosen engine that is not reachable fails at startup")
    func unreachableEngine() throws {
        let (status, output) = try Self.runOcimand(environment: [
            "OCIMAN_BACKEND": "docker", "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        ])
        #expect(status != 0)
        #expect(output.contains("OCIMAN_BACKEND=docker"))
        #expect(output.contains("/nonexistent/docker.sock"))
    }

    @Test("SIGTERM stops ocimand with exit status 0", arguments: TestEngines.available)
    func gracefulStop(engine: String) async throws {
        let server = try await OcimandProcess.start(engine: engine)
        let client = OcimandClient(baseURL: server.baseURL)
        #expect(try await client.get("/health").status == 200)
        #expect(server.stop() == 0)
    }

    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func runOcimand(environment: [String: String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try OcimandProcess.locateBinary())
        process.arguments = ["--listen", "127.0.0.1:0"]
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment { variables[key] = value }
        process.environment = variables
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
