import Foundation
import InMemoryEngine
import Logging
import Testing

@testable import OcimanCore

/// Issue 15: the engine-neutral logic of pools and events, driven over the in-memory engine.
@Suite("Pools and events: pure logic")
struct PoolAndEventLogicTests {
    static let image = "localhost/busybox:test"

    @Test func identicalSpecificationsHashToTheSameKeyWhateverTheSize() {
        let run = RunSpec(image: Self.image, command: ["sleep", "60"], env: ["A": "1", "B": "2"])
        let same = RunSpec(image: Self.image, command: ["sleep", "60"], env: ["B": "2", "A": "1"])
        #expect(PoolSpec(run: run, size: 1).key == PoolSpec(run: same, size: 9, max: 20).key)
        #expect(PoolSpec(run: run, size: 1).key.hasPrefix("sha256:"))
        var changed = run
        changed.env["A"] = "3"
        #expect(PoolSpec(run: run, size: 1).key != PoolSpec(run: changed, size: 1).key)
    }

    @Test func aWarmUpIsPartOfTheKeyAndAPoolWithoutOneKeepsItsKey() throws {
        let run = RunSpec(image: Self.image, command: ["sleep", "60"])
        let warm = PoolWarmUp(command: ["true"])
        let plain = PoolSpec(run: run, size: 1).key
        #expect(PoolSpec(run: run, size: 1, warmUp: warm).key != plain)
        #expect(PoolSpec(run: run, size: 1, warmUp: warm).key == PoolSpec(run: run, size: 3, warmUp: PoolWarmUp(command: ["true"])).key)
        #expect(PoolSpec(run: run, size: 1, warmUp: warm).key != PoolSpec(run: run, size: 1, warmUp: PoolWarmUp(command: ["false"])).key)
        #expect(
            PoolSpec(run: run, size: 1, warmUp: warm).key
                != PoolSpec(run: run, size: 1, warmUp: PoolWarmUp(command: ["true"], timeoutSeconds: 5)).key)
        // The key as it was computed before warm-ups: pools in existing state files keep theirs.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var hasher = SegmentHasher()
        hasher.push("ociman-pool-v1")
        hasher.push(Array(try encoder.encode(run)))
        let before = "sha256:" + hasher.finalize().hex
        #expect(plain == before)
    }

    @Test func eventFiltersMatchKindsContainersAndLabels() {
        let event = EngineEvent(
            kind: .die, id: "0123456789abcdef0123", name: "db", exitCode: 3, labels: ["role": "db"], timeNano: 1)
        #expect(EventFilter().matches(event))
        #expect(EventFilter(kinds: [.die]).matches(event))
        #expect(!EventFilter(kinds: [.start]).matches(event))
        #expect(EventFilter(containers: ["db"]).matches(event))
        #expect(EventFilter(containers: ["0123456789ab"]).matches(event))
        #expect(!EventFilter(containers: ["0123"]).matches(event))  // too short a prefix to be an id
        #expect(EventFilter(labels: ["role", "role=db"]).matches(event))
        #expect(!EventFilter(labels: ["role=web"]).matches(event))
        let image = EngineEvent(kind: .tag, id: "sha256:1", name: "localhost/x:1", timeNano: 1)
        #expect(!EventFilter(labels: ["role"]).matches(image))
        #expect(EventFilter(kinds: [.die, .destroy]).containersOnly)
        #expect(!EventFilter(kinds: [.die, .tag]).containersOnly)
    }

    @Test func labelFiltersAreTheEngines() {
        let labels = ["role": "db", "empty": "", "url": "a=b"]
        #expect(LabelFilter.matches("role", labels))
        #expect(LabelFilter.matches("role=db", labels))
        #expect(!LabelFilter.matches("role=web", labels))
        #expect(!LabelFilter.matches("role=", labels))
        #expect(LabelFilter.matches("empty=", labels))
        #expect(LabelFilter.matches("url=a=b", labels))
        #expect(!LabelFilter.matches("missing", labels))
    }

    @Test func aQuietStreamYieldsHeartbeatsAndThenItsElements() async throws {
        let (upstream, sink) = AsyncThrowingStream.makeStream(of: Int.self)
        var items = AsyncThrowingStream.withHeartbeats(upstream, every: .milliseconds(20)).makeAsyncIterator()
        guard case .heartbeat = try await items.next() else { Issue.record("expected a heartbeat"); return }
        sink.yield(7)
        var got: Int?
        while got == nil {
            if case .element(let value) = try await items.next() { got = value }
        }
        #expect(got == 7)
        sink.finish()
        while let item = try await items.next() {
            guard case .heartbeat = item else { Issue.record("unexpected \(item)"); return }
        }
    }

    @Test func claimsHandEachMemberOutOnceAndDeleteRemovesTheRest() async throws {
        let engine = InMemoryEngine()
        let runtime = Runtime(engine: engine, logger: Logger(label: "test"))
        let pools = PoolManager(runtime: runtime, store: runtime.pools, logger: Logger(label: "test"))
        let spec = PoolSpec(run: RunSpec(image: Self.image, command: ["sleep", "60"]), size: 3, max: 6, bootConcurrency: 3)
        _ = try await pools.put("p", spec)
        var claimed: [String] = []
        for _ in 0..<5 {
            guard case .claimed(let container) = try await pools.claim("p", PoolClaimOptions(timeout: .seconds(5))) else {
                Issue.record("no member")
                return
            }
            #expect(container.labels[ManagedLabels.pool] == "p")
            claimed.append(container.id)
        }
        #expect(Set(claimed).count == 5)
        #expect(try await pools.status("p").claimed == 5)
        try await pools.delete("p")
        let left = try await runtime.listContainers(labels: [ManagedLabels.pool + "=p"], name: nil).map(\.id)
        #expect(Set(left) == Set(claimed))
        await #expect(throws: OcimanError.self) { try await pools.status("p") }
    }

    @Test func aPoolRefusesNamesSessionsAndSizesBeyondItsMaximum() async throws {
        let runtime = Runtime(engine: InMemoryEngine(), logger: Logger(label: "test"))
        let pools = PoolManager(runtime: runtime, store: runtime.pools, logger: Logger(label: "test"))
        for spec in [
            PoolSpec(run: RunSpec(image: Self.image, name: "fixed"), size: 1),
            PoolSpec(run: RunSpec(image: Self.image, ttlSeconds: 5), size: 1),
            PoolSpec(run: RunSpec(image: Self.image), size: 3, max: 2),
            PoolSpec(run: RunSpec(image: Self.image), size: 257, max: 256),
        ] {
            await #expect(throws: OcimanError.self) { try await pools.put("p", spec) }
        }
    }
}
