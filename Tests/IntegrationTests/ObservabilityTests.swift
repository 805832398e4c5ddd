import Foundation
import OcimanTestSupport
import Testing

@Suite("Request ids, JSON logs, /metrics and the healthcheck command against real engines")
struct ObservabilityTests {
    @Test("X-Request-Id is echoed when valid and assigned otherwise", arguments: TestEngines.available)
    func requestIDs(engine: String) async throws {
        try await withOcimand(engine: engine) { _, client in
            let echoed = try await client.request("GET", "/health", headers: ["X-Request-Id": "itest.req-1"])
            #expect(echoed.status == 200)
            #expect(echoed.header("X-Request-Id") == "itest.req-1")

            let tooLong = String(repeating: "a", count: 129)
            for offered in [tooLong, "has space", "semi;colon"] {
                let replaced = try await client.request("GET", "/health", headers: ["X-Request-Id": offered])
                let assigned = try #require(replaced.header("X-Request-Id"))
                #expect(assigned != offered)
                #expect(assigned.wholeMatch(of: /[0-9a-f]{32}/) != nil)
            }

            // Problem documents carry it too.
            let problem = try await client.request("GET", "/images/no%2Fsuch:image", headers: ["X-Request-Id": "itest-404"])
            #expect(problem.status >= 400)
            #expect(problem.header("X-Request-Id") == "itest-404")
        }
    }

    @Test("/metrics counts requests per route and status and times engine calls", arguments: TestEngines.available)
    func metrics(engine: String) async throws {
        try await withOcimand(engine: engine) { _, client in
            for _ in 0..<3 { #expect(try await client.get("/health").status == 200) }
            #expect(try await client.get("/backend").status == 200)
            #expect(try await client.get("/ready").status == 200)

            let scrape = try await client.get("/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            let text = scrape.text
            #expect(Self.sample(text, #"ociman_http_requests_total{method="GET",route="/health",status="200"}"#) == 3)
            #expect(Self.sample(text, #"ociman_http_requests_total{method="GET",route="/backend",status="200"}"#) == 1)
            #expect(Self.sample(text, #"ociman_http_requests_total{method="GET",route="/ready",status="200"}"#) == 1)
            #expect(
                Self.sample(text, #"ociman_http_request_duration_seconds_count{method="GET",route="/health",status="200"}"#)
                    == 3)
            #expect(text.contains("# TYPE ociman_http_request_duration_seconds histogram"))
            // Startup pings the engine; /ready does again.
            let pings = Self.sample(text, #"ociman_engine_request_duration_seconds_count{method="GET",path="/_ping"}"#)
            #expect((pings ?? 0) >= 2)
            #expect(Self.sample(text, "ociman_http_connections_open").map { $0 >= 1 } == true)
            #expect(Self.sample(text, "ociman_reaped_containers_total") != nil)
            // The scrape itself is in flight while it renders.
            #expect(Self.sample(text, #"ociman_http_requests_in_flight{route="/metrics"}"#) == 1)
            #expect(Self.sample(text, #"ociman_http_requests_in_flight{route="/backend"}"#) == 0)

            let again = try await client.get("/metrics")
            #expect(Self.sample(again.text, #"ociman_http_requests_total{method="GET",route="/metrics",status="200"}"#) == 1)
        }
    }

    @Test("--log-format json writes one JSON object per line with the request fields", arguments: TestEngines.available)
    func jsonLogs(engine: String) async throws {
        try await withOcimand(engine: engine, arguments: ["--log-format", "json"]) { server, client in
            #expect(try await client.request("GET", "/backend", headers: ["X-Request-Id": "itest-json-1"]).status == 200)
            // The line is written after the response is handed to the transport; give it a moment to land.
            var line: [String: Any]?
            for _ in 0..<50 where line == nil {
                line = try Self.jsonLines(server.log).first { $0["request_id"] as? String == "itest-json-1" }
                if line == nil { try await Task.sleep(for: .milliseconds(20)) }
            }
            let request = try #require(line)
            #expect(request["message"] as? String == "request")
            #expect(request["level"] as? String == "info")
            #expect(request["method"] as? String == "GET")
            #expect(request["route"] as? String == "/backend")
            #expect(request["status"] as? Int == 200)
            #expect(request["duration_ms"] is Double || request["duration_ms"] is Int)
            #expect((request["time"] as? String)?.hasSuffix("Z") == true)
        }
    }

    @Test("ocimand healthcheck exits 0 against a live server and 1 when nothing listens")
    func healthcheckCommand() async throws {
        let engine = try #require(TestEngines.available.first)
        try await withOcimand(engine: engine) { server, _ in
            let live = try Self.run(["healthcheck", "--listen", "127.0.0.1:\(server.port)"])
            #expect(live.status == 0)
            #expect(live.output.contains("healthy"))
        }
        // Bind and close a socket to find a port nothing listens on.
        let closedPort = try Self.unusedPort()
        let dead = try Self.run(["healthcheck", "--listen", "127.0.0.1:\(closedPort)", "--timeout", "2"])
        #expect(dead.status == 1)
        #expect(dead.output.contains("unhealthy"))
    }

    @Test("ocimand healthcheck takes the server's token from --token-file, as the server does")
    func healthcheckWithTokenFile() async throws {
        let engine = try #require(TestEngines.available.first)
        let tokenFile = NSTemporaryDirectory() + "ociman-healthcheck-\(UUID().uuidString)"
        try "probe-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        try await withOcimand(engine: engine, arguments: ["--token-file", tokenFile]) { server, _ in
            // /ready needs the token (/health does not).
            let listen = "127.0.0.1:\(server.port)"
            let withToken = try Self.run(["healthcheck", "--listen", listen, "--token-file", tokenFile, "--path", "/ready"])
            #expect(withToken.status == 0, "\(withToken.output)")
            let withoutToken = try Self.run(["healthcheck", "--listen", listen, "--path", "/ready"])
            #expect(withoutToken.status == 1 && withoutToken.output.contains("401"), "\(withoutToken.output)")
        }
    }

    // MARK: - Helpers

    /// The value of the sample whose name and labels are exactly `series`.
    static func sample(_ exposition: String, _ series: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    /// Every line must be a JSON object: text mixed in would break log collectors.
    static func jsonLines(_ log: String) throws -> [[String: Any]] {
        var lines = log.split(separator: "\n")
        if !log.hasSuffix("\n") { lines = lines.dropLast() }  // still being written
        return try lines.map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestSupportError("not a JSON object: \(line)")
            }
            return object
        }
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try OcimandProcess.locateBinary())
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for name in ["OCIMAN_LISTEN", "OCIMAN_TOKEN", "OCIMAN_TOKEN_FILE"] { environment.removeValue(forKey: name) }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    static func unusedPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw TestSupportError("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
