import Foundation
import OcimanTestSupport
import Testing

/// Issue 10: a client that stops reading slows the engine down instead of filling ocimand's
/// memory, and loses nothing once it reads again. Memory is read from /proc while the readers
/// stall; every stream runs in a real container on each engine.
@Suite("Backpressure", .timeLimit(.minutes(10)))
struct BackpressureTests {
    /// How long a reader stalls; `make bench` holds 60 s, the suite 10 s to stay fast.
    static let stall = Duration.seconds(10)
    static let allowedGrowth = 16 << 20

    @Test("a stalled streamed exec keeps memory flat and loses no byte", arguments: TestEngines.available)
    func stalledExec(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let id = try await fixture.startBusybox(["sleep", "3600"])
            // 64 MiB of output, far more than every buffer between the engine and the client.
            let command = ["sh", "-c", "yes ociman-backpressure | head -c 67108864"]
            try await withOcimand(engine: engine) { server, client in
                // Warm up what a first stream allocates once, so growth measures the stall alone.
                _ = try await client.post("/containers/\(id)/exec", json: ["command": ["true"]])
                let baseline = try #require(residentBytes(of: server.processIdentifier))
                let reader = try StalledReader(
                    port: server.port,
                    request: StalledReader.request(
                        "POST", "/containers/\(id)/exec", json: ["command": command], accept: "application/x-ndjson"))
                #expect(try reader.readHead().hasPrefix("HTTP/1.1 200"))
                let peak = try await peakResidentBytes(of: server.processIdentifier, over: Self.stall)
                #expect(peak - baseline <= Self.allowedGrowth, "grew by \(peak - baseline) bytes while stalled")

                // Reading again delivers exactly what the engine itself gives for the command.
                let lines = try ndjsonLines(reader.readChunkedBody())
                reader.close()
                var stdout: [UInt8] = []
                for line in lines where line["type"] as? String == "stdout" {
                    stdout += Array((line["data"] as? String ?? "").utf8)
                }
                #expect(lines.last?["type"] as? String == "exit")
                #expect(lines.last?["exit_code"] as? Int == 0)
                let direct = try await fixture.directExecOutput(id, command)
                #expect(direct.count == 64 << 20)
                #expect(stdout.count == direct.count && stdout == direct, "got \(stdout.count) bytes, the engine \(direct.count)")
            }
        }
    }

    @Test("50 stalled exec streams at once stay under 100 MB", arguments: TestEngines.available)
    func manyStalledExecs(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let id = try await fixture.startBusybox(["sleep", "3600"])
            try await withOcimand(engine: engine) { server, client in
                var readers: [StalledReader] = []
                defer { for reader in readers { reader.close() } }
                for _ in 0..<50 {
                    let reader = try StalledReader(
                        port: server.port,
                        request: StalledReader.request(
                            "POST", "/containers/\(id)/exec", json: ["command": ["yes"]], accept: "application/x-ndjson"))
                    #expect(try reader.readHead().hasPrefix("HTTP/1.1 200"))
                    readers.append(reader)
                }
                let peak = try await peakResidentBytes(of: server.processIdentifier, over: Self.stall)
                #expect(peak <= 100 << 20, "peak RSS \(peak >> 20) MiB with 50 stalled streams")
                for reader in readers { reader.close() }
                readers.removeAll()
                // Every `yes` is ended once its reader is gone.
                let ended = await eventually(timeout: .seconds(20)) { hostProcesses(named: "yes", inContainer: id).isEmpty }
                #expect(ended, "still running: \(hostProcesses(named: "yes", inContainer: id))")
                #expect(try await client.get("/health").status == 200)
            }
        }
    }

    @Test("a stalled follow of fast logs keeps memory flat", arguments: TestEngines.available)
    func stalledLogFollow(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            // As fast as it can, but bounded: the engine keeps every log byte on disk.
            let id = try await fixture.startBusybox(["sh", "-c", "yes ociman-logs | head -c 200000000; exec sleep 3600"])
            try await withOcimand(engine: engine) { server, client in
                _ = try await client.get("/containers/\(id)/logs?tail=1")
                let baseline = try #require(residentBytes(of: server.processIdentifier))
                let reader = try StalledReader(
                    port: server.port, request: StalledReader.request("GET", "/containers/\(id)/logs?follow=true"))
                #expect(try reader.readHead().hasPrefix("HTTP/1.1 200"))
                let peak = try await peakResidentBytes(of: server.processIdentifier, over: Self.stall)
                #expect(peak - baseline <= Self.allowedGrowth, "grew by \(peak - baseline) bytes while stalled")
                reader.close()
                #expect(try await client.get("/health").status == 200)
            }
        }
    }
}

/// The highest resident memory seen, sampled every 100 ms for `duration`.
func peakResidentBytes(of pid: Int32, over duration: Duration) async throws -> Int {
    var peak = 0
    let end = ContinuousClock.now.advanced(by: duration)
    while ContinuousClock.now < end {
        peak = max(peak, try #require(residentBytes(of: pid)))
        try await Task.sleep(for: .milliseconds(100))
    }
    return peak
}

func ndjsonLines(_ body: [UInt8]) throws -> [[String: Any]] {
    try body.split(separator: UInt8(ascii: "\n")).map { line in
        try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
    }
}


/// PIDs of host processes with this command name (and, if given, this argument) whose cgroup
/// names the container: read from /proc, since a busy engine answers `top` slowly.
func hostProcesses(named name: String, inContainer id: String, argument: String? = nil) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry),
            let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
            comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
            let cgroup = try? String(contentsOfFile: "/proc/\(entry)/cgroup", encoding: .utf8),
            cgroup.contains(id)
        else { return nil }
        if let argument {
            let arguments = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(entry)/cmdline"))) ?? Data()
            guard arguments.split(separator: 0).contains(where: { String(decoding: $0, as: UTF8.self) == argument }) else {
                return nil
            }
        }
        return pid
    }
}
