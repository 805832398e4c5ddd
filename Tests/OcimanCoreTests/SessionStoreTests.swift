import Foundation
import Glibc
import Synchronization
import Testing

@testable import OcimanCore

/// A clock the test moves by hand.
private final class ManualClock: Sendable {
    private let value = Mutex<Double>(1_700_000_000)
    var now: Double { value.withLock { $0 } }
    func advance(_ seconds: Double) { value.withLock { $0 += seconds } }
    var function: @Sendable () -> Double { { [self] in now } }
}

private func problem(_ body: () throws(OcimanError) -> Void) -> OcimanError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

@Suite("Session store: leases, expiry, persistence")
struct SessionStoreTests {
    // MARK: Expiry math

    @Test func createSetsExpiryLeaseSecondsFromNow() throws {
        let clock = ManualClock()
        let store = SessionStore(clock: clock.function)
        let session = try store.create(leaseSeconds: 3)
        #expect(session.expiresAt == clock.now + 3)
        #expect(session.id.count == 48 && session.id.allSatisfy(\.isHexDigit))
        #expect(try store.isActive(session.id))
        clock.advance(2.999)
        #expect(try store.isActive(session.id))
        clock.advance(0.001)
        #expect(try !store.isActive(session.id), "a lease ends exactly at expires_at")
    }

    @Test func renewMovesExpiryToLeaseFromNowEvenWhenShorter() throws {
        let clock = ManualClock()
        let store = SessionStore(clock: clock.function)
        let session = try store.create(leaseSeconds: 600)
        clock.advance(100)
        let longer = try store.renew(session.id, leaseSeconds: 1000)
        #expect(longer.expiresAt == clock.now + 1000)
        let shorter = try store.renew(session.id, leaseSeconds: 5)
        #expect(shorter.expiresAt == clock.now + 5)
        #expect(shorter.id == session.id)
    }

    @Test func renewOfUnknownOrEndedSessionIsNotFound() throws {
        let clock = ManualClock()
        let store = SessionStore(clock: clock.function)
        let session = try store.create(leaseSeconds: 3)
        clock.advance(3)
        for id in [session.id, "nope", ""] {
            let error = problem { () throws(OcimanError) in _ = try store.renew(id, leaseSeconds: 10) }
            guard case .notFound = error else {
                Issue.record("expected notFound for \(id), got \(String(describing: error))")
                continue
            }
        }
    }

    @Test(arguments: [0, -1, 86401, Int.max, Int.min])
    func leaseOutOfRangeIsInvalidNamingTheField(_ lease: Int) throws {
        let store = SessionStore()
        let live = try store.create(leaseSeconds: 10)
        let errors = [
            problem { () throws(OcimanError) in _ = try store.create(leaseSeconds: lease) },
            problem { () throws(OcimanError) in _ = try store.renew(live.id, leaseSeconds: lease) },
        ]
        for error in errors {
            guard case .invalid(let field, let message) = error else {
                Issue.record("expected invalid, got \(String(describing: error))")
                continue
            }
            #expect(field == "lease_seconds")
            #expect(message == "lease_seconds must be between 1 and 86400, not \(lease)")
        }
    }

    @Test(arguments: [1, 86400])
    func leaseBoundsAreAccepted(_ lease: Int) throws {
        _ = try SessionStore().create(leaseSeconds: lease)
    }

    @Test func requireActiveNamesTheSessionField() throws {
        let store = SessionStore()
        let session = try store.create(leaseSeconds: 10)
        try store.requireActive(session.id)
        let error = problem { () throws(OcimanError) in try store.requireActive("abc") }
        guard case .invalid(let field, let message) = error else {
            Issue.record("expected invalid, got \(String(describing: error))")
            return
        }
        #expect(field == "session")
        #expect(message == "unknown or expired session abc")
    }

    @Test func removeAnswersWhetherTheSessionWasLive() throws {
        let clock = ManualClock()
        let store = SessionStore(clock: clock.function)
        let first = try store.create(leaseSeconds: 10)
        let second = try store.create(leaseSeconds: 1)
        #expect(try store.remove(first.id))
        #expect(try !store.isActive(first.id))
        #expect(try !store.remove(first.id))
        clock.advance(1)
        #expect(try !store.remove(second.id))
    }

