import EngineDriver
import Foundation
import OcimanTestSupport
import Testing

/// Issue 5 item 8: containers with a time-to-live or a session lease are removed by ocimand when
/// they expire, across restarts, and nothing without `ociman.managed=true` is ever touched.
///
/// Every ocimand the test run starts reaps the engine it serves, so a managed container whose
/// time-to-live has passed may be removed by any of them: the assertions only ever rely on that
/// (state lives in labels). Session state lives in each test's own `--state-dir`.
@Suite("Reaper and sessions against real engines")
struct ReaperTests {
    // MARK: - Time-to-live

    @Test("a container with a 2 s TTL is removed within a few seconds", arguments: TestEngines.available)
    func ttlContainerDisappears(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let started = ContinuousClock.now
                let before = Int64(Date().timeIntervalSince1970)
                let run = try await client.post("/containers", json: Self.sleeper(fixture, ["ttl_seconds": 2]))
                let after = Int64(Date().timeIntervalSince1970)
                #expect(run.status == 201)
                let id = try #require(try run.object()["id"] as? String)
                // From the answer: on a loaded machine the reaper may already be at work.
                let labels = try #require(try run.object()["labels"] as? [String: String])
                #expect(labels["ociman.managed"] == "true")
                let expiresAt = try #require(labels["ociman.expires-at"].flatMap(Int64.init))
                #expect((before + 2...after + 2).contains(expiresAt))

                try await fixture.waitUntilGone(id, within: .seconds(8))
                let elapsed = ContinuousClock.now - started
                let pastExpiry = Date().timeIntervalSince1970 - Double(expiresAt)
                print(
                    "[ReaperTests] \(engine): 2 s TTL container gone \(elapsed) after the run request was sent, "
                        + "\(pastExpiry) s after its expires-at")
                // One reaper interval (1 s) plus the forced removal, with room for a loaded machine
                // (idle: ≈ 0.5 s; with the whole suite running on 2 cores: up to 3 s).
                #expect(pastExpiry < 4)
            }
        }
    }

    @Test("TTL containers no running ocimand saw are reaped once one starts (state in labels)", arguments: TestEngines.available)
    func ttlSurvivesRestart(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await fixture.withCleanup {
            // Made by an ocimand that then stops before the TTL passes...
            let viaRestart = try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                try await client.runSleeper(fixture, extra: ["ttl_seconds": 3])
            }
            // ...and one created behind ocimand's back with the labels it would set.
            let direct = try await fixture.createDirectly(extraLabels: [
                "ociman.managed": "true", "ociman.expires-at": String(Int64(Date().timeIntervalSince1970) + 1),
            ])
            try await Task.sleep(for: .seconds(3))  // let both TTLs pass while this test runs no ocimand
            try await withOcimand(engine: engine, arguments: state.arguments) { _, _ in
                try await fixture.waitUntilGone(viaRestart, within: .seconds(8))
                try await fixture.waitUntilGone(direct, within: .seconds(8))
            }
        }
    }

    @Test("containers without ociman.managed=true are never touched", arguments: TestEngines.available)
    func unmanagedContainersAreNeverTouched(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                // A session this ocimand issued and ended: its managed containers would be reaped.
                let session = try await client.openSession(lease: 60)
                #expect(try await client.delete("/sessions/\(session)").status == 200)
                let past = String(Int64(Date().timeIntervalSince1970) - 60)
                let doomedLabels = ["ociman.expires-at": past, "ociman.session": session]
                let unlabelled = try await fixture.createDirectly(extraLabels: doomedLabels)
                let notTrue = try await fixture.createDirectly(
                    extraLabels: doomedLabels.merging(["ociman.managed": "false"]) { $1 })
                let canary = try await fixture.createDirectly(
                    extraLabels: doomedLabels.merging(["ociman.managed": "true"]) { $1 }, start: false)
                // The pass that removed the canary listed the others too; give it two more.
                try await fixture.waitUntilGone(canary, within: .seconds(8))
                try await Task.sleep(for: .seconds(2))
                #expect(try await fixture.exists(unlabelled))
                #expect(try await fixture.exists(notTrue))
            }
        }
    }

    // MARK: - Sessions

    @Test("session: renew keeps its containers past the first expiry; DELETE removes them and counts", arguments: TestEngines.available)
    func sessionFlow(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                // Long enough that creating two containers on a loaded machine fits in the lease.
                let created = try await client.post("/sessions", json: ["lease_seconds": 5])
                #expect(created.status == 201)
                let body = try created.object()
                let session = try #require(body["id"] as? String)
                let firstExpiry = try #require((body["expires_at"] as? String).flatMap(Self.parseDate))
                #expect(abs(firstExpiry.timeIntervalSinceNow - 5) <= 1.5)

                let first = try await client.runSleeper(fixture, extra: ["session": session])
                let second = try await client.runSleeper(fixture, extra: ["session": session])
                #expect(try await fixture.labels(of: first)["ociman.session"] == session)

                // Renew every second until two seconds past the original expiry.
                var lastExpiry = firstExpiry
                while Date() < firstExpiry.addingTimeInterval(2) {
                    let renewed = try await client.post("/sessions/\(session)/renew", json: ["lease_seconds": 3])
                    #expect(renewed.status == 200)
                    #expect(try renewed.object()["id"] as? String == session)
                    lastExpiry = try #require((try renewed.object()["expires_at"] as? String).flatMap(Self.parseDate))
                    try await Task.sleep(for: .seconds(1))
                }
                #expect(lastExpiry > firstExpiry)
                #expect(try await fixture.exists(first))
                #expect(try await fixture.exists(second))

                let deleted = try await client.delete("/sessions/\(session)")
                #expect(deleted.status == 200)
                #expect(try deleted.object()["removed_containers"] as? Int == 2)
                #expect(try await !fixture.exists(first))
                #expect(try await !fixture.exists(second))

                #expect(try await client.delete("/sessions/\(session)").status == 404)
                #expect(try await client.post("/sessions/\(session)/renew", json: ["lease_seconds": 3]).status == 404)
                // A deleted session cannot take new containers.
                let late = try await client.post("/containers", json: Self.sleeper(fixture, ["session": session]))
                #expect(late.status == 400)
                #expect(try late.object()["field"] as? String == "session")
            }
        }
    }

    @Test("containers of a session whose lease lapses are reaped", arguments: TestEngines.available)
    func expiredSessionIsReaped(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let session = try await client.openSession(lease: 2)
                let id = try await client.runSleeper(fixture, extra: ["session": session])
                try await fixture.waitUntilGone(id, within: .seconds(8))
                #expect(try await client.post("/sessions/\(session)/renew", json: ["lease_seconds": 5]).status == 404)
                #expect(try await client.delete("/sessions/\(session)").status == 404)
            }
        }
    }

    @Test(
        "session expiry survives a restart; another state directory never reaps its containers",
        arguments: TestEngines.available)
    func sessionSurvivesRestart(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        let otherState = try StateDirectory()
        try await fixture.withCleanup {
            let (kept, lapsing, lapsingContainer) = try await withOcimand(engine: engine, arguments: state.arguments) {
                _, client in
                let kept = try await client.openSession(lease: 600)
                let lapsing = try await client.openSession(lease: 6)
                let container = try await client.runSleeper(fixture, extra: ["session": lapsing])
                return (kept, lapsing, container)
            }
            // `lapsing` ends while no ocimand of its state directory runs.
            try #require(try await fixture.exists(lapsingContainer), "the run took longer than the 6 s lease")
            try await Task.sleep(for: .seconds(6))

            // An ocimand with a different state directory did not issue the session: it leaves it.
            try await withOcimand(engine: engine, arguments: otherState.arguments) { _, client in
                let canary = try await fixture.createDirectly(
                    extraLabels: ["ociman.managed": "true", "ociman.expires-at": "0"], start: false)
                try await fixture.waitUntilGone(canary, within: .seconds(8))
                try await Task.sleep(for: .seconds(2))
                #expect(try await fixture.exists(lapsingContainer))
                #expect(try await client.post("/sessions/\(kept)/renew", json: ["lease_seconds": 60]).status == 404)
            }

            // The restarted owner still knows the live session and reaps the lapsed one's container.
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let renewed = try await client.post("/sessions/\(kept)/renew", json: ["lease_seconds": 60])
                #expect(renewed.status == 200)
                #expect(try await client.post("/sessions/\(lapsing)/renew", json: ["lease_seconds": 60]).status == 404)
                try await fixture.waitUntilGone(lapsingContainer, within: .seconds(8))
                #expect(try await client.delete("/sessions/\(kept)").object()["removed_containers"] as? Int == 0)
            }
        }
    }

    // MARK: - Errors

    @Test("bad leases are 400 naming the field; unknown sessions are 404", arguments: TestEngines.available)
    func errors(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                for lease in [0, -5, 86401] {
                    let create = try await client.post("/sessions", json: ["lease_seconds": lease])
                    #expect(create.status == 400)
                    #expect(create.header("Content-Type") == "application/problem+json")
                    #expect(try create.object()["field"] as? String == "lease_seconds")
                }
                for body: [String: Any] in [[:], ["lease_seconds": "ten"], ["lease_seconds": 1.5]] {
                    #expect(try await client.post("/sessions", json: body).status == 400)
                }
                #expect(try await client.post("/sessions", json: ["lease_seconds": 86400]).status == 201)

                let session = try await client.openSession(lease: 60)
                let renew = try await client.post("/sessions/\(session)/renew", json: ["lease_seconds": 0])
                #expect(renew.status == 400)
                #expect(try renew.object()["field"] as? String == "lease_seconds")

                for unknown in ["nope", String(repeating: "0", count: 48), String(session.dropLast()) + "x"] {
                    let renewUnknown = try await client.post("/sessions/\(unknown)/renew", json: ["lease_seconds": 5])
                    #expect(renewUnknown.status == 404)
                    #expect(renewUnknown.header("Content-Type") == "application/problem+json")
                    #expect(try await client.delete("/sessions/\(unknown)").status == 404)
                }

                let unknownSession = try await client.post("/containers", json: Self.sleeper(fixture, ["session": "nope"]))
                #expect(unknownSession.status == 400)
                #expect(try unknownSession.object()["field"] as? String == "session")
                let badTTL = try await client.post("/containers", json: Self.sleeper(fixture, ["ttl_seconds": 0]))
                #expect(badTTL.status == 400)
                #expect(try badTTL.object()["field"] as? String == "ttl_seconds")
                #expect(try await fixture.labelledContainers().isEmpty, "nothing reached the engine")
            }
        }
    }

    // MARK: - Helpers

    static func sleeper(_ fixture: EngineFixture, _ extra: [String: Any]) -> [String: Any] {
        ["image": TestEngines.baseImage, "command": ["sleep", "3600"], "labels": fixture.labels]
            .merging(extra) { $1 }
    }

    static func parseDate(_ text: String) -> Date? {
        try? Date(text, strategy: .iso8601)
    }
}

