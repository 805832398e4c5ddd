import Foundation
import OcimanTestSupport
import Testing

/// Issue 11: SIGTERM ends ocimand within `--shutdown-grace` plus a second, whatever state it is
/// in: idle; with a wait and a followed log in flight; with the engine hung under in-flight
/// requests and the reaper; with its private Podman service stopped (SIGSTOP), which ignores the
/// SIGTERM ocimand passes on.
@Suite("SIGTERM in any state")
struct ShutdownTests {
    static let image = TestEngines.baseImage
    static let grace = 2

    /// Sends SIGTERM and expects the exit within the grace plus a second; answers the status.
    static func terminate(_ server: LaunchedProcess, _ what: String) async -> Int32? {
        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        let status = await server.waitForExit(timeout: .seconds(grace + 1))
        let took = ContinuousClock.now - signalled
        #expect(status != nil, "\(what): ocimand still alive \(took) after SIGTERM\n\(server.log)")
        return status
    }

    static func start(_ engine: String, environment: [String: String] = [:]) async throws -> (LaunchedProcess, Int) {
        let server = try LaunchedProcess.ocimand(
            engine: engine, ["--listen", "127.0.0.1:0", "--shutdown-grace", "\(grace)", "--engine-timeout", "30"],
            environment: environment)
        return (server, try await server.listeningPort(timeout: .seconds(60)))
    }

    @Test("idle", arguments: TestEngines.available)
    func idle(engine: String) async throws {
        let (server, _) = try await Self.start(engine)
        #expect(await Self.terminate(server, "idle") == 0)
    }

    @Test("a wait and a followed log in flight", arguments: TestEngines.available)
    func inFlight(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let (server, port) = try await Self.start(engine)
            let client = OcimandClient(baseURL: "http://127.0.0.1:\(port)")
            let run = try await client.post(
                "/containers",
                json: ["image": Self.image, "labels": fixture.labels, "command": ["sh", "-c", "while true; do echo tick; sleep 0.2; done"]])
            #expect(run.status == 201, "\(run.text)")
            let id = try #require(try run.object()["id"] as? String)
            let waiting = try await HTTPTestConnection.connect(port: port)
            try await waiting.send("POST", "/containers/\(id)/wait")
            let following = try await HTTPTestConnection.connect(port: port)
            try await following.send("GET", "/containers/\(id)/logs?follow=true")
            #expect(try await following.readHead(timeout: .seconds(10)).status == 200)
            #expect(try await following.readBodyChunk(timeout: .seconds(5)) != nil)
            // 0: every shutdown step ended within the grace, without the hard deadline's exit(1).
            #expect(await Self.terminate(server, "wait and log in flight") == 0)
            await waiting.close()
            await following.close()
        }
        #expect(try await fixture.labelledContainers().isEmpty)
    }

    @Test("the engine hung under in-flight requests and the reaper", arguments: TestEngines.available)
    func engineHung(engine: String) async throws {
        let proxy = try EngineProxy.started(for: engine)
        defer { proxy.stop() }
        let (server, port) = try await Self.start(engine, environment: proxy.environment(for: engine))
        proxy.freeze()
        let listing = try await HTTPTestConnection.connect(port: port)
        try await listing.send("GET", "/containers")
        let inspecting = try await HTTPTestConnection.connect(port: port)
        try await inspecting.send("GET", "/containers/nope")
        // The reaper ticks every second: by now its pass waits on the engine too.
        try await Task.sleep(for: .milliseconds(1500))
        #expect(await Self.terminate(server, "engine hung") == 0)
        await listing.close()
        await inspecting.close()
    }

    @Test("its private Podman service stopped with SIGSTOP")
    func privatePodmanStopped() async throws {
        try #require(TestEngines.available.contains("podman"))
        let runtimeDirectory = try temporaryDirectory("ociman-xdg")
        defer { try? FileManager.default.removeItem(atPath: runtimeDirectory) }
        let (server, _) = try await Self.start(
            "podman", environment: ["OCIMAN_PODMAN_SERVICE": "private", "XDG_RUNTIME_DIR": runtimeDirectory])
        let service = try #require(childProcesses(of: server.pid).first)
        defer { kill(service, SIGKILL) }
        kill(service, SIGSTOP)
        #expect(await Self.terminate(server, "private podman stopped") == 0)
        #expect(await eventually(timeout: .seconds(2)) { !processExists(service) }, "the private service is not left behind")
    }
}
