import EngineDriver
import Foundation
import OcimanTestSupport
import Testing

/// Builds and image operations run one at a time: the tests that check for leftover
/// intermediate containers compare the engine's containers before and after, which a
/// concurrent build would disturb, and Podman 4.3 fails a build ("layer not known") when an
/// image is removed while the build looks for cached layers.
@Suite("Images and builds against real engines", .serialized)
enum ImagesAndBuilds {}

extension ImagesAndBuilds {
    @Suite("Image builds and /hash")
    struct BuildTests {
        // MARK: - Sources

        @Test("build from inline instructions", arguments: TestEngines.available)
        func buildFromInstructions(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):instructions"
            try await fixture.withCleanup(images: [tag]) {
                try await withBuildRoot { root in
                    try await withOcimand(engine: engine, arguments: ["--context-root", root.path]) { _, client in
                        let response = try await client.request(
                            "POST", "/images/build",
                            json: [
                                "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN echo hi > /x\n"],
                                "tag": tag, "labels": fixture.labels,
                            ])
                        #expect(response.status == 200)
                        #expect(response.header("Content-Type")?.hasPrefix("application/x-ndjson") == true)
                        let result = try terminalResult(response)
                        #expect(result["reference"] as? String == tag)
                        #expect(result["cached"] as? Bool == false)
                        #expect(result["digest"] == nil)
                        let imageID = try #require(result["image_id"] as? String)
                        let image = try await fixture.engineImage(tag)
                        #expect(image.id == imageID)
                        #expect(image.config?.labels?[fixture.labelKey] == fixture.runID)
                        #expect(try await fixture.output(of: tag, ["cat", "/x"]) == "hi\n")
                    }
                }
            }
        }

        @Test("build from a directory with COPY and a build argument; content-addressed, equal to /hash, cached with if_absent",
              arguments: TestEngines.available)
        func buildFromDirectory(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let name = "localhost/ociman-test-\(fixture.runID)"
            try await withBuildRoot { root in
                try root.write("app/Dockerfile", "FROM \(TestEngines.baseImage)\nARG GREETING=none\nCOPY hello.txt /hello.txt\nRUN echo \"$GREETING\" > /arg.txt\n")
                try root.write("app/hello.txt", "from the context\n")
                try root.write("app/.hidden", "counts in the hash\n")
                let request: [String: Any] = [
                    "context": ["path": root.path + "/app"], "name": name,
                    "build_args": ["GREETING": "hello \(fixture.runID)"], "labels": fixture.labels,
                ]
                try await withOcimand(engine: engine, arguments: ["--context-root", root.path]) { _, client in
                    let hash = try await client.request("POST", "/hash", json: request)
                    #expect(hash.status == 200)
                    let expected = try #require(try hash.object()["reference"] as? String)
                    try await fixture.withCleanup(images: [expected]) {
                        let build = try await client.request("POST", "/images/build", json: request)
                        let result = try terminalResult(build)
                        #expect(result["reference"] as? String == expected)
                        #expect(result["digest"] as? String == (try hash.object()["digest"] as? String))
                        #expect(result["cached"] as? Bool == false)
                        #expect(
                            try await fixture.output(of: expected, ["cat", "/hello.txt", "/arg.txt"])
                                == "from the context\nhello \(fixture.runID)\n")

                        var again = request
                        again["if_absent"] = true
                        let cached = try await client.request("POST", "/images/build", json: again)
                        let lines = try cached.lines()
                        #expect(lines.count == 1, "a cached build builds nothing: \(cached.text)")
                        #expect(lines.last?["type"] as? String == "result")
                        #expect(lines.last?["cached"] as? Bool == true)
                        #expect(lines.last?["reference"] as? String == expected)
                        #expect(lines.last?["image_id"] as? String == (result["image_id"] as? String))
                    }
                }
            }
        }

        @Test("build from a tar upload: content-addressed like the same directory", arguments: TestEngines.available)
        func buildFromTarUpload(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let name = "localhost/ociman-test-\(fixture.runID)"
            try await withBuildRoot { root in
                try root.write("ctx/Dockerfile", "FROM \(TestEngines.baseImage)\nCOPY data/file.txt /file.txt\n")
                try root.write("ctx/data/file.txt", "uploaded \(fixture.runID)\n")
                let tar = try root.tarball(of: "ctx")
                try await withOcimand(engine: engine, arguments: ["--context-root", root.path]) { _, client in
                    let label = "\(fixture.labelKey)=\(fixture.runID)"
                    let query = "name=\(name)&labels=\(label)"
                    let hashOfTar = try await client.request(
                        "POST", "/hash/tar?\(query)", body: tar, headers: ["Content-Type": "application/x-tar"])
                    #expect(hashOfTar.status == 200)
                    let hashOfDirectory = try await client.request(
                        "POST", "/hash",
                        json: ["context": ["path": root.path + "/ctx"], "name": name, "labels": fixture.labels])
                    let expected = try #require(try hashOfTar.object()["reference"] as? String)
                    #expect(try hashOfDirectory.object()["reference"] as? String == expected)

                    try await fixture.withCleanup(images: [expected]) {
                        let build = try await client.request(
                            "POST", "/images/build/tar?\(query)", body: tar, headers: ["Content-Type": "application/x-tar"])
                        let result = try terminalResult(build)
                        #expect(result["reference"] as? String == expected)
                        #expect(try await fixture.output(of: expected, ["cat", "/file.txt"]) == "uploaded \(fixture.runID)\n")
                        let image = try await fixture.engineImage(expected)
                        #expect(image.config?.labels?[fixture.labelKey] == fixture.runID)

                        let cached = try await client.request(
                            "POST", "/images/build/tar?\(query)&if_absent=true", body: tar,
                            headers: ["Content-Type": "application/x-tar"])
                        #expect(try terminalResult(cached)["cached"] as? Bool == true)
                    }
                }
            }
        }

        @Test("build a target stage", arguments: TestEngines.available)
        func buildTargetStage(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):stage"
            try await fixture.withCleanup(images: [tag]) {
                try await withBuildRoot { root in
                    try root.write(
                        "staged/Dockerfile.multi",
                        "FROM \(TestEngines.baseImage) AS first\nRUN echo one > /one\nFROM first AS second\nRUN echo two > /two\n")
                    try await withOcimand(engine: engine, arguments: ["--context-root", root.path]) { _, client in
                        let response = try await client.request(
                            "POST", "/images/build",
                            json: [
                                "context": ["path": root.path + "/staged"], "dockerfile": "Dockerfile.multi",
                                "target": "first", "tag": tag, "labels": fixture.labels,
                            ])
                        _ = try terminalResult(response)
                        let output = try await fixture.output(
                            of: tag, ["sh", "-c", "cat /one; test -e /two && echo has-two || echo no-two"])
                        #expect(output == "one\nno-two\n")
                    }
                }
            }
        }

        // MARK: - Failures, streaming, cancellation

        @Test("a failing RUN ends in an error event and leaves no intermediate container", arguments: TestEngines.available)
        func failingBuild(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):failing"
            let marker = "ociman-failing-\(fixture.runID)"
            try await fixture.withCleanup(images: [tag]) {
                try await withOcimand(engine: engine) { _, client in
                    let before = try await fixture.buildContainers()
                    let response = try await client.request(
                        "POST", "/images/build",
                        json: [
                            "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN echo \(marker) && false\n"],
                            "tag": tag, "labels": fixture.labels, "no_cache": true,
                        ])
                    #expect(response.status == 200, "engines report failed builds inside the stream")
                    let lines = try response.lines()
                    #expect(lines.dropLast().allSatisfy { $0["type"] as? String == "log" })
                    #expect(lines.contains { ($0["line"] as? String) == marker })
                    let last = try #require(lines.last)
                    #expect(last["type"] as? String == "error")
                    #expect((last["message"] as? String)?.isEmpty == false)
                    #expect(try await fixture.engineImageExists(tag) == false)
                    // Docker removes the failed step's container as it reports the error, not
                    // always before the stream ends.
                    var leftover: Set<String> = []
                    _ = try await waitUntil(within: .seconds(10)) {
                        leftover = try await fixture.buildContainers().subtracting(before)
                        return leftover.isEmpty
                    }
                    #expect(leftover.isEmpty, "intermediate containers left behind: \(leftover)")
                }
            }
        }

        @Test("log lines stream as the engine produces them", arguments: TestEngines.available)
        func linesStreamBeforeTheBuildEnds(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):streamed"
            try await fixture.withCleanup(images: [tag]) {
                try await withOcimand(engine: engine) { server, _ in
                    let events = try await streamBuild(
                        server,
                        [
                            "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN echo first-line; sleep 2; echo last-line\n"],
                            "tag": tag, "labels": fixture.labels, "no_cache": true,
                        ])
                    let first = try #require(events.first { $0.object["line"] as? String == "first-line" })
                    let result = try #require(events.last)
                    #expect(result.object["type"] as? String == "result")
                    // The RUN sleeps 2 s between its lines: the first must be out long before the end.
                    #expect(result.arrivedAt - first.arrivedAt >= .milliseconds(1500))
                }
            }
        }

        @Test("a client that disconnects cancels the build; no intermediate container remains",
              arguments: TestEngines.available)
        func disconnectCancelsTheBuild(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):cancelled"
            let marker = "ociman-cancel-\(fixture.runID)"
            try await fixture.withCleanup(images: [tag]) {
                try await withOcimand(engine: engine) { server, _ in
                    let before = try await fixture.buildContainers()
                    let connection = try await HTTPTestConnection.connect(host: server.host, port: server.port)
                    let body = try JSONSerialization.data(withJSONObject: [
                        "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN echo \(marker); sleep 47; echo never\n"],
                        "tag": tag, "labels": fixture.labels, "no_cache": true,
                    ])
                    try await connection.send(
                        "POST", "/images/build", headers: [("Content-Type", "application/json")], body: [UInt8](body))
                    #expect(try await connection.readHead(timeout: .seconds(60)).status == 200)
                    var seen = ""
                    while !seen.contains("\"line\":\"\(marker)\""), let chunk = try await connection.readBodyChunk(timeout: .seconds(60)) {
                        seen += String(decoding: chunk.bytes, as: UTF8.self)
                    }
                    #expect(seen.contains("\"line\":\"\(marker)\""))
                    #expect(!(try await fixture.buildContainers().subtracting(before).isEmpty), "the RUN step runs in a container")
                    #expect(!hostProcesses(named: "sleep", argument: "47").isEmpty, "the step runs")
                    await connection.close()
                    // Docker kills the step itself; Podman (buildah) would let the running step
                    // finish, so ocimand kills the processes of the build's own cgroup.
                    let stopped = await eventually(timeout: .seconds(2)) { hostProcesses(named: "sleep", argument: "47").isEmpty }
                    #expect(stopped, "the build step still runs after its client left")
                    let cleared = try await waitUntil(within: .seconds(30)) {
                        try await fixture.buildContainers().subtracting(before).isEmpty
                    }
                    #expect(cleared, "intermediate containers left behind after the client left")
                    #expect(try await fixture.engineImageExists(tag) == false, "the cancelled build must not produce its image")
                }
            }
        }

        // MARK: - Refusals

        @Test("tar bodies with absolute paths or .. are refused with 400; the engine builds nothing",
              arguments: TestEngines.available)
        func badTarIsRefused(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):refused"
            try await fixture.withCleanup(images: [tag]) {
                try await withOcimand(engine: engine) { _, client in
                    let dockerfile = Array("FROM \(TestEngines.baseImage)\nCOPY . /ctx\n".utf8)
                    let cases: [(String, [UInt8])] = [
                        ("absolute path", tarArchive([("Dockerfile", dockerfile), ("/etc/evil", Array("x".utf8))])),
                        ("parent reference", tarArchive([("Dockerfile", dockerfile), ("a/../../evil", Array("x".utf8))])),
                        // The refused entry comes after 2 MiB that were already forwarded: the upload to
                        // the engine is aborted and the client still gets the 400.
                        ("late entry", tarArchive([
                            ("Dockerfile", dockerfile), ("big.bin", [UInt8](repeating: 7, count: 2 << 20)),
                            ("../late", Array("x".utf8)),
                        ])),
                    ]
                    let before = try await fixture.buildContainers()
                    for (what, tar) in cases {
                        let response = try await client.request(
                            "POST", "/images/build/tar?tag=\(tag)", body: Data(tar), headers: ["Content-Type": "application/x-tar"])
                        #expect(response.status == 400, "\(what): \(response.text)")
                        #expect(response.header("Content-Type") == "application/problem+json")
                        #expect(try response.object()["field"] as? String == "body", "\(what)")
                        let hash = try await client.request(
                            "POST", "/hash/tar", body: Data(tar), headers: ["Content-Type": "application/x-tar"])
                        #expect(hash.status == 400, "\(what) on /hash: \(hash.text)")
                    }
                    #expect(try await fixture.engineImageExists(tag) == false)
                    #expect(try await fixture.buildContainers().subtracting(before).isEmpty)
                }
            }
        }

        @Test("context paths outside the roots are forbidden", arguments: TestEngines.available)
        func contextRoots(engine: String) async throws {
            try await withBuildRoot { root in
                try root.write("inside/Dockerfile", "FROM \(TestEngines.baseImage)\n")
                let outside = try BuildRoot()
                try outside.write("Dockerfile", "FROM \(TestEngines.baseImage)\n")
                try FileManager.default.createSymbolicLink(atPath: root.path + "/escape", withDestinationPath: outside.path)
                try await withOcimand(engine: engine, arguments: ["--context-root", root.path]) { _, client in
                    for path in [outside.path, "/etc", root.path + "/escape", root.path + "/inside/../.."] {
                        for route in ["/images/build", "/hash"] {
                            let response = try await client.request("POST", route, json: ["context": ["path": path]])
                            #expect(response.status == 403, "\(route) \(path): \(response.text)")
                        }
                    }
                    let missing = try await client.request("POST", "/hash", json: ["context": ["path": root.path + "/nope"]])
                    #expect(missing.status == 400)
                    let inside = try await client.request("POST", "/hash", json: ["context": ["path": root.path + "/inside"]])
                    #expect(inside.status == 200)
                }
                // Without any root configured nothing is readable, and the answer says how to configure one.
                try await withOcimand(engine: engine) { _, client in
                    let response = try await client.request("POST", "/hash", json: ["context": ["path": root.path + "/inside"]])
                    #expect(response.status == 403)
                    #expect(try (response.object()["detail"] as? String)?.contains("--context-root") == true)
                }
            }
        }

        @Test("bad build and hash requests are 400 naming the field", arguments: TestEngines.available)
        func badRequests(engine: String) async throws {
            let instructions = ["instructions": "FROM \(TestEngines.baseImage)\n"]
            let cases: [(String, String, [String: Any], String?)] = [
                ("/images/build", "", ["context": instructions, "tag": "localhost/a:1", "name": "localhost/a"], "tag"),
                ("/images/build", "", ["context": instructions, "tag": "Not A Reference"], "tag"),
                ("/images/build", "", ["context": instructions, "name": "localhost/a:withtag"], "name"),
                ("/images/build", "", ["context": instructions, "if_absent": true], "if_absent"),
                ("/images/build", "", ["context": instructions, "dockerfile": "Other"], "dockerfile"),
                ("/images/build", "", ["context": ["path": "/tmp/x", "instructions": "FROM x"]], "context"),
                ("/images/build", "", ["context": [String: String]()], "context"),
                ("/images/build", "", ["context": instructions, "build_args": ["A=B": "1"]], "build_args.A=B"),
                ("/images/build", "", ["context": instructions, "labels": ["bad key": "1"]], "labels.bad key"),
                ("/hash", "", ["context": ["path": "/tmp/x"], "dockerfile": "../Dockerfile"], "dockerfile"),
                ("/hash", "", ["context": ["path": "/tmp/x"], "dockerfile": "/etc/Dockerfile"], "dockerfile"),
                ("/hash", "", ["context": instructions, "name": "UPPER/case"], "name"),
                ("/images/build", "", ["context": ["instructions": ""]], "context.instructions"),
                ("/hash", "", ["context": ["path": ""]], "context.path"),
            ]
            try await withOcimand(engine: engine, arguments: ["--context-root", "/tmp"]) { _, client in
                for (route, query, body, field) in cases {
                    let response = try await client.request("POST", route + query, json: body)
                    #expect(response.status == 400, "\(route)\(query) \(body): \(response.text)")
                    if let field { #expect(try response.object()["field"] as? String == field, "\(body)") }
                }
                let duplicate = try await client.request(
                    "POST", "/hash/tar?build_args=A=1&build_args=A=2", body: Data(tarArchive([])),
                    headers: ["Content-Type": "application/x-tar"])
                #expect(duplicate.status == 400)
            }
        }

        @Test("/hash answers the golden vectors of SPEC §5")
        func hashGoldenVectors() async throws {
            let engine = try #require(TestEngines.available.first)
            try await withBuildRoot { root in
                try root.write("golden/Dockerfile", "FROM localhost/busybox:test\nCOPY . /ctx\n")
                try root.write("golden/a/z", "z\n")
                try root.write("golden/a.txt", "dot\n")
                try root.write("golden/.hidden/h", "h\n")
                try FileManager.default.createSymbolicLink(atPath: root.path + "/golden/link", withDestinationPath: "a.txt")
                try FileManager.default.createDirectory(atPath: root.path + "/golden/empty", withIntermediateDirectories: false)
                let golden = root.path + "/golden"
                try await withOcimand(engine: engine, arguments: ["--context-root", root.path]) { _, client in
                    let vectors: [([String: Any], String)] = [
                        (["context": ["instructions": "FROM scratch\n"]], "c2b8fd8de1978dee7b553cb2064d7c82a24b852e62dca88010f5417b14381e52"),
                        (["context": ["instructions": "FROM scratch\n"], "build_args": ["VERSION": "1.2"], "labels": ["org.example.role": "db"]],
                         "6bad316542df00602de6003224655858f1e7fe6d370f882cae691476b1bf7ebd"),
                        (["context": ["path": golden]], "c8f94381ba266c6541f067084865f6b116144129017b8b980ecdc81d92c6d317"),
                        (["context": ["path": golden], "build_args": ["A": "1", "B": "2"], "labels": ["x": "y"]],
                         "def2fef5582c5069e5d0e7fd68eb48ff2c88d60d3ce64d7143fbd4818eec1c71"),
                    ]
                    for (request, tag) in vectors {
                        var named = request
                        named["name"] = "localhost/example"
                        let response = try await client.request("POST", "/hash", json: named)
                        let object = try response.object()
                        #expect(object["tag"] as? String == tag)
                        #expect(object["digest"] as? String == "sha256:\(tag)")
                        #expect(object["reference"] as? String == "localhost/example:\(tag)")
                    }
                    let tar = try root.tarball(of: "golden")
                    let fromTar = try await client.request(
                        "POST", "/hash/tar?build_args=A=1&build_args=B=2&labels=x=y", body: tar,
                        headers: ["Content-Type": "application/x-tar"])
                    #expect(try fromTar.object()["tag"] as? String == "def2fef5582c5069e5d0e7fd68eb48ff2c88d60d3ce64d7143fbd4818eec1c71")
                    #expect(try fromTar.object()["reference"] == nil)
                }
            }
        }
    }
}