    // MARK: Reaper verdicts

    @Test func snapshotVerdicts() throws {
        let clock = ManualClock()
        let store = SessionStore(clock: clock.function)
        let live = try store.create(leaseSeconds: 10)
        let expiring = try store.create(leaseSeconds: 1)
        let deleted = try store.create(leaseSeconds: 10)
        try store.remove(deleted.id)
        clock.advance(1)
        let snapshot = try store.snapshot()
        #expect(snapshot.verdict(for: live.id, at: clock.now) == .live)
        #expect(snapshot.verdict(for: expiring.id, at: clock.now) == .ended)
        #expect(snapshot.verdict(for: deleted.id, at: clock.now) == .ended, "issued here, then forgotten")
        let otherStore = try SessionStore().create(leaseSeconds: 10)
        #expect(snapshot.verdict(for: otherStore.id, at: clock.now) == .foreign)
        #expect(snapshot.verdict(for: "my-session", at: clock.now) == .foreign)
        #expect(snapshot.verdict(for: String(live.id.prefix(16)), at: clock.now) == .foreign, "prefix alone is not an id")
    }

    @Test func reaperReasons() throws {
        let clock = ManualClock()
        let store = SessionStore(clock: clock.function)
        let live = try store.create(leaseSeconds: 10)
        let ended = try store.create(leaseSeconds: 10)
        try store.remove(ended.id)
        let foreign = try SessionStore().create(leaseSeconds: 10)
        let snapshot = try store.snapshot()
        let now = clock.now
        let past = String(Int64(now) - 1)
        let future = String(Int64(now) + 60)
        let managed = ["ociman.managed": "true"]
        func reason(_ labels: [String: String], _ sessions: SessionStore.Snapshot? = snapshot) -> Reaper.Reason? {
            Reaper.reason(toRemove: labels, now: now, sessions: sessions)
        }
        #expect(reason(managed) == nil)
        #expect(reason(managed.merging(["ociman.expires-at": past]) { $1 }) == .ttl)
        #expect(reason(managed.merging(["ociman.expires-at": String(Int64(now))]) { $1 }) == .ttl)
        #expect(reason(managed.merging(["ociman.expires-at": future]) { $1 }) == nil)
        #expect(reason(managed.merging(["ociman.expires-at": "soon"]) { $1 }) == nil)
        #expect(reason(managed.merging(["ociman.expires-at": "nan"]) { $1 }) == nil)
        #expect(reason(managed.merging(["ociman.session": live.id]) { $1 }) == nil)
        #expect(reason(managed.merging(["ociman.session": ended.id]) { $1 }) == .session)
        #expect(reason(managed.merging(["ociman.session": foreign.id]) { $1 }) == nil)
        #expect(reason(managed.merging(["ociman.session": ended.id]) { $1 }, nil) == nil, "unreadable state judges no session")
        #expect(reason(managed.merging(["ociman.expires-at": past]) { $1 }, nil) == .ttl)
        // Never without ociman.managed=true, whatever else the labels say.
        for unmanaged in [[:], ["ociman.managed": "false"], ["ociman.managed": "TRUE"]] {
            #expect(reason(unmanaged.merging(["ociman.expires-at": past, "ociman.session": ended.id]) { $1 }) == nil)
        }
    }

    // MARK: Persistence

    @Test func stateSurvivesReopeningTheDirectory() throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let first = try SessionStore(directory: directory.path + "/state", clock: clock.function)
        let session = try first.create(leaseSeconds: 30)
        let owner = try first.snapshot().owner

