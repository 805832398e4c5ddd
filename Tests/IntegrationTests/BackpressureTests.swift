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
                // The log path warmed up before the baseline, by a follow that is closed at once: a
                // `tail` request would not do, Podman reads a log that is still growing to its end.
                let warmUp = try StalledReader(
                    port: server.port, request: StalledReader.request("GET", "/containers/\(id)/logs?follow=true"))
                #expect(try warmUp.readHead().hasPrefix("HTTP/1.1 200"))
                warmUp.close()
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

extension BackpressureTests {
    /// 30 MB of stdin a request: the JSON's input member streams to a spool, not into memory.
    static let bigStdin = String(repeating: "0123456789abcde\n", count: 30_000_000 / 16)

    @Test("20 concurrent 30 MB exec bodies: bounded memory, every byte delivered", arguments: TestEngines.available)
    func concurrentLargeExecBodies(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            let id = try await fixture.startBusybox(["sleep", "3600"])
            try await withOcimand(engine: engine) { server, client in
                let body = try JSONSerialization.data(withJSONObject: ["command": ["wc", "-c"], "stdin": Self.bigStdin])
                let (peak, answers) = try await Self.sendConcurrently(20, "/containers/\(id)/exec", body, client, server)
                #expect(peak <= 200 << 20, "peak RSS \(peak >> 20) MiB")
                for answer in answers {
                    #expect(answer.status == 200)
                    #expect(try answer.object()["stdout"] as? String == "30000000\n")
                }
            }
        }
    }

    @Test("20 concurrent 30 MB exec bodies to a missing container: 404 each, bounded memory", arguments: TestEngines.available)
    func largeExecBodiesToMissingContainer(engine: String) async throws {
        try await withOcimand(engine: engine) { server, client in
            let body = try JSONSerialization.data(withJSONObject: ["command": ["wc", "-c"], "stdin": Self.bigStdin])
            let (peak, answers) = try await Self.sendConcurrently(20, "/containers/ociman-no-such-container/exec", body, client, server)
            #expect(peak <= 100 << 20, "peak RSS \(peak >> 20) MiB")
            #expect(answers.allSatisfy { $0.status == 404 }, "\(answers.map(\.status))")
        }
    }

    /// Sends `count` copies of `body` at once; the highest RSS seen while they run, and the answers.
    static func sendConcurrently(
        _ count: Int, _ path: String, _ body: Data, _ client: OcimandClient, _ server: OcimandProcess
    ) async throws -> (Int, [OcimandClient.Response]) {
        let sampling = Task {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, residentBytes(of: server.processIdentifier) ?? 0)
                try? await Task.sleep(for: .milliseconds(20))
            }
            return peak
        }
        let answers = try await withThrowingTaskGroup(of: OcimandClient.Response.self) { group in
            for _ in 0..<count {
                group.addTask {
                    try await client.request("POST", path, body: body, headers: ["Content-Type": "application/json"], timeout: 300)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        sampling.cancel()
        return (await sampling.value, answers)
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
/// names the container (if given): read from /proc, since a busy engine answers `top` slowly.
func hostProcesses(named name: String, inContainer id: String? = nil, argument: String? = nil) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry),
            let comm = try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8),
            comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
            let cgroup = try? String(contentsOfFile: "/proc/\(entry)/cgroup", encoding: .utf8),
            id.map({ cgroup.contains($0) }) ?? true
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
