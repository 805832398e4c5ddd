import Foundation
import OcimanTestSupport
import Testing

/// Pull and push against the Debian `docker-registry` instances scripts/setup/registries.sh runs:
/// 127.0.0.1:5000 (no auth) and 127.0.0.1:5443 (TLS with the test CA, htpasswd auth).
@Suite("Registries")
struct RegistryTests {
    static let authRegistry = "127.0.0.1:5443"
    static let openRegistry = "127.0.0.1:5000"

    struct Credentials: Decodable {
        var username: String
        var password: String
    }

    static func credentials() throws -> Credentials {
        let path = "/etc/ociman-test/registry-auth/credentials.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TestSupportError("\(path) is missing: run scripts/setup-engines.sh")
        }
        return try JSONDecoder().decode(Credentials.self, from: data)
    }

    /// The engines publish on every address of a remote host as that host; locally as 0.0.0.0.
    static func expectedWildcardHost(_ engine: String) -> String {
        ["docker-tls", "docker-ssh"].contains(engine) ? "127.0.0.1" : "0.0.0.0"
    }

    /// The PostgreSQL 15 image scripts/setup/postgres-image.sh imports into every engine.
    static let postgres = TestEngines.postgresImage

    @Test(
        "pg-ephemeral: boot PostgreSQL with a published port and a wait, seed through psql on stdin, commit, push with credentials, remove, pull back, boot from it",
        arguments: TestEngines.available)
    func seedSnapshotRoundTrip(engine: String) async throws {
        let login = try Self.credentials()
        let fixture = EngineFixture(engine: engine)
        let repository = "\(Self.authRegistry)/ociman-test/pg-\(fixture.runID)"
        let snapshot = "\(repository):seeded"
        let encoded = snapshot.replacingOccurrences(of: "/", with: "%2F")
        let schema = "CREATE TABLE seeded (id int);\nINSERT INTO seeded VALUES (1), (2);\n"
        try await fixture.withCleanup(images: [snapshot]) {
            try await withOcimand(engine: engine) { server, client in
                func boot(_ image: String, _ name: String) async throws -> Int {
                    let run = try await client.post(
                        "/containers",
                        json: [
                            "image": image, "name": name, "labels": fixture.labels,
                            // No host_ip: bound to every address of the engine's host.
                            "publish": [["container_port": 5432]],
                            "wait": [
                                "timeout_seconds": 120, "tcp_port": 5432,
                                "log": ["pattern": "database system is ready to accept connections"],
                            ],
                        ])
                    #expect(run.status == 201, "\(run.text)")
                    let ports = try #require(try run.object()["ports"] as? [[String: Any]])
                    #expect(ports.first?["host_ip"] as? String == Self.expectedWildcardHost(engine), "\(ports)")
                    return try #require(ports.first?["host_port"] as? Int)
                }
                func psql(_ name: String, _ arguments: [String], stdin: String? = nil) async throws -> String {
                    var body: [String: Any] = ["command": ["psql", "-U", "postgres", "-v", "ON_ERROR_STOP=1"] + arguments]
                    if let stdin { body["stdin"] = stdin }
                    let result = try await client.post("/containers/\(name)/exec", json: body)
                    #expect(try result.object()["exit_code"] as? Int == 0, "\(result.text)")
                    return try result.object()["stdout"] as? String ?? ""
                }
                let seed = "pg-seed-\(fixture.runID)"
                let port = try await boot(Self.postgres, seed)
                _ = try await psql(seed, [], stdin: schema)
                // The database answers on its published port, from this host.
                let probe = try await HTTPTestConnection.connect(host: "127.0.0.1", port: port)
                await probe.close()

                // Rootless Podman on a cgroup v1 host (these machines) has no cgroup to freeze: no pause.
                let commit = try await client.post(
                    "/containers/\(seed)/commit", json: ["reference": snapshot, "pause": engine != "podman-rootless"])
                #expect(commit.status == 201, "\(commit.text)")

                // A wrong password is refused by the registry and never repeated.
                let wrongPassword = "wrong-\(fixture.runID)"
                let refused = try await client.post(
                    "/images/push",
                    json: ["reference": snapshot, "credentials": ["username": login.username, "password": wrongPassword]])
                let refusedEnd = try #require(try refused.lines().last)
                #expect(refusedEnd["type"] as? String == "error" && refusedEnd["code"] as? String == "unauthorized", "\(refusedEnd)")
                #expect(!refused.text.contains(wrongPassword))

                let credentials = ["username": login.username, "password": login.password]
                let pushed = try await client.post("/images/push", json: ["reference": snapshot, "credentials": credentials])
                let pushedEnd = try #require(try pushed.lines().last)
                #expect(pushedEnd["type"] as? String == "result", "\(pushed.text)")
                #expect((pushedEnd["digest"] as? String)?.hasPrefix("sha256:") == true, "\(pushedEnd)")

                #expect(try await client.delete("/containers/\(seed)?force=true").status == 204)
                #expect(try await client.delete("/images/\(encoded)?force=true").status == 204)
                #expect(try await client.request("HEAD", "/images/\(encoded)").status == 404)

                let unknown = try await client.post(
                    "/images/pull", json: ["reference": "\(repository):absent", "credentials": credentials])
                let unknownEnd = try #require(try unknown.lines().last)
                #expect(unknownEnd["type"] as? String == "error" && unknownEnd["code"] as? String == "not_found", "\(unknownEnd)")

                let pulled = try await client.post("/images/pull", json: ["reference": snapshot, "credentials": credentials])
                let pulledEnd = try #require(try pulled.lines().last)
                #expect(pulledEnd["type"] as? String == "result" && pulledEnd["reference"] as? String == snapshot, "\(pulled.text)")

                // A test database from the snapshot is seeded already.
                let reuse = "pg-reuse-\(fixture.runID)"
                _ = try await boot(snapshot, reuse)
                #expect(try await psql(reuse, ["-tAc", "SELECT count(*) FROM seeded"]) == "2\n")
                #expect(try await client.delete("/containers/\(reuse)?force=true").status == 204)
                #expect(try await client.delete("/images/\(encoded)?force=true").status == 204)

                #expect(!server.log.contains(login.password), "the registry password appears in ocimand's log")
            }
        }
    }

    @Test("a registry without auth round-trips without credentials; nothing listening is unreachable", arguments: TestEngines.available)
    func openRegistryAndUnreachable(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let reference = "\(Self.openRegistry)/ociman-test/open-\(fixture.runID):1"
        let encoded = reference.replacingOccurrences(of: "/", with: "%2F")
        try await fixture.withCleanup(images: [reference]) {
            try await withOcimand(engine: engine) { _, client in
                let tagged = try await client.post(
                    "/images/\(TestEngines.baseImage.replacingOccurrences(of: "/", with: "%2F"))/tag", json: ["target": reference])
                #expect(tagged.status == 201, "\(tagged.text)")
                let pushed = try await client.post("/images/push", json: ["reference": reference])
                #expect(try pushed.lines().last?["type"] as? String == "result", "\(pushed.text)")
                #expect(try await client.delete("/images/\(encoded)").status == 204)
                let pulled = try await client.post("/images/pull", json: ["reference": reference])
                #expect(try pulled.lines().last?["type"] as? String == "result", "\(pulled.text)")
                #expect(try await client.request("HEAD", "/images/\(encoded)").status == 200)

                let nothing = try await client.post("/images/pull", json: ["reference": "127.0.0.1:5999/ociman-test/none:1"])
                let end = try #require(try nothing.lines().last)
                #expect(end["type"] as? String == "error" && end["code"] as? String == "unreachable", "\(end)")
            }
        }
    }
}
