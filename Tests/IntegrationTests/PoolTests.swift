import Foundation
import OcimanTestSupport
import Testing

/// Issue 15 items 3 and 4: warm pools hand out ready members once each, replace them in the
/// background, survive a restart and leave nothing behind when deleted.
@Suite("Warm pools against real engines")
struct PoolTests {
    @Test("50 concurrent claims on a pool of 10 get 50 distinct running containers", arguments: TestEngines.available)
    func concurrentClaimsAreDistinct(engine: String) async throws {
        try await Self.withReadyPool(engine, size: 10, max: 20, concurrency: 4) { fixture, pool, client in
            let ids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let answer = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 120])
                        guard answer.status == 201, let id = try answer.object()["id"] as? String else {
                            throw TestSupportError("claim answered \(answer.status): \(answer.text)")
                        }
                        #expect(try answer.object()["state"].flatMap { ($0 as? [String: Any])?["running"] as? Bool } == true)
                        return id
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(ids.count == 50)
            #expect(Set(ids).count == 50)
            let status = try await client.get("/pools/\(pool)").object()
            #expect(status["claimed"] as? Int == 50)
            #expect(try await client.delete("/pools/\(pool)").status == 204)
        }
    }

    @Test("a member that dies while waiting is replaced and never handed out", arguments: TestEngines.available)
    func deadMemberIsReplaced(engine: String) async throws {
        try await Self.withReadyPool(engine, size: 2, max: 2) { fixture, pool, client in
            let members = try await fixture.poolMembers(pool)
            #expect(members.count == 2)
            let victim = try #require(members.first)
            try CLI.run(engine, ["kill", victim])
            // Claimed at once, before or after ocimand saw the death: never the dead one.
            var claimed: [String] = []
            for _ in 0..<2 {
                let answer = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 60])
                #expect(answer.status == 201, "\(answer.text)")
                claimed.append(try #require(try answer.object()["id"] as? String))
            }
            #expect(!claimed.contains(victim))
            try await client.waitForReady(pool, count: 2)
            try await fixture.waitUntilGone(victim, within: .seconds(10))
            #expect(try await client.delete("/pools/\(pool)").status == 204)
        }
    }

    @Test("a restart keeps the pool and its ready members", arguments: TestEngines.available)
    func restartKeepsPool(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let pool = "p\(fixture.runID)"
        let state = try StateDirectory()
        try await fixture.withCleanup {
            let (key, before) = try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let key = try await client.putPool(pool, Self.spec(fixture, size: 2, max: 2))
                try await client.waitForReady(pool, count: 2)
                return (key, Set(try await fixture.poolMembers(pool)))
            }
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let status = try await client.get("/pools/\(pool)")
                #expect(status.status == 200)
                #expect(try status.object()["key"] as? String == key)
                #expect(try status.object()["ready"] as? Int == 2)
                let claim = try await client.post("/pools/\(pool)/claim", json: [:])
                #expect(claim.status == 201)
                #expect(before.contains(try #require(try claim.object()["id"] as? String)))
                #expect(try await client.delete("/pools/\(pool)").status == 204)
            }
        }
    }

    @Test("after SIGKILL mid-boot, the next start keeps claimed and ready members and removes the booting ones", arguments: TestEngines.available)
    func killMidBoot(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let pool = "p\(fixture.runID)"
        let state = try StateDirectory()
        try await fixture.withCleanup {
            let first = try await OcimandProcess.start(engine: engine, arguments: state.arguments)
            let client = OcimandClient(baseURL: first.baseURL)
            // One boot at a time, so replacements are still booting when the process dies.
            try await client.putPool(pool, Self.spec(fixture, size: 6, max: 8, concurrency: 1))
            try await client.waitForReady(pool, count: 2)
            var claimed: Set<String> = []
            for _ in 0..<2 {
                let claim = try await client.post("/pools/\(pool)/claim", json: [:])
                claimed.insert(try #require(try claim.object()["id"] as? String, "\(claim.text)"))
            }
            kill(first.processIdentifier, SIGKILL)
            first.stop()
            // What the killed process left: claimed members, the ready ones its state file lists,
            // and the one it was booting, unless the kill came before that boot's create.
            let left = Set(try await fixture.poolMembers(pool))
            let ready = try Self.readyMembers(pool, in: state, engine: engine)
            #expect(claimed.isSubset(of: left) && ready.isSubset(of: left))
            #expect(left.subtracting(claimed).subtracting(ready).count <= 1)
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let status = try await client.get("/pools/\(pool)").object()
                #expect(status["claimed"] as? Int == 2)
                // Of what the killed process left, only the claimed and the ready remain.
                #expect(Set(try await fixture.poolMembers(pool)).intersection(left) == claimed.union(ready))
                let next = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 60])
                let nextID = try #require(try next.object()["id"] as? String, "\(next.text)")
                #expect(!claimed.contains(nextID))
                #expect(try await client.delete("/pools/\(pool)").status == 204)
                #expect(Set(try await fixture.poolMembers(pool)) == claimed.union([nextID]))
            }
        }
    }

    @Test("deleting a pool removes every member not handed out, booting ones too", arguments: TestEngines.available)
    func deleteLeavesNothing(engine: String) async throws {
        try await Self.withReadyPool(engine, size: 4, max: 4, ready: 1) { fixture, pool, client in
            let claim = try await client.post("/pools/\(pool)/claim", json: [:])
            let claimed = try #require(try claim.object()["id"] as? String)
            #expect(try await client.delete("/pools/\(pool)").status == 204)
            #expect(try await fixture.poolMembers(pool) == [claimed])
            #expect(try await client.get("/pools/\(pool)").status == 404)
            #expect(try await client.delete("/containers/\(claimed)?force=true").status == 204)
            #expect(try await fixture.poolMembers(pool).isEmpty)
        }
    }

    @Test("a released member is removed in the background; a second release is a 404", arguments: TestEngines.available)
    func releaseRemovesMember(engine: String) async throws {
        try await Self.withPoolName(engine) { fixture, pool, client in
            try await client.putPool(pool, Self.spec(fixture, size: 1, max: 1))
            let claim = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 60])
            let id = try #require(try claim.object()["id"] as? String)
            #expect(try await client.delete("/pools/\(pool)/members/\(id)").status == 202)
            try await fixture.waitUntilGone(id, within: .seconds(10))
            #expect(try await client.delete("/pools/\(pool)/members/\(id)").status == 404)
            let unclaimed = try await fixture.startBusybox(["sleep", "60"])
            #expect(try await client.delete("/pools/\(pool)/members/\(unclaimed)").status == 404)
            #expect(try await client.delete("/pools/\(pool)").status == 204)
        }
    }

    @Test("members released just before SIGTERM are removed before ocimand exits", arguments: TestEngines.available)
    func releasesFinishOnShutdown(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        let pool = "p\(fixture.runID)"
        try await fixture.withCleanup {
            // More releases than are removed at once, so some are still queued at the SIGTERM.
            let released = try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                try await client.putPool(pool, Self.spec(fixture, size: 16, max: 16, concurrency: 4))
                try await client.waitForReady(pool, count: 16)
                var ids: [String] = []
                for _ in 0..<16 {
                    let claim = try await client.post("/pools/\(pool)/claim", json: [:])
                    ids.append(try #require(try claim.object()["id"] as? String, "\(claim.text)"))
                }
                for id in ids { #expect(try await client.delete("/pools/\(pool)/members/\(id)").status == 202) }
                return Set(ids)
            }
            #expect(Set(try await fixture.poolMembers(pool)).isDisjoint(with: released))
        }
    }

    @Test("identical specifications share a key; a changed one drains the old members", arguments: TestEngines.available)
    func keysAndDrain(engine: String) async throws {
        try await Self.withPoolName(engine) { fixture, pool, client in
            let key = try await client.putPool(pool, Self.spec(fixture, size: 1, max: 1))
            #expect(try await client.putPool(pool + "b", Self.spec(fixture, size: 0, max: 1)) == key)
            #expect(try await client.putPool(pool, Self.spec(fixture, size: 1, max: 1)) == key)
            try await client.waitForReady(pool, count: 1)
            let old = try await fixture.poolMembers(pool)
            var changed = Self.spec(fixture, size: 1, max: 1)
            changed["run"] = (changed["run"] as! [String: Any]).merging(["env": ["CHANGED": "1"]]) { $1 }
            #expect(try await client.putPool(pool, changed) != key)
            for id in old { try await fixture.waitUntilGone(id, within: .seconds(10)) }
            try await client.waitForReady(pool, count: 1)
            let claim = try await client.post("/pools/\(pool)/claim", json: [:])
            let id = try #require(try claim.object()["id"] as? String)
            let env = try await client.post("/containers/\(id)/exec", json: ["command": ["sh", "-c", "echo $CHANGED"]])
            #expect(try env.object()["stdout"] as? String == "1\n")
            for name in [pool, pool + "b"] { #expect(try await client.delete("/pools/\(name)").status == 204) }
        }
    }

    @Test("a claim waits for a member to boot, then answers 503 with Retry-After", arguments: TestEngines.available)
    func emptyPoolWaitsThen503(engine: String) async throws {
        try await Self.withPoolName(engine) { fixture, pool, client in
            try await client.putPool(pool, Self.spec(fixture, size: 0, max: 1))
            let booted = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 60])
            #expect(booted.status == 201, "\(booted.text)")
            var never = Self.spec(fixture, size: 0, max: 1)
            never["run"] = (never["run"] as! [String: Any]).merging([
                "wait": ["timeout_seconds": 30, "log": ["pattern": "never printed"]]
            ]) { $1 }
            try await client.putPool(pool + "n", never)
            let refused = try await client.post("/pools/\(pool)n/claim", json: ["timeout_seconds": 1])
            #expect(refused.status == 503)
            #expect(refused.header("Content-Type")?.hasPrefix("application/problem+json") == true)
            #expect(Int(refused.header("Retry-After") ?? "") ?? 0 >= 1)
            #expect(try await client.post("/pools/nosuchpool\(fixture.runID)/claim", json: [:]).status == 404)
            for name in [pool, pool + "n"] { #expect(try await client.delete("/pools/\(name)").status == 204) }
        }
    }

    @Test("a claim's session and time-to-live apply to the claimed member; metrics count the pool", arguments: TestEngines.available)
    func claimLeasesAndMetrics(engine: String) async throws {
        try await Self.withReadyPool(engine, size: 2, max: 2) { fixture, pool, client in
            let session = try #require(try await client.post("/sessions", json: ["lease_seconds": 60]).object()["id"] as? String)
            let bySession = try #require(
                try await client.post("/pools/\(pool)/claim", json: ["session": session, "name": "claimed-\(fixture.runID)"])
                    .object())
            #expect(bySession["name"] as? String == "claimed-\(fixture.runID)")
            let byTTL = try #require(try await client.post("/pools/\(pool)/claim", json: ["ttl_seconds": 1]).object()["id"] as? String)
            try await fixture.waitUntilGone(byTTL, within: .seconds(10))
            #expect(try await client.delete("/sessions/\(session)").status == 200)
            try await fixture.waitUntilGone(try #require(bySession["id"] as? String), within: .seconds(10))
            let metrics = try await client.get("/metrics").text
            #expect(metrics.contains("ociman_pool_members{pool=\"\(pool)\",state=\"ready\"}")
                || metrics.contains("ociman_pool_members{state=\"ready\",pool=\"\(pool)\"}"))
            #expect(metrics.contains("ociman_pool_claims_total"))
            #expect(metrics.contains("ociman_pool_boot_seconds"))
            #expect(try await client.delete("/pools/\(pool)").status == 204)
        }
    }

    @Test("a claim's labels show in inspect and list and match list's label filter; ociman's own keys are refused", arguments: TestEngines.available)
    func claimLabels(engine: String) async throws {
        try await Self.withReadyPool(engine, size: 2, max: 2) { fixture, pool, client in
            let tag = "ociman.test.claimer"
            let refused = try await client.post("/pools/\(pool)/claim", json: ["labels": ["ociman.session": "x"]])
            #expect(refused.status == 400, "\(refused.text)")
            #expect(try refused.object()["detail"].map { "\($0)" }?.contains("ociman.session") == true)
            let claim = try await client.post("/pools/\(pool)/claim", json: ["labels": [tag: fixture.runID]])
            let claimed = try claim.object()
            let id = try #require(claimed["id"] as? String, "\(claim.text)")
            #expect((claimed["labels"] as? [String: String])?[tag] == fixture.runID)
            let inspected = try await client.get("/containers/\(id)").object()
            #expect((inspected["labels"] as? [String: String])?[tag] == fixture.runID)
            // The filter finds the claimed member and nothing else: not the pool's other member.
            for filter in ["\(tag)=\(fixture.runID)", tag] {
                let listed = try await client.get("/containers?label=\(filter)").array()
                let ids = listed.compactMap { $0["id"] as? String }
                #expect(ids == [id], "label=\(filter): \(ids)")
                #expect((listed.first?["labels"] as? [String: String])?[tag] == fixture.runID)
            }
            #expect(try await client.get("/containers?label=\(tag)=other").array().isEmpty)
            // Labels the engine has still filter as before.
            let byPool = try await client.get("/containers?label=ociman.pool=\(pool)").array()
            #expect(byPool.contains { $0["id"] as? String == id })
            #expect(try await client.delete("/pools/\(pool)").status == 204)
        }
    }

    @Test("a pool of a committed seed snapshot hands out already-seeded members", arguments: TestEngines.available)
    func snapshotPool(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        let pool = "p\(fixture.runID)"
        let snapshot = "localhost/ociman-seed-\(fixture.runID):1"
        try await fixture.withCleanup(images: [snapshot]) {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                let seed = try await client.post("/containers", json: [
                    "image": TestEngines.baseImage, "command": ["sleep", "3600"], "labels": fixture.labels,
                ])
                let seedID = try #require(try seed.object()["id"] as? String)
                _ = try await client.post("/containers/\(seedID)/exec", json: ["command": ["sh", "-c", "echo seeded > /seed"]])
                #expect(try await client.post("/containers/\(seedID)/commit", json: ["reference": snapshot]).status == 201)
                var spec = Self.spec(fixture, size: 1, max: 1)
                spec["run"] = (spec["run"] as! [String: Any]).merging(["image": snapshot]) { $1 }
                try await client.putPool(pool, spec)
                let claim = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 60])
                let id = try #require(try claim.object()["id"] as? String)
                let read = try await client.post("/containers/\(id)/exec", json: ["command": ["cat", "/seed"]])
                #expect(try read.object()["stdout"] as? String == "seeded\n")
                #expect(try await client.delete("/pools/\(pool)").status == 204)
            }
        }
    }

    @Test("a warm-up runs in each member before it is handed out; a member whose warm-up fails is removed", arguments: TestEngines.available)
    func warmUp(engine: String) async throws {
        try await Self.withPoolName(engine) { fixture, pool, client in
            let plainKey = try await client.putPool(pool + "k", Self.spec(fixture, size: 0, max: 1))
            // A claim made at once waits for the first member: handed out before its warm-up
            // ended, it would not have the file yet (its wait passes in milliseconds).
            var warmed = Self.spec(fixture, size: 1, max: 1)
            warmed["warm_up"] = ["command": ["sh", "-c", "sleep 1; echo warm > /tmp/warmed"], "timeout_seconds": 30]
            #expect(try await client.putPool(pool, warmed) != plainKey)
            let claim = try await client.post("/pools/\(pool)/claim", json: ["timeout_seconds": 60])
            let id = try #require(try claim.object()["id"] as? String, "\(claim.text)")
            let read = try await client.post("/containers/\(id)/exec", json: ["command": ["cat", "/tmp/warmed"]])
            #expect(try read.object()["stdout"] as? String == "warm\n", "\(read.text)")

            var failing = Self.spec(fixture, size: 1, max: 1)
            failing["warm_up"] = ["command": ["sh", "-c", "echo too cold >&2; exit 3"]]
            try await client.putPool(pool + "f", failing)
            let refused = try await client.post("/pools/\(pool)f/claim", json: ["timeout_seconds": 3])
            #expect(refused.status == 503, "\(refused.text)")
            let detail = try refused.object()["detail"] as? String ?? ""
            #expect(detail.contains("warm-up exited with code 3"), "\(detail)")
            #expect(detail.contains("too cold"), "\(detail)")
            // The failed member, named in the detail, is removed by the pool itself.
            let failed = try #require(
                detail.firstMatch(of: /in container ([0-9a-f]{12,64})/).map { String($0.1) }, "\(detail)")
            try await fixture.waitUntilGone(failed, within: .seconds(10))

            // Deleting a pool whose member is still warming up leaves nothing behind.
            var stuck = Self.spec(fixture, size: 1, max: 1)
            stuck["warm_up"] = ["command": ["sleep", "600"], "timeout_seconds": 3600]
            try await client.putPool(pool + "s", stuck)
            let warming = ContinuousClock.now + .seconds(30)
            while try await fixture.poolMembers(pool + "s").isEmpty, ContinuousClock.now < warming {
                try await Task.sleep(for: .milliseconds(100))
            }
            let member = try #require(try await fixture.poolMembers(pool + "s").first, "no member started warming up")
            try await Task.sleep(for: .milliseconds(500))
            #expect(try await client.get("/pools/\(pool)s").object()["ready"] as? Int == 0)
            #expect(try await client.delete("/pools/\(pool)s").status == 204)
            try await fixture.waitUntilGone(member, within: .seconds(10))
            for name in [pool, pool + "f", pool + "k"] { #expect(try await client.delete("/pools/\(name)").status == 204) }
        }
    }

    @Test("bad pool specifications are 400 problems", arguments: TestEngines.available)
    func badSpecs(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let state = try StateDirectory()
        try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
            let base = Self.spec(fixture, size: 1, max: 1)
            let run = base["run"] as! [String: Any]
            let bad: [[String: Any]] = [
                base.merging(["size": 3, "max": 2]) { $1 },
                base.merging(["size": 257, "max": 256]) { $1 },
                base.merging(["run": run.merging(["name": "fixed"]) { $1 }]) { $1 },
                base.merging(["run": run.merging(["ttl_seconds": 5]) { $1 }]) { $1 },
                base.merging(["run": run.merging(["image": "UPPER/case"]) { $1 }]) { $1 },
                base.merging(["warm_up": ["command": [] as [String]]]) { $1 },
                base.merging(["warm_up": ["command": ["sh", "-c", "true\u{0}"]]]) { $1 },
                base.merging(["warm_up": ["command": ["true"], "timeout_seconds": 0]]) { $1 },
                base.merging(["warm_up": ["command": ["true"], "timeout_seconds": 3601]]) { $1 },
                base.merging(["warm_up": ["timeout_seconds": 5]]) { $1 },
            ]
            for body in bad {
                let answer = try await client.request("PUT", "/pools/bad\(fixture.runID)", json: body)
                #expect(answer.status == 400, "\(body): \(answer.text)")
            }
            #expect(try await client.get("/pools/bad\(fixture.runID)").status == 404)
        }
    }

    /// The ready members a pool's state file lists (`pools-<engine>.json` in the state directory).
    static func readyMembers(_ pool: String, in state: StateDirectory, engine: String) throws -> Set<String> {
        let file = "\(state.path)/pools-\(TestEngines.backend(for: engine)).json"
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any]
        let pools = saved?["pools"] as? [String: Any]
        let stored = pools?[pool] as? [String: Any]
        return Set(try #require(stored?["ready"] as? [String], "no ready list for \(pool) in \(file)"))
    }

    /// Runs `body` with an ocimand (its own state directory) whose pool of busybox servers has
    /// `ready` members (all `size` unless given); whatever the test made is removed afterwards.
    static func withReadyPool(
        _ engine: String, size: Int, max: Int, concurrency: Int = 2, ready: Int? = nil,
        _ body: (EngineFixture, String, OcimandClient) async throws -> Void
    ) async throws {
        try await withPoolName(engine) { fixture, pool, client in
            try await client.putPool(pool, spec(fixture, size: size, max: max, concurrency: concurrency))
            try await client.waitForReady(pool, count: ready ?? size)
            try await body(fixture, pool, client)
        }
    }

    /// Runs `body` with an ocimand (its own state directory) and a pool name of the test's own;
    /// whatever the test made is removed afterwards.
    static func withPoolName(
        _ engine: String, _ body: (EngineFixture, String, OcimandClient) async throws -> Void
    ) async throws {
        let fixture = EngineFixture(engine: engine)
        let pool = "p\(fixture.runID)"
        let state = try StateDirectory()
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: state.arguments) { _, client in
                try await body(fixture, pool, client)
            }
        }
    }

    /// A busybox server that is ready once its port answers.
    static func spec(_ fixture: EngineFixture, size: Int, max: Int, concurrency: Int = 2) -> [String: Any] {
        [
            "size": size, "max": max, "boot_concurrency": concurrency,
            "run": [
                "image": TestEngines.baseImage,
                "command": ["httpd", "-f", "-p", "8080"],
                "labels": fixture.labels,
                "publish": [["container_port": 8080, "host_ip": "127.0.0.1"]],
                "wait": ["timeout_seconds": 30, "tcp_port": 8080],
            ] as [String: Any],
        ]
    }
}

extension OcimandClient {
    /// Puts the pool and answers its key.
    @discardableResult
    func putPool(_ name: String, _ spec: [String: Any]) async throws -> String {
        let answer = try await request("PUT", "/pools/\(name)", json: spec)
        guard answer.status == 200, let key = try answer.object()["key"] as? String else {
            throw TestSupportError("PUT /pools/\(name) answered \(answer.status): \(answer.text)")
        }
        return key
    }

    func waitForReady(_ pool: String, count: Int, within limit: Duration = .seconds(90)) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await get("/pools/\(pool)").object()["ready"] as? Int ?? 0 >= count { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("pool \(pool) did not reach \(count) ready members within \(limit)")
    }
}

extension EngineFixture {
    /// Containers labelled as members of `pool` (claimed ones too).
    func poolMembers(_ pool: String) async throws -> [String] {
        try await labelledContainers(alsoLabelled: ["ociman.pool=\(pool)"])
    }
}
