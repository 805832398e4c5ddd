import EngineDriver
import Foundation
import OcimanClient
import OcimanTestSupport
import Synchronization
import Testing

@Suite("Container lifecycle against real engines")
struct ContainerLifecycleTests {
    static let image = TestEngines.baseImage

    // MARK: - The pg-ephemeral flow

    @Test("run, wait on the port, reach it, list, inspect, commit, run the snapshot, stop, remove", arguments: TestEngines.available)
    func ephemeralFlow(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let name = "lc-web-\(fixture.runID)"
        let snapshot = "localhost/ociman-lc-\(fixture.runID):seeded"
        try await fixture.withCleanup(images: [snapshot]) {
            // Through the generated Swift client (OcimanClient), as a Swift user of ociman would.
            try await withOcimand(engine: engine) { server, _ in
                let ociman = server.swiftClient
                let labels = fixture.labels.merging(["org.example.role": "web"]) { $1 }
                let run = try await ociman.runContainer(
                    body: .json(
                        .init(
                            image: Self.image, name: name,
                            // Seed a file, then serve the root directory; httpd only listens after a pause.
                            command: ["sh", "-c", "printf '%s\\n' \"$GREETING\" > /data; sleep 1; exec httpd -f -p 8080"],
                            env: .init(additionalProperties: ["GREETING": "hi"]), labels: .init(additionalProperties: labels),
                            publish: [.init(containerPort: 8080, hostIp: "127.0.0.1")],
                            wait: .init(timeoutSeconds: 60, tcpPort: 8080), ttlSeconds: 3600)))
                let container = try run.created.body.json
                let id = container.id
                #expect(container.name == name)
                #expect(container.image == Self.image)
                #expect(container.state.running && container.state.status == "running")
                #expect(container.state.exitCode == nil && container.state.startedAt != nil)
                let runLabels = container.labels.additionalProperties
                #expect(runLabels["org.example.role"] == "web" && runLabels["ociman.managed"] == "true")
                #expect(runLabels["ociman.created"].flatMap { ISO8601DateFormatter().date(from: $0) } != nil)
                let expiresAt = try #require(runLabels["ociman.expires-at"].flatMap(Double.init))
                #expect(abs(expiresAt - Date().timeIntervalSince1970 - 3600) < 120)
                #expect(container.ports.count == 1)
                let port = try #require(container.ports.first)
                #expect(port.hostIp == "127.0.0.1" && port.containerPort == 8080 && port._protocol == .tcp)
                #expect(container.ipAddress?.isEmpty == false)

                // Ready means the server answers through the published port right away.
                let http = try await HTTPTestConnection.connect(host: "127.0.0.1", port: port.hostPort)
                let page = try await http.request("GET", "/data")
                await http.close()
                #expect(page.status == 200)
                #expect(page.text == "hi\n")

                let listed = try await ociman.listContainers(
                    query: .init(label: ["\(fixture.labelKey)=\(fixture.runID)", "org.example.role"])
                ).ok.body.json
                #expect(listed.map(\.id) == [id])
                let summary = try #require(listed.first)
                #expect(summary.name == name && summary.image == Self.image)
                #expect(summary.state.running)
                #expect(summary.labels.additionalProperties["org.example.role"] == "web")
                #expect(abs(summary.created.timeIntervalSince(container.created)) < 1)
                let wrongValue = try await ociman.listContainers(
                    query: .init(label: ["\(fixture.labelKey)=\(fixture.runID)", "org.example.role=db"])
                ).ok.body.json
                #expect(wrongValue.isEmpty)

                #expect(try await ociman.inspectContainer(path: .init(id: name)).ok.body.json.id == id)
                #expect(try await ociman.inspectContainer(path: .init(id: String(id.prefix(12)))).ok.body.json.name == name)

                let commit = try await ociman.commitContainer(path: .init(id: name), body: .json(.init(reference: snapshot)))
                let committed = try commit.created.body.json
                #expect(committed.reference == snapshot)
                #expect(committed.imageId.hasPrefix("sha256:"))
                // The container's labels carry over to the image.
                let image = try await fixture.client.send(EngineRequest(.GET, "/images/\(EngineRequest.escape(snapshot))/json"))
                let imageLabels = try JSONSerialization.jsonObject(with: Data(image.body)) as? [String: Any]
                let imageConfigLabels = (imageLabels?["Config"] as? [String: Any])?["Labels"] as? [String: String]
                #expect(imageConfigLabels?["org.example.role"] == "web")
                // The expiry is the original container's, not the snapshot's: blanked in the image.
                #expect(imageConfigLabels?["ociman.expires-at"] == "")

                let fromSnapshot = try await ociman.runContainer(
                    body: .json(
                        .init(
                            image: snapshot, command: ["cat", "/data"], labels: .init(additionalProperties: fixture.labels),
                            pullPolicy: .never, wait: .init(timeoutSeconds: 60, log: .init(pattern: "^hi$")))))
                let snapshotLabels = try fromSnapshot.created.body.json.labels.additionalProperties
                #expect(snapshotLabels["org.example.role"] == "web", "inherited from the image")
                #expect(snapshotLabels["ociman.expires-at"] == "", "no inherited expiry")

                _ = try await ociman.stopContainer(path: .init(id: name), query: .init(timeout: 2)).noContent
                _ = try await ociman.stopContainer(path: .init(id: name)).noContent  // already stopped
                let stopped = try await ociman.inspectContainer(path: .init(id: id)).ok.body.json
                #expect(!stopped.state.running)
                #expect(stopped.state.finishedAt != nil)
                _ = try await ociman.removeContainer(path: .init(id: name)).noContent
                let gone = try await ociman.inspectContainer(path: .init(id: id))
                guard case .notFound(let notFound) = gone else { throw TestSupportError("inspect after remove: \(gone)") }
                #expect(try notFound.body.applicationProblemJson.status == 404)
                _ = try await ociman.removeContainer(path: .init(id: id)).notFound
            }
        }
    }