/// A private `--state-dir`, removed afterwards.
final class StateDirectory: Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "ociman-state-\(UUID().uuidString)"
    }

    var arguments: [String] { ["--state-dir", path, "--reap-interval", "1"] }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

extension OcimandClient {
    fileprivate func runSleeper(_ fixture: EngineFixture, extra: [String: Any]) async throws -> String {
        let response = try await post("/containers", json: ReaperTests.sleeper(fixture, extra))
        guard response.status == 201, let id = try response.object()["id"] as? String else {
            throw TestSupportError("POST /containers answered \(response.status): \(response.text)")
        }
        return id
    }

    fileprivate func openSession(lease: Int) async throws -> String {
        let response = try await post("/sessions", json: ["lease_seconds": lease])
        guard response.status == 201, let id = try response.object()["id"] as? String else {
            throw TestSupportError("POST /sessions answered \(response.status): \(response.text)")
        }
        return id
    }
}

extension EngineFixture {
    /// A running busybox made straight on the engine with this fixture's labels plus `extraLabels`.
    /// `start: false` for a container the reaper may remove at once: a pass between the create and
    /// the start would fail the start ("marked for removal").
    fileprivate func createDirectly(extraLabels: [String: String], start: Bool = true) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: [
            "Image": TestEngines.baseImage, "Cmd": ["sleep", "3600"],
            "Labels": labels.merging(extraLabels) { $1 },
        ])
        let created = try await client.send(
            EngineRequest(.POST, "/containers/create", body: .bytes(contentType: "application/json", [UInt8](body))))
        let object = try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any]
        let id = try #require(object?["Id"] as? String)
        if start { _ = try await client.send(EngineRequest(.POST, "/containers/\(id)/start")) }
        return id
    }

    /// Podman's own `exists`: its inspect answers 500 while a removal is under way.
    fileprivate func exists(_ id: String) async throws -> Bool {
        do {
            if engine == "podman" {
                _ = try await client.send(EngineRequest(.GET, "/containers/\(id)/exists", api: .libpod))
            } else {
                _ = try await client.send(EngineRequest(.GET, "/containers/\(id)/json"))
            }
            return true
        } catch EngineError.notFound {
            return false
        }
    }

    func labels(of id: String) async throws -> [String: String] {
        let inspect = try await client.send(EngineRequest(.GET, "/containers/\(id)/json"))
        let object = try JSONSerialization.jsonObject(with: Data(inspect.body)) as? [String: Any]
        return (object?["Config"] as? [String: Any])?["Labels"] as? [String: String] ?? [:]
    }

    /// Polls the engine until the container is gone; fails the test when it outlives `within`.
    func waitUntilGone(_ id: String, within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while try await exists(id) {
            guard ContinuousClock.now < deadline else {
                Issue.record("container \(id.prefix(12)) still exists after \(limit)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