        let reopened = try SessionStore(directory: directory.path + "/state", clock: clock.function)
        #expect(try reopened.snapshot().owner == owner)
        #expect(try reopened.session(session.id) == session)
        clock.advance(30)
        #expect(try !reopened.isActive(session.id))
        #expect(try reopened.snapshot().verdict(for: session.id, at: clock.now) == .ended)
    }

    @Test func directoryAndFilesAreOwnerOnly() throws {
        let directory = try TemporaryDirectory()
        let state = directory.path + "/a/b"
        let store = try SessionStore(directory: state)
        _ = try store.create(leaseSeconds: 5)
        #expect(try mode(of: state) == 0o700)
        #expect(try mode(of: state + "/sessions.json") == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).sorted() == ["sessions.json", "sessions.lock"])
    }

    @Test func writesReplaceTheFileAtomically() throws {
        let directory = try TemporaryDirectory()
        let store = try SessionStore(directory: directory.path)
        let path = directory.path + "/sessions.json"
        let before = try inode(of: path)
        let session = try store.create(leaseSeconds: 5)
        // A rename installs a new file: readers see the old or the new one, never a torn write.
        #expect(try inode(of: path) != before)
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        let decoded = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        #expect((decoded?["sessions"] as? [String: Int64])?[session.id] == Int64(session.expiresAt * 1000))
        #expect(decoded?["version"] as? Int == 1)
    }

    @Test func leftoverTemporaryFileFromACrashIsIgnored() throws {
        let directory = try TemporaryDirectory()
        let session = try SessionStore(directory: directory.path).create(leaseSeconds: 60)
        try Data("{\"torn".utf8).write(to: URL(fileURLWithPath: directory.path + "/sessions.json.tmp"))
        let reopened = try SessionStore(directory: directory.path)
        #expect(try reopened.isActive(session.id))
        _ = try reopened.create(leaseSeconds: 60)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/sessions.json.tmp"))
    }

    @Test func endedLeasesArePrunedOnTheNextWrite() throws {
        let directory = try TemporaryDirectory()
        let clock = ManualClock()
        let store = try SessionStore(directory: directory.path, clock: clock.function)
        let old = try store.create(leaseSeconds: 1)
        clock.advance(1)
        let new = try store.create(leaseSeconds: 1)
        let text = try String(contentsOfFile: directory.path + "/sessions.json", encoding: .utf8)
        #expect(!text.contains(old.id))
        #expect(text.contains(new.id))
    }

    @Test func corruptStateFileRefusesToOpen() throws {
        let directory = try TemporaryDirectory()
        try Data("not json".utf8).write(to: URL(fileURLWithPath: directory.path + "/sessions.json"))
        do {
            _ = try SessionStore(directory: directory.path)
            Issue.record("opened a corrupt state file")
        } catch {
            guard case .unavailable(let message) = error else {
                Issue.record("expected unavailable, got \(error)")
                return
            }
            #expect(message.contains("move it aside"))
        }
        // Nothing was overwritten.
        #expect(try String(contentsOfFile: directory.path + "/sessions.json", encoding: .utf8) == "not json")
    }

    @Test func storesSharingADirectorySeeEachOthersSessions() throws {
        let directory = try TemporaryDirectory()
        let one = try SessionStore(directory: directory.path)
        let two = try SessionStore(directory: directory.path)
        #expect(try one.snapshot().owner == two.snapshot().owner)
        let session = try one.create(leaseSeconds: 60)
        #expect(try two.isActive(session.id))
        _ = try two.renew(session.id, leaseSeconds: 120)
        #expect(try one.session(session.id)?.expiresAt == two.session(session.id)?.expiresAt)
        #expect(try two.remove(session.id))
        #expect(try !one.isActive(session.id))
        #expect(try one.snapshot().verdict(for: session.id, at: one.now) == .ended)
    }

    @Test func concurrentCreatesInOneDirectoryLoseNothing() async throws {
        let directory = try TemporaryDirectory()
        let stores = try (0..<4).map { _ throws(OcimanError) in try SessionStore(directory: directory.path) }
        let ids = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<40 {
                let store = stores[index % stores.count]
                group.addTask { try store.create(leaseSeconds: 60).id }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let snapshot = try stores[0].snapshot()
        #expect(Set(ids).count == 40)
        #expect(Set(snapshot.expiries.keys) == Set(ids))
    }

    private func mode(of path: String) throws -> mode_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
        return info.st_mode & 0o777
    }

    private func inode(of path: String) throws -> ino_t {
        var info = stat()
        guard stat(path, &info) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
        return info.st_ino
    }
}
