import Foundation
import OcimanTestSupport
import Testing

/// What only a remote engine has: its endpoint, TLS failures at startup, ssh connection reuse and
/// Podman's socket over ssh. The suites run over these transports as well via the engine
/// variants (`OCIMAN_TEST_ENGINES=docker-tls,docker-ssh`); these checks run with the root engines.
@Suite("Remote engines")
struct RemoteEngineTests {
    static let docker = TestEngines.available.contains("docker") ? ["docker"] : []
    static let podman = TestEngines.available.contains("podman") ? ["podman"] : []

    @Test("/backend names the TLS endpoint; exec stdin reaches the process over TLS and EOF ends it", arguments: docker)
    func tlsEndpoint(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: "docker-tls") { _, client in
                let backend = try await client.get("/backend").object()
                #expect(backend["endpoint"] as? String == "tcp://127.0.0.1:2376")
                #expect(backend["kind"] as? String == "docker")
                try await Self.execStdinRoundTrip(client, fixture)
            }
        }
    }

    @Test("/backend names the ssh endpoint; requests share a few ssh processes", arguments: docker)
    func sshReuse(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: "docker-ssh") { server, client in
                let backend = try await client.get("/backend").object()
                #expect(backend["endpoint"] as? String == "ssh://root@\(TestEngines.sshAlias)")
                for _ in 0..<40 {
                    #expect(try await client.get("/containers?label=\(fixture.labelKey)=\(fixture.runID)").status == 200)
                }
                let children = Self.children(of: server.processIdentifier, named: "ssh")
                #expect(!children.isEmpty && children.count <= 4, "ssh processes after 40 sequential requests: \(children)")
                try await Self.execStdinRoundTrip(client, fixture)
            }
        }
    }

    @Test("Podman over ssh: CONTAINER_HOST=ssh://user@host/path/to/podman.sock", arguments: podman)
    func podmanOverSSH(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let host = "ssh://root@\(TestEngines.sshAlias)\(TestEngines.podmanSocket)"
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, environment: ["CONTAINER_HOST": host]) { _, client in
                let backend = try await client.get("/backend").object()
                #expect(backend["endpoint"] as? String == host && backend["kind"] as? String == "podman")
                try await Self.execStdinRoundTrip(client, fixture)
            }
        }
    }

    @Test("a certificate the other side does not trust fails at startup, naming the TLS error", arguments: docker)
    func badCertificates(engine: String) async throws {
        let pki = TestEngines.testPKI
        let base = NSTemporaryDirectory() + "ociman-tls-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        // A CA that did not sign dockerd's certificate: we refuse the server. A client certificate
        // of a CA dockerd does not trust: dockerd refuses us, and says so with an alert.
        let mixes = [
            "untrusted-server": ["ca.pem": "untrusted/ca.pem", "cert.pem": "docker-client/cert.pem", "key.pem": "docker-client/key.pem"],
            "untrusted-client": ["ca.pem": "ca.pem", "cert.pem": "untrusted-client/cert.pem", "key.pem": "untrusted-client/key.pem"],
        ]
        for (name, files) in mixes {
            let directory = "\(base)/\(name)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            for (file, source) in files { try FileManager.default.copyItem(atPath: "\(pki)/\(source)", toPath: "\(directory)/\(file)") }
            let started = ContinuousClock.now
            do {
                let server = try await OcimandProcess.start(engine: "docker-tls", environment: ["DOCKER_CERT_PATH": directory])
                server.stop()
                Issue.record("ocimand started with the certificates of \(name)")
            } catch let error as TestSupportError {
                #expect(error.description.contains("TLS with the engine failed"), "\(name): \(error)")
                let reason = name == "untrusted-server" ? "CERTIFICATE_VERIFY_FAILED" : "ALERT"
                #expect(error.description.contains(reason), "\(name): \(error)")
                // At once, not after a timeout.
                #expect(started.duration(to: .now) < .seconds(10), "\(name)")
            }
        }
    }

    @Test("a server certificate of the trusted CA for another name fails at startup (hostname verification)", arguments: docker)
    func certificateForAnotherName(engine: String) async throws {
        // A TLS server on a free loopback port presenting the test CA's certificate for
        // elsewhere.invalid: the CA is trusted, only the name (127.0.0.1) does not match.
        let port = try freeLoopbackPort()
        let pki = TestEngines.testPKI
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        server.arguments = [
            "s_server", "-quiet", "-accept", "127.0.0.1:\(port)", "-cert", "\(pki)/wrong-name/cert.pem",
            "-key", "\(pki)/wrong-name/key.pem",
        ]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            // s_server outlives SIGTERM.
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        let listening = await eventually(timeout: .seconds(10)) {
            guard let probe = try? await HTTPTestConnection.connect(host: "127.0.0.1", port: port) else { return false }
            await probe.close()
            return true
        }
        try #require(listening, "openssl s_server did not listen on \(port)")
        do {
            let ocimand = try await OcimandProcess.start(
                engine: "docker-tls", environment: ["DOCKER_HOST": "tcp://127.0.0.1:\(port)"])
            ocimand.stop()
            Issue.record("ocimand started against a certificate for another name")
        } catch let error as TestSupportError {
            #expect(error.description.contains("TLS with the engine failed"), "\(error)")
            #expect(error.description.lowercased().contains("hostname"), "\(error)")
        }
    }

    /// The seed step of pg-ephemeral: stdin through the hijacked connection, EOF by half-close.
    static func execStdinRoundTrip(_ client: OcimandClient, _ fixture: EngineFixture) async throws {
        let name = "remote-\(fixture.runID)"
        let run = try await client.post(
            "/containers",
            json: ["image": TestEngines.baseImage, "name": name, "labels": fixture.labels, "command": ["sleep", "300"]])
        #expect(run.status == 201, "\(run.text)")
        let input = String(repeating: "0123456789abcdef", count: 64 * 1024)  // 1 MiB: many TLS records
        let counted = try await client.post("/containers/\(name)/exec", json: ["command": ["wc", "-c"], "stdin": input])
        #expect(try counted.object()["stdout"] as? String == "\(input.utf8.count)\n", "\(counted.text)")
        #expect(try await client.delete("/containers/\(name)?force=true").status == 204)
    }

    static func children(of pid: Int32, named name: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            let command = stat[stat.index(after: stat.firstIndex(of: "(")!)..<close]
            return fields.count > 1 && fields[1] == "\(pid)" && command == name
        }
    }
}
