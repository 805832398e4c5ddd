import Foundation
import Testing

@testable import OcimanCore

@Suite("Pool store: the state file and its claims journal")
struct PoolStoreTests {
    static let spec = PoolSpec(run: RunSpec(image: "localhost/busybox:test", command: ["sleep", "60"]), size: 3, max: 6)

    static func claim(_ pool: String = "p", session: String? = nil) -> PoolStore.Claim {
        PoolStore.Claim(pool: pool, session: session, expiresAt: nil, released: nil, labels: ["who": "test"])
    }

    static func journalLines(_ directory: TemporaryDirectory) throws -> [Substring] {
        let text = (try? String(contentsOfFile: directory.subpath("pools-docker.claims"), encoding: .utf8)) ?? ""
        return text.split(separator: "\n")
    }

    @Test func claimsAreJournaledAndComeBackAfterARestart() throws {
        let directory = try TemporaryDirectory()
        do {
            let store = try PoolStore(directory: directory.path, engine: .docker)
            #expect(store.update { $0.pools["p"] = .init(spec: Self.spec, ready: ["a", "b", "c"], claimed: 0) } == nil)
            #expect(store.record("a", Self.claim(session: "s1"), claimed: 1) == nil)
            #expect(store.record("b", Self.claim(), claimed: 2) == nil)
            var released = Self.claim()
            released.released = true
            #expect(store.record("b", released) == nil)
            #expect(store.record("b", nil) == nil)
            #expect(try Self.journalLines(directory).count == 4, "one appended line per change, no rewrite")
        }
        let restarted = try PoolStore(directory: directory.path, engine: .docker)
        let state = restarted.snapshot
        #expect(state.claims == ["a": Self.claim(session: "s1")])
        #expect(state.pools["p"]?.claimed == 2)
        #expect(state.pools["p"]?.ready == ["c"], "claimed members are no longer ready")
        #expect(restarted.labels(of: "a", engineLabels: ["x": "1"]) == ["x": "1", "who": "test", ManagedLabels.session: "s1"])
    }

    @Test func aWarmUpIsKeptAndAStateFileFromBeforeWarmUpsLoads() throws {
        let directory = try TemporaryDirectory()
        var warmed = Self.spec
        warmed.warmUp = PoolWarmUp(command: ["psql", "-c", "select 1"], timeoutSeconds: 9)
        do {
            let store = try PoolStore(directory: directory.path, engine: .docker)
            store.update { $0.pools["w"] = .init(spec: warmed, ready: [], claimed: 0) }
        }
        #expect(try PoolStore(directory: directory.path, engine: .docker).snapshot.pools["w"]?.spec == warmed)
        // The same file as an ocimand without warm-ups wrote it: no warmUp member.
        let file = directory.subpath("pools-docker.json")
        var saved = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
        var pools = try #require(saved["pools"] as? [String: Any])
        var pool = try #require(pools["w"] as? [String: Any])
        var spec = try #require(pool["spec"] as? [String: Any])
        #expect(spec.removeValue(forKey: "warmUp") != nil)
        pool["spec"] = spec
        pools["w"] = pool
        saved["pools"] = pools
        try JSONSerialization.data(withJSONObject: saved).write(to: URL(fileURLWithPath: file))
        #expect(try PoolStore(directory: directory.path, engine: .docker).snapshot.pools["w"]?.spec == Self.spec)
    }

    @Test func aRewriteOfTheStateEmptiesTheJournal() throws {
        let directory = try TemporaryDirectory()
        let store = try PoolStore(directory: directory.path, engine: .docker)
        store.update { $0.pools["p"] = .init(spec: Self.spec, ready: ["a"], claimed: 0) }
        store.record("a", Self.claim(), claimed: 1)
        store.update { $0.pools["p"]?.ready = ["d"] }
        #expect(try Self.journalLines(directory).isEmpty)
        let restarted = try PoolStore(directory: directory.path, engine: .docker)
        #expect(restarted.snapshot == store.snapshot)
        #expect(restarted.snapshot.claims["a"] == Self.claim())
    }

    @Test func theJournalIsFoldedIntoTheStateAtItsLimit() throws {
        let directory = try TemporaryDirectory()
        let store = try PoolStore(directory: directory.path, engine: .docker)
        store.update { $0.pools["p"] = .init(spec: Self.spec, ready: [], claimed: 0) }
        for index in 0...PoolStore.journalLimit {
            store.record("m\(index)", Self.claim(), claimed: index + 1)
        }
        #expect(try Self.journalLines(directory).count < PoolStore.journalLimit)
        let restarted = try PoolStore(directory: directory.path, engine: .docker)
        #expect(restarted.snapshot.claims.count == PoolStore.journalLimit + 1)
        #expect(restarted.snapshot.pools["p"]?.claimed == PoolStore.journalLimit + 1)
    }

    @Test func aTornLastLineIsCutOffAndTheJournalGoesOn() throws {
        let directory = try TemporaryDirectory()
        do {
            let store = try PoolStore(directory: directory.path, engine: .docker)
            store.record("a", Self.claim())
        }
        // A crash in the middle of the next line's write.
        let handle = try #require(FileHandle(forWritingAtPath: directory.subpath("pools-docker.claims")))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"id":"b","claim":{"po"#.utf8))
        try handle.close()

        do {
            let store = try PoolStore(directory: directory.path, engine: .docker)
            #expect(store.snapshot.claims.keys.sorted() == ["a"])
            store.record("c", Self.claim())
        }
        let restarted = try PoolStore(directory: directory.path, engine: .docker)
        #expect(restarted.snapshot.claims.keys.sorted() == ["a", "c"])
    }

    @Test func aDamagedWholeLineStopsTheStart() throws {
        let directory = try TemporaryDirectory()
        try directory.write("pools-docker.claims", "{\"id\":\"a\"}\nnot json\n")
        #expect(throws: OcimanError.self) { try PoolStore(directory: directory.path, engine: .docker) }
    }

    @Test func eachEngineKeepsItsOwnFiles() throws {
        let directory = try TemporaryDirectory()
        try PoolStore(directory: directory.path, engine: .docker).record("a", Self.claim())
        #expect(try PoolStore(directory: directory.path, engine: .podman).snapshot.claims.isEmpty)
        #expect(try PoolStore(directory: directory.path, engine: .docker).snapshot.claims.keys.sorted() == ["a"])
    }
}