// MARK: - Helpers shared with ImageTests

/// The last line of a build stream, which must be its result.
func terminalResult(_ response: OcimandClient.Response) throws -> [String: Any] {
    #expect(response.status == 200, "build answered \(response.status): \(response.text)")
    let lines = try response.lines()
    #expect(lines.dropLast().allSatisfy { $0["type"] as? String == "log" }, "\(response.text)")
    let last = try #require(lines.last, "empty build stream")
    guard last["type"] as? String == "result" else {
        throw TestSupportError("the build did not end in a result: \(response.text.suffix(600))")
    }
    return last
}

struct TimedBuildEvent {
    var object: [String: Any]
    var arrivedAt: ContinuousClock.Instant
}

/// Posts a JSON build on a raw connection and records when each ndjson line arrived.
func streamBuild(_ server: OcimandProcess, _ request: [String: Any]) async throws -> [TimedBuildEvent] {
    let connection = try await HTTPTestConnection.connect(host: server.host, port: server.port)
    let body = try JSONSerialization.data(withJSONObject: request)
    try await connection.send("POST", "/images/build", headers: [("Content-Type", "application/json")], body: [UInt8](body))
    let head = try await connection.readHead(timeout: .seconds(120))
    #expect(head.status == 200)
    var events: [TimedBuildEvent] = []
    var pending: [UInt8] = []
    while let chunk = try await connection.readBodyChunk(timeout: .seconds(120)) {
        pending += chunk.bytes
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            let line = Array(pending[..<newline])
            pending.removeSubrange(...newline)
            if let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] {
                events.append(TimedBuildEvent(object: object, arrivedAt: chunk.arrivedAt))
            }
        }
    }
    await connection.close()
    return events
}

