import Foundation
import OcimanTestSupport
import Testing

/// Issue 11: an engine-side race for an engine-picked host port is retried, never a 400. The
/// race cannot be provoked on demand, so an EngineProxy answers chosen starts the way the engines
/// do when they lose it; the containers behind those starts are real and must be removed.
@Suite("Host-port race")
struct HostPortRaceTests {
    static let image = TestEngines.baseImage

    /// How the engines word a bind that lost the race (Podman's rootlessport and Docker's
    /// userland proxy both end with the kernel's words).
    static func portInUse(_ port: Int) -> String {
        "cannot start container: listen tcp4 127.0.0.1:\(port): bind: address already in use"
    }

    @Test("an engine-picked host port taken before the engine binds it is retried, not a 400", arguments: TestEngines.available)
    func enginePickedPortRaceIsRetried(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let proxy = try EngineProxy.started(for: engine)
        defer { proxy.stop() }
        let run: [String: Any] = [
            "image": Self.image, "labels": fixture.labels, "command": ["sh", "-c", "echo started; exec httpd -f -p 8080"],
            "publish": [["container_port": 8080, "host_ip": "127.0.0.1"]],
            "wait": ["timeout_seconds": 10, "tcp_port": 8080],
        ]
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, environment: proxy.environment(for: engine)) { server, client in
                // Two lost races, then the third start binds: one container, running, reachable.
                proxy.failNext(2, matching: "/start ", status: 500, message: Self.portInUse(41234))
                let retried = try await client.post("/containers", json: run)
                #expect(retried.status == 201, "\(retried.text)")
                #expect(try await fixture.labelledContainers().count == 1, "the containers whose start failed are removed")
                #expect(server.log.contains("running again"))

                // The race every time: the engine's fault, 503, and nothing left.
                await fixture.cleanUp()
                proxy.failNext(100, matching: "/start ", status: 500, message: Self.portInUse(41234))
                let exhausted = try await client.post("/containers", json: run)
                #expect(exhausted.status == 503, "\(exhausted.text)")
                #expect(exhausted.header("Content-Type") == "application/problem+json")
                #expect(try await fixture.labelledContainers().isEmpty)

                // A host port the client chose that is in use is the client's 400, at once.
                var fixed = run
                fixed["publish"] = [["container_port": 8080, "host_ip": "127.0.0.1", "host_port": 41234]]
                proxy.failNext(100, matching: "/start ", status: 500, message: Self.portInUse(41234))
                let taken = try await client.post("/containers", json: fixed)
                #expect(taken.status == 400, "\(taken.text)")
                #expect(try await fixture.labelledContainers().isEmpty)
                #expect(processExists(server.processIdentifier))
            }
        }
        #expect(try await fixture.labelledContainers().isEmpty)
    }
}