    // MARK: - Every option of run

    @Test("run with every option: entrypoint, env, 64 KiB label, IPv4/IPv6/UDP publish, mounts, workdir, user", arguments: TestEngines.available)
    func everyOption(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let volume = "ociman-lc-\(fixture.runID)"
        let bindDirectory = NSTemporaryDirectory() + "ociman-lc-\(fixture.runID)"
        try FileManager.default.createDirectory(atPath: bindDirectory, withIntermediateDirectories: true)
        try "hello".write(toFile: bindDirectory + "/hello.txt", atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: bindDirectory) }
        try await fixture.withCleanup {
            defer {
                let client = fixture.client
                Task { _ = try? await client.send(EngineRequest(.DELETE, "/volumes/\(volume)", query: [("force", "true")])) }
            }
            try await withOcimand(engine: engine) { _, client in
                let script = """
                    [ "$MULTI" = "$(printf 'first\\nsecond')" ] && e=ok || e=bad
                    grep -q ' /in [^ ]* ro[, ]' /proc/mounts && r=ro || r=rw
                    grep -q ' /scratch tmpfs ' /proc/mounts && t=tmpfs || t=none
                    grep -q ' /vol ' /proc/mounts && v=vol || v=none
                    echo "env=$e uid=$(id -u) pwd=$(pwd) bind=$(cat /in/hello.txt) bindmode=$r scratch=$t volume=$v"
                    exec sleep 300
                    """
                let bigLabel = String(repeating: "v", count: 65_536)
                let run = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "entrypoint": ["sh", "-c"], "command": [script],
                        "env": ["MULTI": "first\nsecond"],
                        "labels": fixture.labels.merging(["big": bigLabel]) { $1 },
                        "publish": [
                            ["container_port": 8080, "host_ip": "127.0.0.1"], ["container_port": 8080, "host_ip": "::1"],
                            ["container_port": 5353, "protocol": "udp"],
                        ],
                        "mounts": [
                            ["type": "bind", "source": bindDirectory, "target": "/in", "read_only": true],
                            ["type": "volume", "source": volume, "target": "/vol"],
                            ["type": "tmpfs", "target": "/scratch"],
                        ],
                        "workdir": "/work", "user": "65534",
                        "wait": [
                            "timeout_seconds": 60,
                            "log": ["pattern": "^env=ok uid=65534 pwd=/work bind=hello bindmode=ro scratch=tmpfs volume=vol$"],
                        ],
                    ])
                #expect(run.status == 201, "\(run.text.prefix(2000))")
                let container = try run.object()
                #expect((container["labels"] as? [String: String])?["big"] == bigLabel)
                let ports = try #require(container["ports"] as? [[String: Any]])
                let tcp = ports.filter { $0["container_port"] as? Int == 8080 && $0["protocol"] as? String == "tcp" }
                #expect(Set(tcp.compactMap { $0["host_ip"] as? String }) == ["127.0.0.1", "::1"], "one entry per address")
                #expect(tcp.allSatisfy { ($0["host_port"] as? Int ?? 0) > 0 })
                let udp = ports.filter { $0["protocol"] as? String == "udp" }
                #expect(!udp.isEmpty && udp.allSatisfy { $0["container_port"] as? Int == 5353 && ($0["host_port"] as? Int ?? 0) > 0 })
                let id = try #require(container["id"] as? String)
                #expect(try await client.delete("/containers/\(id)?force=true").status == 204)
            }
        }
    }

    @Test("auto_remove: the engine removes the container when it exits", arguments: TestEngines.available)
    func autoRemove(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                let run = try await client.post(
                    "/containers",
                    json: ["image": Self.image, "labels": fixture.labels, "command": ["sleep", "1"], "auto_remove": true])
                #expect(run.status == 201, "\(run.text)")
                let id = try #require(try run.object()["id"] as? String)
                let removed = try await client.post("/containers/\(id)/wait?condition=removed&timeout=60")
                #expect(removed.status == 200 || removed.status == 404, "\(removed.text)")
                #expect(try await client.get("/containers/\(id)").status == 404)
                #expect(try await fixture.labelledContainers().isEmpty)
            }
        }
    }

    // MARK: - Readiness waits

    @Test("log wait counts occurrences; too few times out with logs", arguments: TestEngines.available)
    func readinessWaits(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                let twice = ["sh", "-c", "echo 'ready to accept'; sleep 1; echo 'ready to accept' >&2; exec sleep 300"]
                let started = ContinuousClock.now
                let two = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "labels": fixture.labels, "command": twice,
                        "wait": ["timeout_seconds": 60, "log": ["pattern": #"ready to \w+"#, "occurrences": 2]],
                    ])
                #expect(two.status == 201, "\(two.text)")
                #expect(ContinuousClock.now - started >= .milliseconds(900), "the second line comes a second later")

                let three = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "labels": fixture.labels, "command": twice,
                        "wait": ["timeout_seconds": 3, "log": ["pattern": "ready", "occurrences": 3]],
                    ])
                #expect(three.status == 504, "\(three.text)")
                let problem = try three.object()
                #expect(problem["logs"] as? [String] == ["ready to accept", "ready to accept"])
                let id = try #require(problem["container_id"] as? String)
                #expect(try await client.get("/containers/\(id)").status == 200, "left in place without auto_remove")
            }
        }
    }

    @Test(
        "exec waits: the words are never shell text, no process per pause, no try outlives the wait, without /bin/sh or read -t still waits",
        arguments: TestEngines.available)
    func execWaitLoop(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let noShell = "localhost/ociman-test-\(fixture.runID):no-shell"
        try await fixture.withCleanup(images: [noShell]) {
            try await withOcimand(engine: engine) { _, client in
                // The tries run in a shell loop inside the container: one engine exec for a
                // second of tries (one exec per try would take tens).
                let execs = try await Self.waitForFileMadeAfterOneSecond(client, image: Self.image, labels: fixture.labels)
                #expect((1...3).contains(execs), "\(execs) engine execs for a 1 s exec wait")

                // The command is the loop's arguments, never shell text.
                let literal = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "labels": fixture.labels, "command": ["sleep", "300"],
                        "wait": ["timeout_seconds": 30, "exec": ["command": ["test", "!", "-e", "/tmp/$(touch /tmp/injected)"]]],
                    ])
                #expect(literal.status == 201, "\(literal.text)")
                let literalID = try #require(try literal.object()["id"] as? String)
                let injected = try await client.post(
                    "/containers/\(literalID)/exec", json: ["command": ["test", "-e", "/tmp/injected"]])
                #expect(try injected.object()["exit_code"] as? Int == 1, "the command substitution never ran")

                // A wait that times out answers at its deadline and leaves no try running: ended
                // at once where ocimand can end exec processes, else by itself (its pauses add
                // up to the wait's time left). While it runs, busybox's shell pauses between
                // tries in a `read -t` of the stdin ocimand holds open: no `sleep` process shows
                // up beside the loop.
                let neverName = "ociman-test-\(fixture.runID)-never"
                let neverStarted = ContinuousClock.now
                let answered = Atomic(false)
                let neverAnswer = Task {
                    defer { answered.store(true, ordering: .releasing) }
                    return try await client.post(
                        "/containers",
                        json: [
                            "image": Self.image, "labels": fixture.labels, "command": ["sleep", "300"], "name": neverName,
                            "wait": ["timeout_seconds": 3, "exec": ["command": ["test", "-e", "/never"]]],
                        ])
                }
                // Sampled for as long as the wait runs: tens of samples here, one or two over SSH,
                // where the loop starts a second later and each sample takes longer.
                var samples: [String] = []
                while !answered.load(ordering: .acquiring) {
                    let sample = try await client.post("/containers/\(neverName)/exec", json: ["command": ["ps", "-o", "args"]])
                    if sample.status == 200, let text = try sample.object()["stdout"] as? String, text.contains("/never") {
                        samples.append(text)
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(!samples.isEmpty, "the loop was never seen running")
                let sleeping = samples.filter { $0.split(separator: "\n").contains { $0.hasPrefix("sleep 0.") } }
                #expect(sleeping.isEmpty, "a sleep process beside the loop: \(sleeping)")
                let never = try await neverAnswer.value
                #expect(never.status == 504, "\(never.text)")
                #expect(ContinuousClock.now - neverStarted < .seconds(6), "answered after \(ContinuousClock.now - neverStarted)")
                let neverID = try #require(try never.object()["container_id"] as? String)
                var processes = ""
                let loopEnded = try await waitUntil(within: .seconds(10)) {
                    processes = try await client.post("/containers/\(neverID)/exec", json: ["command": ["ps", "-o", "args"]])
                        .object()["stdout"] as? String ?? ""
                    return !processes.contains("/never")
                }
                #expect(loopEnded, "still running: \(processes)")

                // Without /bin/sh each try is an exec of its own.
                _ = try terminalResult(
                    try await client.request(
                        "POST", "/images/build",
                        json: [
                            "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN rm /bin/sh\n"],
                            "tag": noShell, "labels": fixture.labels,
                        ]))
                _ = try await Self.waitForFileMadeAfterOneSecond(client, image: noShell, labels: fixture.labels, shell: ["busybox", "sh"])

                // dash (the PostgreSQL image's /bin/sh) has no `read -t`: its loop sleeps between
                // tries, still in one engine exec for a second of tries.
                let dashExecs = try await Self.waitForFileMadeAfterOneSecond(
                    client, image: TestEngines.postgresImage, labels: fixture.labels)
                #expect((1...3).contains(dashExecs), "\(dashExecs) engine execs for a 1 s exec wait in dash")
            }
        }
    }

    /// Runs a container of `image` that makes a file after a second, with an exec wait for it;
    /// expects the 201 once the file is there and returns how many engine execs the wait took.
    static func waitForFileMadeAfterOneSecond(
        _ client: OcimandClient, image: String, labels: [String: String], shell: [String] = ["sh"]
    ) async throws -> Int {
        let execsBefore = try await execsCreated(client)
        let started = ContinuousClock.now
        let answer = try await client.post(
            "/containers",
            json: [
                "image": image, "labels": labels,
                "command": shell + ["-c", "sleep 1; touch /tmp/ready; exec sleep 300"],
                "wait": ["timeout_seconds": 30, "exec": ["command": ["test", "-f", "/tmp/ready"]]],
            ])
        #expect(answer.status == 201, "\(image): \(answer.text)")
        #expect(ContinuousClock.now - started >= .milliseconds(900), "\(image): ready only once the file is there")
        return try await execsCreated(client) - execsBefore
    }

    /// Exec sessions ocimand has created in the engine, from its engine call metrics.
    static func execsCreated(_ client: OcimandClient) async throws -> Int {
        let metrics = try await client.get("/metrics").text
        return metrics.split(separator: "\n").filter {
            $0.hasPrefix("ociman_engine_request_duration_seconds_count{") && $0.contains(#"method="POST""#)
                && $0.contains(#"path="/containers/{name}/exec""#)
        }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0) { $0 + Int($1) }
    }

    @Test("timeout with auto_remove removes; exit before ready is 409 with logs", arguments: TestEngines.available)
    func waitFailures(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                let timedOut = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "labels": fixture.labels, "auto_remove": true,
                        "command": ["sh", "-c", "echo one; echo two >&2; exec sleep 300"],
                        "publish": [["container_port": 8080]],
                        "wait": ["timeout_seconds": 2, "tcp_port": 8080],
                    ])
                #expect(timedOut.status == 504, "\(timedOut.text)")
                let problem = try timedOut.object()
                // stdout and stderr are separate streams: their relative order is the engine's.
                #expect((problem["logs"] as? [String])?.sorted() == ["one", "two"])
                #expect((problem["detail"] as? String)?.contains("tcp port 8080") == true)
                let id = try #require(problem["container_id"] as? String)
                #expect(try await client.get("/containers/\(id)").status == 404, "auto_remove removes it on timeout")

                let exited = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "labels": fixture.labels, "command": ["sh", "-c", "echo bye; exit 3"],
                        "publish": [["container_port": 8080]],
                        "wait": ["timeout_seconds": 60, "tcp_port": 8080],
                    ])
                #expect(exited.status == 409, "\(exited.text)")
                let conflict = try exited.object()
                #expect(conflict["logs"] as? [String] == ["bye"])
                #expect((conflict["detail"] as? String)?.contains("code 3") == true)
                let exitedID = try #require(conflict["container_id"] as? String)
                #expect(try await client.get("/containers/\(exitedID)").status == 200, "left for inspection")
            }
        }
    }

    // MARK: - Stop, kill, wait, remove

    @Test("wait conditions, kill and remove conflicts", arguments: TestEngines.available)
    func stopKillWaitRemove(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                let sleeper = try await client.post(
                    "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["sleep", "300"]])
                let id = try #require(try sleeper.object()["id"] as? String)

                let running = try await client.delete("/containers/\(id)")
                #expect(running.status == 409, "\(running.text)")
                let notYet = try await client.post("/containers/\(id)/wait?timeout=1")
                #expect(notYet.status == 504)
                #expect(try notYet.object()["container_id"] as? String == id)

                #expect(try await client.post("/containers/\(id)/kill").status == 204)
                let code = try await client.post("/containers/\(id)/wait")
                #expect(code.status == 200)
                #expect(try code.object()["exit_code"] as? Int == 137, "SIGKILL by default: \(code.text)")
                let again = try await client.post("/containers/\(id)/kill")
                #expect(again.status == 409, "\(again.text)")
                #expect(try await client.post("/containers/\(id)/wait?condition=next-exit&timeout=1").status == 504)

                // A named signal reaches the process: its handler decides the exit code.
                let trapping = try await client.post(
                    "/containers",
                    json: [
                        "image": Self.image, "labels": fixture.labels,
                        "command": ["sh", "-c", "trap 'exit 42' TERM; echo trapping; while true; do sleep 0.1; done"],
                        "wait": ["timeout_seconds": 60, "log": ["pattern": "trapping"]],
                    ])
                let trappingID = try #require(try trapping.object()["id"] as? String)
                #expect(try await client.post("/containers/\(trappingID)/kill?signal=SIGTERM").status == 204)
                #expect(try await client.post("/containers/\(trappingID)/wait").object()["exit_code"] as? Int == 42)

                let exits = try await client.post(
                    "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["sh", "-c", "exit 7"]])
                let exitsID = try #require(try exits.object()["id"] as? String)
                #expect(try await client.post("/containers/\(exitsID)/wait").object()["exit_code"] as? Int == 7)
                #expect(try await client.get("/containers/\(exitsID)").object()["state"].flatMap { ($0 as? [String: Any])?["exit_code"] as? Int } == 7)
                async let removed = client.post("/containers/\(exitsID)/wait?condition=removed&timeout=60")
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await client.delete("/containers/\(exitsID)").status == 204)
                let removedAnswer = try await removed
                #expect(removedAnswer.status == 200, "\(removedAnswer.text)")
                #expect(try removedAnswer.object()["exit_code"] as? Int == 7)

                #expect(try await client.delete("/containers/\(id)?force=true").status == 204)
            }
        }
    }

    @Test("name filter is exact; a failed start leaves nothing", arguments: TestEngines.available)
    func nameFilterAndFailedStart(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                let dotted = "lc.\(fixture.runID)"
                for name in [dotted, "lcX\(fixture.runID)", "\(dotted)-2"] {
                    let run = try await client.post(
                        "/containers", json: ["image": Self.image, "name": name, "labels": fixture.labels, "command": ["true"]])
                    #expect(run.status == 201, "\(run.text)")
                }
                let listed = try await client.get("/containers?name=\(dotted)")
                #expect(try listed.array().map { $0["name"] as? String } == [dotted])
                #expect(try await client.get("/containers?name=nosuch\(fixture.runID)").array().isEmpty)
                #expect(try await client.get("/containers?label=\(fixture.labelKey)=\(fixture.runID)").array().count == 3)
                for id in try await fixture.labelledContainers() {
                    _ = try await client.delete("/containers/\(id)?force=true")
                }

                let failed = try await client.post(
                    "/containers",
                    json: ["image": Self.image, "labels": fixture.labels, "entrypoint": ["/nonexistent/binary"], "name": "lc-fail-\(fixture.runID)"])
                #expect(failed.status == 400, "\(failed.text)")
                #expect((try failed.object()["detail"] as? String)?.contains("/nonexistent/binary") == true)
                #expect(try await fixture.labelledContainers().isEmpty, "nothing half-made is left")
                #expect(try await client.get("/containers/lc-fail-\(fixture.runID)").status == 404)
            }
        }
    }

    // MARK: - Error codes

    /// Each body breaks one rule; the answer is 400 naming the field, and nothing reaches the engine.
    static var invalidRuns: [(String, [String: Any])] { [
        ("image", ["image": "Busybox:Test"]),
        ("name", ["name": "-web"]),
        ("labels.a=b", ["labels": ["a=b": "x"]]),
        ("labels.big", ["labels": ["big": String(repeating: "x", count: 65_537)]]),
        ("labels.ociman.managed", ["labels": ["ociman.managed": "no"]]),
        ("env.A=B", ["env": ["A=B": "x"]]),
        ("env.NUL", ["env": ["NUL": "a\u{0}b"]]),
        ("publish[0].container_port", ["publish": [["container_port": 0]]]),
        ("publish[0].container_port", ["publish": [["container_port": 65_536]]]),
        ("publish[0].protocol", ["publish": [["container_port": 80, "protocol": "sctp"]]]),
        ("publish[0].host_ip", ["publish": [["container_port": 80, "host_ip": "localhost"]]]),
        ("publish[0].host_ip", ["publish": [["container_port": 80, "host_ip": "[::1]"]]]),
        ("publish[1].host_port", ["publish": [["container_port": 80], ["container_port": 81, "host_port": 70_000]]]),
        ("publish[0].host_port", ["publish": [["container_port": 80, "host_port": -1]]]),
        ("mounts[0].source", ["mounts": [["type": "bind", "target": "/in"]]]),
        ("mounts[0].source", ["mounts": [["type": "bind", "source": "relative", "target": "/in"]]]),
        ("mounts[0].source", ["mounts": [["type": "volume", "source": "/abs", "target": "/v"]]]),
        ("mounts[0].source", ["mounts": [["type": "tmpfs", "source": "x", "target": "/t"]]]),
        ("mounts[0].target", ["mounts": [["type": "tmpfs", "target": "t"]]]),
        ("mounts[0].type", ["mounts": [["type": "nfs", "target": "/t"]]]),
        ("workdir", ["workdir": "relative"]),
        ("user", ["user": "a:b:c"]),
        ("entrypoint", ["entrypoint": [String]()]),
        ("pull_policy", ["pull_policy": "sometimes"]),
        ("wait.timeout_seconds", ["wait": ["timeout_seconds": 0]]),
        ("wait.tcp_port", ["wait": ["timeout_seconds": 5, "tcp_port": 8080]]),
        ("wait.log.pattern", ["wait": ["timeout_seconds": 5, "log": ["pattern": "(unclosed"]]]),
        ("wait.log.occurrences", ["wait": ["timeout_seconds": 5, "log": ["pattern": "x", "occurrences": 0]]]),
        ("wait.exec.command", ["wait": ["timeout_seconds": 5, "exec": ["command": [String]()]]]),
        ("ttl_seconds", ["ttl_seconds": 0]),
        ("session", ["session": "bad id!"]),
    ] }

    @Test("every validation rule answers 400 with its field", arguments: TestEngines.available)
    func validation(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                for (field, overrides) in Self.invalidRuns {
                    var body: [String: Any] = ["image": Self.image, "labels": fixture.labels, "command": ["true"]]
                    for (key, value) in overrides {
                        if key == "labels", let extra = value as? [String: String] {
                            body["labels"] = fixture.labels.merging(extra) { $1 }
                        } else {
                            body[key] = value
                        }
                    }
                    let response = try await client.post("/containers", json: body)
                    #expect(response.status == 400, "\(field): \(response.text)")
                    #expect(response.header("Content-Type") == "application/problem+json")
                    #expect(try response.object()["field"] as? String == field, "\(response.text)")
                }
                #expect(try await fixture.labelledContainers().isEmpty, "nothing reached the engine")

                for (path, field) in [
                    ("/containers?label==x", "label"), ("/containers?label=a%20b", "label"), ("/containers?name=-x", "name"),
                ] {
                    let response = try await client.get(path)
                    #expect(response.status == 400, "\(path): \(response.text)")
                    #expect(try response.object()["field"] as? String == field)
                }
                let sleeper = try await client.post(
                    "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["sleep", "300"]])
                let id = try #require(try sleeper.object()["id"] as? String)
                for (method, path, field) in [
                    ("POST", "/containers/\(id)/kill?signal=BOGUS", "signal"),
                    ("POST", "/containers/\(id)/stop?timeout=-1", "timeout"),
                    ("POST", "/containers/\(id)/wait?timeout=0", "timeout"),
                ] {
                    let response = try await client.request(method, path)
                    #expect(response.status == 400, "\(path): \(response.text)")
                    #expect(try response.object()["field"] as? String == field, "\(response.text)")
                }
                for reference in ["UPPER/case", "localhost/x@sha256:" + String(repeating: "a", count: 64)] {
                    let response = try await client.post("/containers/\(id)/commit", json: ["reference": reference])
                    #expect(response.status == 400, "\(response.text)")
                    #expect(try response.object()["field"] as? String == "reference")
                }
            }
        }
    }

    @Test("404 for unknown containers and absent images, 409 for a name in use", arguments: TestEngines.available)
    func notFoundAndConflict(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine) { _, client in
                let unknown = "nosuch-\(fixture.runID)"
                let requests: [(String, String, [String: String]?)] = [
                    ("GET", "/containers/\(unknown)", nil), ("DELETE", "/containers/\(unknown)", nil),
                    ("POST", "/containers/\(unknown)/stop", nil), ("POST", "/containers/\(unknown)/kill", nil),
                    ("POST", "/containers/\(unknown)/wait", nil),
                    ("POST", "/containers/\(unknown)/commit", ["reference": "localhost/x:y"]),
                ]
                for (method, path, body) in requests {
                    let response = try await client.request(method, path, json: body)
                    #expect(response.status == 404, "\(method) \(path): \(response.text)")
                    #expect(response.header("Content-Type") == "application/problem+json")
                }
                let absent = try await client.post(
                    "/containers",
                    json: ["image": "localhost/ociman-absent-\(fixture.runID):1", "pull_policy": "never", "labels": fixture.labels])
                #expect(absent.status == 404, "\(absent.text)")
                // No registry is reachable: the pull fails with the engine's message, not a crash.
                let unpullable = try await client.post(
                    "/containers", json: ["image": "localhost/ociman-absent-\(fixture.runID):1", "labels": fixture.labels])
                #expect(unpullable.status == 502 || unpullable.status == 404, "\(unpullable.text)")
                #expect((try unpullable.object()["detail"] as? String)?.contains("ociman-absent") == true)

                let name = "lc-taken-\(fixture.runID)"
                let first = try await client.post(
                    "/containers", json: ["image": Self.image, "name": name, "labels": fixture.labels, "command": ["sleep", "300"]])
                #expect(first.status == 201)
                let second = try await client.post(
                    "/containers", json: ["image": Self.image, "name": name, "labels": fixture.labels, "command": ["true"]])
                #expect(second.status == 409, "\(second.text)")
                #expect(try await fixture.labelledContainers().count == 1)
            }
        }
    }
}
