import EngineDriver
import Foundation
import OcimanTestSupport
import Testing

/// Issue 5, security: listen addresses, the bearer token, browser defences and input caps,
/// each tried against the real ocimand binary the way a client (or an attacker's page) would.
@Suite("Security defaults", .timeLimit(.minutes(5)))
struct SecurityTests {
    static let image = TestEngines.baseImage

    static func connect(_ server: OcimandProcess) async throws -> HTTPTestConnection {
        try await HTTPTestConnection.connect(port: server.port)
    }

    static func randomToken() -> String { (0..<4).map { _ in UUID().uuidString.lowercased() }.joined(separator: "-") }

    // MARK: - Token

    @Test("a token locks every route but /health", arguments: TestEngines.available)
    func tokenLocksTheService(engine: String) async throws {
        let token = Self.randomToken()
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, environment: ["OCIMAN_TOKEN": token]) { _, client in
                #expect(try await client.get("/health").status == 200)

                let anonymous = try await client.get("/ready")
                #expect(anonymous.status == 401)
                #expect(anonymous.header("WWW-Authenticate")?.hasPrefix("Bearer") == true)
                #expect(anonymous.header("Content-Type") == "application/problem+json")
                #expect(try anonymous.object()["status"] as? Int == 401)

                let wrong = try await client.request("GET", "/ready", headers: ["Authorization": "Bearer \(token.dropLast())x"])
                #expect(wrong.status == 401)
                #expect(try await client.request("GET", "/openapi.yaml").status == 401)
                #expect(try await client.request("GET", "/ready", headers: ["Authorization": "Basic \(token)"]).status == 401)
                #expect(try await client.request("GET", "/ready", headers: ["Authorization": "Bearer \(token)"]).status == 200)
                #expect(try await client.request("GET", "/ready", headers: ["Authorization": "bearer \(token)"]).status == 200)

                // Refused before any handler: nothing reaches the engine.
                let run = try await client.request(
                    "POST", "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["sleep", "30"]])
                #expect(run.status == 401)
                #expect(try await fixture.labelledContainers().isEmpty)
                let authorized = try await client.request(
                    "GET", "/containers?label=\(fixture.labelKey)=\(fixture.runID)", headers: ["Authorization": "Bearer \(token)"])
                #expect(authorized.status == 200)
                #expect(try authorized.array().isEmpty)
            }
        }
    }

    @Test("--token-file: trimmed content is the token; empty, unreadable or doubly set is a startup error")
    func tokenFile() async throws {
        let engine = try #require(TestEngines.available.first)
        let directory = try temporaryDirectory("ociman-token")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let token = Self.randomToken()
        let file = directory + "/token"
        try "\(token)\n".write(toFile: file, atomically: true, encoding: .utf8)
        // --token-file, and OCIMAN_TOKEN_FILE which is the same option.
        for (arguments, environment) in [(["--token-file", file], [:]), ([], ["OCIMAN_TOKEN_FILE": file])] {
            try await withOcimand(engine: engine, arguments: arguments, environment: environment) { _, client in
                let anonymous = try await client.get("/ready")
                let authorized = try await client.request("GET", "/ready", headers: ["Authorization": "Bearer \(token)"])
                #expect(anonymous.status == 401)
                #expect(authorized.status == 200)
            }
        }

        let empty = directory + "/empty"
        try " \n".write(toFile: empty, atomically: true, encoding: .utf8)
        let (emptyStatus, emptyOutput) = try await LaunchedProcess.runOcimand(engine: engine, ["--token-file", empty])
        #expect(emptyStatus != 0)
        #expect(emptyOutput.contains("the token file \(empty) is empty"), "\(emptyOutput)")

        let (missingStatus, missingOutput) = try await LaunchedProcess.runOcimand(engine: engine, ["--token-file", directory + "/nope"])
        #expect(missingStatus != 0)
        #expect(missingOutput.contains("cannot read the token file"), "\(missingOutput)")

        let (bothStatus, bothOutput) = try await LaunchedProcess.runOcimand(
            engine: engine, ["--token-file", file], environment: ["OCIMAN_TOKEN": token])
        #expect(bothStatus != 0)
        #expect(bothOutput.contains("not both"), "\(bothOutput)")

        let (blankStatus, blankOutput) = try await LaunchedProcess.runOcimand(engine: engine, [], environment: ["OCIMAN_TOKEN": ""])
        #expect(blankStatus != 0)
        #expect(blankOutput.contains("OCIMAN_TOKEN is set but empty"), "\(blankOutput)")
    }

    // MARK: - Listening

    @Test("listening beyond loopback needs a token")
    func nonLoopbackNeedsAToken() async throws {
        let engine = try #require(TestEngines.available.first)
        for address in ["0.0.0.0:0", "[::]:0"] {
            let (status, output) = try await LaunchedProcess.runOcimand(engine: engine, ["--listen", address])
            #expect(status != 0)
            #expect(output.contains("refusing to listen on"), "\(output)")
            #expect(output.contains("without a token"))
        }
        let token = Self.randomToken()
        let server = try LaunchedProcess.ocimand(engine: engine, ["--listen", "0.0.0.0:0"], environment: ["OCIMAN_TOKEN": token])
        let port = try await server.listeningPort()
        let client = OcimandClient(baseURL: "http://127.0.0.1:\(port)")
        #expect(try await client.request("GET", "/ready", headers: ["Authorization": "Bearer \(token)"]).status == 200)
        #expect(try await client.get("/ready").status == 401)
        #expect(await server.terminate() == 0)
    }

    @Test("unix: socket is owner-only unless --socket-mode widens it; any Host is fine there")
    func unixSocket() async throws {
        let engine = try #require(TestEngines.available.first)
        let directory = try temporaryDirectory("ociman-unix")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (arguments, mode) in [([String](), mode_t(0o600)), (["--socket-mode", "660"], mode_t(0o660))] {
            let path = directory + "/ocimand.sock"
            let server = try LaunchedProcess.ocimand(engine: engine, ["--listen", "unix:\(path)"] + arguments)
            #expect(await server.waitForLog("ocimand listening") != nil, "\(server.log)")
            var status = stat()
            #expect(lstat(path, &status) == 0)
            #expect(status.st_mode & S_IFMT == S_IFSOCK)
            #expect(status.st_mode & 0o777 == mode)

            let connection = try await HTTPTestConnection.connect(unixPath: path)
            // No DNS name leads to a unix socket, so there is no rebinding to defend against.
            let ready = try await connection.request("GET", "/ready", headers: [("Host", "docker.example")])
            #expect(ready.status == 200)
            let fromPage = try await connection.request("GET", "/ready", headers: [("Origin", "http://evil.example")])
            #expect(fromPage.status == 403)
            await connection.close()
            #expect(await server.terminate() == 0)
            #expect(lstat(path, &status) != 0, "the socket file is removed on exit")
        }
    }

    // MARK: - Browsers

    @Test("DNS rebinding and cross-site requests are refused; allowed origins pass")
    func browserRequests() async throws {
        let engine = try #require(TestEngines.available.first)
        try await withOcimand(engine: engine, arguments: ["--allow-origin", "http://localhost:3000"]) { server, _ in
            let connection = try await Self.connect(server)
            defer { Task { await connection.close() } }
            for host in ["localhost", "localhost:\(server.port)", "127.0.0.1:\(server.port)", "[::1]:\(server.port)"] {
                let response = try await connection.request("GET", "/ready", headers: [("Host", host)])
                #expect(response.status == 200, "Host: \(host)")
            }
            for host in ["evil.example:\(server.port)", "127.0.0.1.nip.io:\(server.port)"] {
                let response = try await connection.request("GET", "/ready", headers: [("Host", host)])
                #expect(response.status == 403, "Host: \(host)")
                #expect(response.header("Content-Type") == "application/problem+json")
            }
            // Refused even on /health and before the engine is asked anything.
            #expect(try await connection.request("GET", "/health", headers: [("Host", "evil.example")]).status == 403)

            let evil = try await connection.request("GET", "/containers", headers: [("Origin", "http://evil.example")])
            #expect(evil.status == 403)
            #expect(evil.text.contains("--allow-origin"))
            let allowed = try await connection.request("GET", "/ready", headers: [("Origin", "http://localhost:3000")])
            #expect(allowed.status == 200)
            let otherPort = try await connection.request("GET", "/ready", headers: [("Origin", "http://localhost:3001")])
            #expect(otherPort.status == 403)
            let navigation = try await connection.request("GET", "/containers", headers: [("Sec-Fetch-Site", "cross-site")])
            #expect(navigation.status == 403)
        }
        // The environment variable is a comma-separated list.
        try await withOcimand(engine: engine, environment: ["OCIMAN_ALLOW_ORIGINS": "http://a.example, https://b.example:8443"]) {
            server, _ in
            let connection = try await Self.connect(server)
            defer { Task { await connection.close() } }
            for origin in ["http://a.example", "https://b.example:8443"] {
                #expect(try await connection.request("GET", "/ready", headers: [("Origin", origin)]).status == 200)
            }
            #expect(try await connection.request("GET", "/ready", headers: [("Origin", "https://a.example")]).status == 403)
        }
        let (status, output) = try await LaunchedProcess.runOcimand(engine: engine, ["--allow-origin", "*"])
        #expect(status != 0)
        #expect(output.contains("invalid allowed origin"), "\(output)")
    }

    @Test("request bodies must be JSON (or a tar where one is taken)", arguments: TestEngines.available)
    func bodiesMustBeJSON(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, _ in
                let body = try JSONSerialization.data(withJSONObject: [
                    "image": Self.image, "labels": fixture.labels, "command": ["sleep", "30"],
                ])
                let connection = try await Self.connect(server)
                defer { Task { await connection.close() } }
                // What a page can send without a CORS preflight, and no type at all.
                for contentType in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/x-tar", nil] {
                    let response = try await Self.refusedBeforeTheBody(server, "/containers", contentType: contentType, body: Array(body))
                    #expect(response.status == 415, "\(contentType ?? "none")")
                    #expect(response.header("Content-Type") == "application/problem+json")
                }
                #expect(try await fixture.labelledContainers().isEmpty)

                // A tar is accepted where the contract takes one: /hash/tar of a one-file context.
                let hash = try await connection.request(
                    "POST", "/hash/tar", headers: [("Content-Type", "application/x-tar")], body: Self.tar(name: "Dockerfile", "FROM scratch\n"))
                #expect(hash.status == 200, "\(hash.text)")

                // And JSON with parameters is JSON.
                let json = try await connection.request(
                    "POST", "/containers", headers: [("Content-Type", "application/json; charset=utf-8")], body: Array(body))
                #expect(json.status == 201, "\(json.text)")
                #expect(try await fixture.labelledContainers().count == 1)
            }
        }
    }

    // MARK: - Input caps

    @Test("oversize bodies, headers and URLs get a 4xx, never a hang")
    func oversizeInputs() async throws {
        let engine = try #require(TestEngines.available.first)
        try await withOcimand(engine: engine, arguments: ["--max-body", "65536"]) { server, _ in
            // Declared too large: 413 before a byte of the body, and the connection is not kept.
            let declared = try await Self.connect(server)
            let started = ContinuousClock.now
            try await declared.sendHead(
                "POST", "/containers", headers: [("Content-Type", "application/json"), ("Content-Length", String(64 << 20))])
            let tooLarge = try await declared.readResponse(timeout: .seconds(5))
            #expect(tooLarge.status == 413)
            #expect(tooLarge.header("Content-Type") == "application/problem+json")
            #expect(ContinuousClock.now - started < .seconds(2))
            #expect(await declared.waitForServerClose(timeout: .seconds(2)))
            await declared.close()

            // Chunked: the excess is dropped, not buffered or decoded, and the 413 goes out when
            // the body ends (libmicrohttpd 0.9.75 cannot answer while a body is still arriving).
            let chunked = try await Self.connect(server)
            try await chunked.sendHead("POST", "/containers", headers: [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
            for _ in 0..<20 { try await chunked.writeChunk([UInt8](repeating: 0x20, count: 8192)) }
            try await chunked.finishChunkedBody()
            #expect(try await chunked.readResponse(timeout: .seconds(5)).status == 413)
            await chunked.close()

            let big = String(repeating: "a", count: 100 * 1024)
            let header = try await Self.connect(server)
            #expect(try await header.request("GET", "/health", headers: [("X-Big", big)], timeout: .seconds(5)).status == 431)
            await header.close()
            let url = try await Self.connect(server)
            #expect(try await url.request("GET", "/containers?name=" + big, timeout: .seconds(5)).status == 414)
            await url.close()
        }
    }

    @Test("a request whose body was cut short is never acted on", arguments: TestEngines.available)
    func truncatedBodyIsNotActedOn(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { server, _ in
                // A complete JSON document in the first 500 bytes, padded with spaces to 1000.
                var json = try JSONSerialization.data(withJSONObject: [
                    "image": Self.image, "labels": fixture.labels, "command": ["sleep", "30"],
                ])
                #expect(json.count < 500)
                json.append(contentsOf: [UInt8](repeating: 0x20, count: 1000 - json.count))
                let cut = try await Self.connect(server)
                try await cut.sendHead("POST", "/containers", headers: [("Content-Type", "application/json"), ("Content-Length", "1000")])
                try await cut.write(Array(json.prefix(500)))
                try await Task.sleep(for: .milliseconds(300))
                await cut.close()
                // Give a wrongly eager server every chance to create the container.
                try await Task.sleep(for: .seconds(2))
                #expect(try await fixture.labelledContainers().isEmpty)

                // The same bytes, all of them, do create it: the cut was the only difference.
                let whole = try await Self.connect(server)
                let created = try await whole.request(
                    "POST", "/containers", headers: [("Content-Type", "application/json")], body: Array(json), timeout: .seconds(60))
                await whole.close()
                #expect(created.status == 201, "\(created.text)")
                #expect(try await fixture.labelledContainers().count == 1)
            }
        }
    }

    // MARK: - systemd socket activation

    @Test("serves the socket systemd passes, checks its address, and hides it from children")
    func socketActivation() async throws {
        let activate = "/usr/bin/systemd-socket-activate"
        try #require(FileManager.default.isExecutableFile(atPath: activate), "systemd-socket-activate is not installed")
        let engine = try #require(TestEngines.available.first)
        let binary = try OcimandProcess.locateBinary()
        let directory = try temporaryDirectory("ociman-activation")
        defer { try? FileManager.default.removeItem(atPath: directory) }

        // A unix socket: the first connection starts ocimand (as systemd does) and is served.
        let path = directory + "/ocimand.sock"
        // systemd-socket-activate passes on only the variables named with -E.
        let wrapper = try LaunchedProcess.start(activate, ["-l", path, "-E", "OCIMAN_BACKEND=\(engine)", binary, "--listen", "127.0.0.1:1"])
        #expect(await wrapper.waitForLog("Listening on") != nil, "\(wrapper.log)")
        let connection = try await HTTPTestConnection.connect(unixPath: path)
        let ready = try await connection.request("GET", "/ready", timeout: .seconds(30))
        await connection.close()
        #expect(ready.status == 200, "\(wrapper.log)")
        // The passed socket wins over --listen, and is reported by its address.
        #expect(await wrapper.waitForLog("address=unix:\(path) ", timeout: .seconds(5)) != nil, "\(wrapper.log)")
        #expect(await wrapper.terminate() == 0)

        // A wildcard TCP socket without a token: refused at startup, whatever systemd was told.
        let port = try freeLoopbackPort()
        let exposed = try LaunchedProcess.start(activate, ["-l", "0.0.0.0:\(port)", "-E", "OCIMAN_BACKEND=\(engine)", binary])
        #expect(await exposed.waitForLog("Listening on") != nil)
        _ = try? await HTTPTestConnection.connect(port: port, timeout: .seconds(2))
        #expect(await exposed.waitForExit(timeout: .seconds(30)) != 0)
        #expect(exposed.log.contains("refusing to listen on 0.0.0.0:\(port) without a token"), "\(exposed.log)")
    }

    @Test("a private Podman service started under socket activation does not inherit the socket")
    func socketActivationHidesTheSocketFromThePodmanChild() async throws {
        let activate = "/usr/bin/systemd-socket-activate"
        try #require(FileManager.default.isExecutableFile(atPath: activate), "systemd-socket-activate is not installed")
        try #require(TestEngines.available.contains("podman"))
        let directory = try temporaryDirectory("ociman-activation-podman")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ocimand.sock"
        let wrapper = try LaunchedProcess.start(
            activate,
            [
                "-l", path, "-E", "OCIMAN_BACKEND=podman", "-E", "OCIMAN_PODMAN_SERVICE=private", "-E", "XDG_RUNTIME_DIR=\(directory)",
                "-E", "PATH", try OcimandProcess.locateBinary(),
            ])
        #expect(await wrapper.waitForLog("Listening on") != nil)
        let connection = try await HTTPTestConnection.connect(unixPath: path)
        #expect(try await connection.request("GET", "/ready", timeout: .seconds(60)).status == 200, "\(wrapper.log)")
        await connection.close()
        #expect(await wrapper.waitForLog("started private podman service", timeout: .seconds(5)) != nil, "\(wrapper.log)")
        // systemd-socket-activate execs ocimand in its own process, so the service is its child.
        let children = childProcesses(of: wrapper.pid)
        #expect(children.count == 1, "\(children)")
        for child in children {
            let environment = (try? String(contentsOfFile: "/proc/\(child)/environ", encoding: .utf8)) ?? ""
            #expect(environment.contains("OCIMAN_PODMAN_SERVICE=private"), "reading the child's environment")
            #expect(!environment.contains("LISTEN_FDS="))
            #expect(!environment.contains("LISTEN_PID="))
            // Descriptor 3 of the child is not ocimand's listening socket.
            let ours = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(wrapper.pid)/fd/3")
            let theirs = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(child)/fd/3")
            #expect(ours?.hasPrefix("socket:") == true)
            #expect(theirs != ours)
        }
        #expect(await wrapper.terminate() == 0)
        for child in children { #expect(!processExists(child), "the private service is stopped with ocimand") }
    }

    // MARK: - Helpers

    /// Sends a request whose body the server may refuse before reading it: the answer can come,
    /// and the connection close, while the body is still being written.
    static func refusedBeforeTheBody(
        _ server: OcimandProcess, _ path: String, contentType: String?, body: [UInt8]
    ) async throws -> HTTPTestConnection.Response {
        let connection = try await connect(server)
        var headers = [("Content-Length", String(body.count))]
        if let contentType { headers.append(("Content-Type", contentType)) }
        try await connection.sendHead("POST", path, headers: headers)
        try? await connection.write(body)
        let response = try await connection.readResponse(timeout: .seconds(5))
        await connection.close()
        return response
    }

    /// A one-entry ustar archive (header, content padded to 512, two zero blocks).
    static func tar(name: String, _ content: String) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) { for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte } }
        let data = Array(content.utf8)
        put(name, at: 0)
        put("0000644", at: 100)
        put("0000000", at: 108)
        put("0000000", at: 116)
        put(String(format: "%011o", data.count), at: 124)
        put(String(format: "%011o", 0), at: 136)
        put("        ", at: 148)
        header[156] = UInt8(ascii: "0")
        put("ustar", at: 257)
        put("00", at: 263)
        let checksum = header.reduce(0) { $0 + Int($1) }
        put(String(format: "%06o", checksum) + "\0 ", at: 148)
        let padding = (512 - data.count % 512) % 512
        return header + data + [UInt8](repeating: 0, count: padding + 1024)
    }
}