func waitUntil(within limit: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(200))
    }
    return try await condition()
}

/// A context root directory, removed afterwards.
final class BuildRoot: Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "ociman-build-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ relative: String, _ contents: String) throws {
        let url = URL(fileURLWithPath: path + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: url)
    }

    /// `tar -cf - -C <root>/<directory> .` as bytes.
    func tarball(of directory: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/tar")
        process.arguments = ["-cf", "-", "-C", path + "/" + directory, "."]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSupportError("tar failed") }
        return data
    }
}

func withBuildRoot<T>(_ body: (BuildRoot) async throws -> T) async throws -> T {
    let root = try BuildRoot()
    return try await body(root)
}

/// A ustar archive of regular files, written by hand so tests can put in names /bin/tar refuses.
func tarArchive(_ files: [(String, [UInt8])]) -> [UInt8] {
    var archive: [UInt8] = []
    for (name, contents) in files {
        var header = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, at offset: Int) {
            for (index, byte) in text.utf8.enumerated() { header[offset + index] = byte }
        }
        func octal(_ value: Int, width: Int) -> String {
            let digits = String(value, radix: 8)
            return String(repeating: "0", count: width - 1 - digits.count) + digits
        }
        put(name, at: 0)
        put(octal(0o644, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(contents.count, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)
        header[156] = UInt8(ascii: "0")
        put("ustar\u{0}00", at: 257)
        put("        ", at: 148)
        put(octal(header.reduce(0) { $0 + Int($1) }, width: 7), at: 148)
        archive += header + contents
        archive += [UInt8](repeating: 0, count: (512 - contents.count % 512) % 512)
    }
    return archive + [UInt8](repeating: 0, count: 1024)
}

extension EngineFixture {
    func engineImage(_ reference: String) async throws -> EngineImage {
        try await client.inspectImage(reference)
    }

    func engineImageExists(_ reference: String) async throws -> Bool {
        do {
            _ = try await client.inspectImage(reference)
            return true
        } catch EngineError.notFound {
            return false
        }
    }

    /// Runs `command` in a container of `image` straight on the engine; its stdout. The
    /// container carries the fixture labels, so `cleanUp` removes it.
    func output(of image: String, _ command: [String]) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["Image": image, "Cmd": command, "Labels": labels])
        let created = try await client.send(
            EngineRequest(.POST, "/containers/create", body: .bytes(contentType: "application/json", [UInt8](body))))
        let id = try #require((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["Id"] as? String)
        _ = try await client.send(EngineRequest(.POST, "/containers/\(id)/start"))
        _ = try await client.send(EngineRequest(.POST, "/containers/\(id)/wait", timeout: .seconds(60)))
        let logs = try await client.send(EngineRequest(.GET, "/containers/\(id)/logs", query: [("stdout", "true")]))
        var decoder = FrameDecoder()
        return try decoder.feed(logs.body).filter { $0.stream == .stdout }.map { String(decoding: $0.payload, as: UTF8.self) }
            .joined()
    }

    /// Containers a build may leave behind: on Docker every container (intermediate ones are
    /// ordinary containers without labels), on Podman also buildah's working containers, which
    /// only the libpod list shows (`external`). Labelled containers belong to other tests.
    func buildContainers() async throws -> Set<String> {
        let request =
            engine == "podman"
            ? EngineRequest(.GET, "/containers/json", query: [("all", "true"), ("external", "true")], api: .libpod)
            : EngineRequest(.GET, "/containers/json", query: [("all", "true")])
        let response = try await client.send(request)
        let list = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        return Set(
            list.filter { container in
                let labels = container["Labels"] as? [String: String] ?? [:]
                return labels[labelKey] == nil
            }.compactMap { $0["Id"] as? String })
    }
}
