import Foundation
import OcimanTestSupport
import Testing

/// Derived from the contract: every integer query parameter and every integer member of every
/// JSON request body in openapi.yaml gets 0, −1, Int64.max, Int64.min (bodies also 2^63 and
/// −2^63−1 as JSON numbers) and the contract's own bounds and their neighbours. Out of the
/// documented range the answer must be a 400 problem naming the field; inside it, anything but
/// the bounds check and a 500/502. After every request the same ocimand process still answers,
/// and nothing the test created is left in the engine.
@Suite("Integer bounds from the contract", .serialized)
struct IntegerBoundsTests {
    static let image = TestEngines.baseImage

    /// An integer a client can send: a query parameter, or a member of a JSON body by its path
    /// (`publish[0].host_port`, as problem documents name fields).
    struct Target: CustomStringConvertible {
        var operationID: String
        var field: String
        var inQuery: Bool
        var minimum: Int?
        var maximum: Int?
        var description: String { "\(operationID) \(inQuery ? "?" : "")\(field)" }
    }

    /// A value as sent, and as a 64-bit integer when it is one.
    struct Probe {
        var text: String
        var value: Int?
    }

    // MARK: - The contract

    static func contract() throws -> [String: Any] {
        // openapi.yaml is YAML; python3-yaml (installed by scripts/setup-engines.sh) reads it as the
        // contract tools do, and hands it over as JSON.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            SystemRoutesTests.repositoryRoot + "/openapi.yaml",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let document = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TestSupportError("cannot read openapi.yaml with python3 and PyYAML (python3-yaml)")
        }
        return document
    }

    static func targets(in document: [String: Any]) -> [Target] {
        let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any] ?? [:]
        func resolve(_ schema: [String: Any]) -> [String: Any] {
            guard let reference = schema["$ref"] as? String, let name = reference.split(separator: "/").last else { return schema }
            return resolve(schemas[String(name)] as? [String: Any] ?? [:])
        }
        func integers(in schema: [String: Any], at path: String, depth: Int = 0) -> [(String, [String: Any])] {
            let schema = resolve(schema)
            guard depth < 16 else { return [] }
            if schema["type"] as? String == "integer" { return [(path, schema)] }
            if let items = schema["items"] as? [String: Any] { return integers(in: items, at: path + "[0]", depth: depth + 1) }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            return properties.keys.sorted().flatMap { name in
                integers(in: properties[name] as? [String: Any] ?? [:], at: path.isEmpty ? name : "\(path).\(name)", depth: depth + 1)
            }
        }
        var found: [Target] = []
        let paths = document["paths"] as? [String: Any] ?? [:]
        for path in paths.keys.sorted() {
            let item = paths[path] as? [String: Any] ?? [:]
            for method in item.keys.sorted() {
                guard let operation = item[method] as? [String: Any], let id = operation["operationId"] as? String else { continue }
                let parameters = (item["parameters"] as? [[String: Any]] ?? []) + (operation["parameters"] as? [[String: Any]] ?? [])
                for parameter in parameters where parameter["in"] as? String == "query" {
                    let schema = resolve(parameter["schema"] as? [String: Any] ?? [:])
                    guard schema["type"] as? String == "integer", let name = parameter["name"] as? String else { continue }
                    found.append(Target(
                        operationID: id, field: name, inQuery: true,
                        minimum: schema["minimum"] as? Int, maximum: schema["maximum"] as? Int))
                }
                let body = (((operation["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"]
                    as? [String: Any])?["schema"] as? [String: Any]
                for (field, schema) in body.map({ integers(in: $0, at: "") }) ?? [] {
                    found.append(Target(
                        operationID: id, field: field, inQuery: false,
                        minimum: schema["minimum"] as? Int, maximum: schema["maximum"] as? Int))
                }
            }
        }
        return found
    }

    static func probes(for target: Target) -> [Probe] {
        var probes = [0, -1, Int.max, Int.min].map { Probe(text: String($0), value: $0) }
        if !target.inQuery {
            probes += [Probe(text: "9223372036854775808", value: nil), Probe(text: "-9223372036854775809", value: nil)]
        }
        for bound in [target.minimum, target.maximum].compactMap({ $0 }) {
            for value in [bound - 1, bound, bound + 1] where !probes.contains(where: { $0.value == value }) {
                probes.append(Probe(text: String(value), value: value))
            }
        }
        return probes
    }

    @Test("the contract bounds every integer a client sends")
    func everyIntegerIsBounded() throws {
        let targets = Self.targets(in: try Self.contract())
        #expect(targets.count >= 10, "\(targets)")
        for target in targets {
            #expect(target.minimum != nil && target.maximum != nil, "\(target) has no minimum or maximum in openapi.yaml")
        }
    }

    // MARK: - Requests

    /// What each operation with integers needs besides the integer under test. An operation the
    /// contract gains later fails the test here until it is given one.
    struct Fixtures {
        var labels: [String: String]
        var running: String
        var exited: String
        var session: String

        func base(_ operationID: String) -> (method: String, path: String, query: [String: String], body: [String: Any]?)? {
            switch operationID {
            case "runContainer":
                return ("POST", "/containers", [:], [
                    "image": IntegerBoundsTests.image, "labels": labels,
                    "command": ["sh", "-c", "echo started; exec httpd -f -p 8080"],
                    "publish": [["container_port": 8080, "host_ip": "127.0.0.1", "host_port": 0]],
                    "wait": ["timeout_seconds": 3, "tcp_port": 8080, "log": ["pattern": "started", "occurrences": 1]],
                    "ttl_seconds": 600,
                ])
            case "execInContainer":
                return ("POST", "/containers/\(running)/exec", [:], ["command": ["true"], "timeout_seconds": 10])
            case "getContainerLogs":
                return ("GET", "/containers/\(exited)/logs", ["tail": "1", "since": "0"], nil)
            // A container that has exited: stop answers 204 and wait its exit code at once.
            case "stopContainer":
                return ("POST", "/containers/\(exited)/stop", ["timeout": "0"], nil)
            case "waitContainer":
                return ("POST", "/containers/\(exited)/wait", ["timeout": "5"], nil)
            case "createSession":
                return ("POST", "/sessions", [:], ["lease_seconds": 60])
            case "renewSession":
                return ("POST", "/sessions/\(session)/renew", [:], ["lease_seconds": 60])
            // Nothing to resize: in range is 404 or 409, out of range 400 before the engine is asked.
            case "resizeContainer":
                return ("POST", "/containers/\(exited)/resize", [:], ["rows": 24, "columns": 80])
            case "resizeExecSession":
                return ("POST", "/exec-sessions/no-such-exec-session/resize", [:], ["rows": 24, "columns": 80])
            // Ends a second from now, so an accepted value answers a short stream.
            case "getEvents":
                return ("GET", "/events", ["until": String(Int(Date().timeIntervalSince1970) + 1)], nil)
            // Nothing ready is asked for (size 0), so nothing boots unless size is the integer under test.
            case "putPool":
                return ("PUT", "/pools/bounds-\(running.prefix(12))", [:], [
                    "size": 0, "max": 1, "boot_concurrency": 1, "warm_up": ["command": ["true"], "timeout_seconds": 5],
                    "run": [
                        "image": IntegerBoundsTests.image, "labels": labels,
                        "command": ["sh", "-c", "echo started; exec httpd -f -p 8080"],
                        "publish": [["container_port": 8080, "host_ip": "127.0.0.1", "host_port": 0]],
                        "wait": ["timeout_seconds": 3, "tcp_port": 8080, "log": ["pattern": "started", "occurrences": 1]],
                    ],
                ])
            // No such pool: in range is 404, out of range 400 before the pool is looked up.
            case "claimFromPool":
                return ("POST", "/pools/no-such-pool/claim", [:], ["timeout_seconds": 0, "ttl_seconds": 60])
            default:
                return nil
            }
        }
    }

    /// The body with the member at `field` (`a.b`, `a[0].b`) set to a placeholder string, which
    /// the serialized text then swaps for the raw number: JSONSerialization cannot write 2^63.
    static func body(_ base: [String: Any], setting field: String, to number: String) throws -> Data {
        let placeholder = "__integer_under_test__"
        func set(_ value: Any?, _ keys: ArraySlice<Substring>) -> Any {
            guard let key = keys.first else { return placeholder }
            if key.hasSuffix("[0]") {
                let name = String(key.dropLast(3))
                var object = value as? [String: Any] ?? [:]
                var array = object[name] as? [Any] ?? []
                let element = array.first
                if array.isEmpty { array.append([String: Any]()) }
                array[0] = set(element, keys.dropFirst())
                object[name] = array
                return object
            }
            var object = value as? [String: Any] ?? [:]
            object[String(key)] = set(object[String(key)], keys.dropFirst())
            return object
        }
        let object = set(base, field.split(separator: ".")[...])
        let text = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        return Data(text.replacingOccurrences(of: "\"\(placeholder)\"", with: number).utf8)
    }

    @Test("every integer of every operation: a 400 naming it out of range, never a crash", arguments: TestEngines.available)
    func integersNeverCrash(engine: String) async throws {
        let targets = Self.targets(in: try Self.contract())
        let fixture = EngineFixture(engine: engine)
        let stateDirectory = try temporaryDirectory("ociman-bounds-state")
        defer { try? FileManager.default.removeItem(atPath: stateDirectory) }
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, arguments: ["--state-dir", stateDirectory]) { server, client in
                let running = try await client.post(
                    "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["sleep", "600"]])
                let exited = try await client.post(
                    "/containers", json: ["image": Self.image, "labels": fixture.labels, "command": ["true"]])
                let session = try await client.post("/sessions", json: ["lease_seconds": 600])
                let fixtures = Fixtures(
                    labels: fixture.labels,
                    running: try #require(try running.object()["id"] as? String, "\(running.text)"),
                    exited: try #require(try exited.object()["id"] as? String, "\(exited.text)"),
                    session: try #require(try session.object()["id"] as? String, "\(session.text)"))
                _ = try await client.post("/containers/\(fixtures.exited)/wait")

                for target in targets {
                    guard let base = fixtures.base(target.operationID) else {
                        Issue.record("\(target): no base request for operation \(target.operationID); add one to Fixtures.base")
                        continue
                    }
                    for probe in Self.probes(for: target) {
                        var query = base.query
                        var body: Data?
                        if target.inQuery {
                            query[target.field] = probe.text
                            body = try base.body.map { try JSONSerialization.data(withJSONObject: $0) }
                        } else {
                            body = try Self.body(base.body ?? [:], setting: target.field, to: probe.text)
                        }
                        let queryText = query.keys.sorted().map { "\($0)=\(query[$0]!)" }.joined(separator: "&")
                        let path = base.path + (queryText.isEmpty ? "" : "?" + queryText)
                        let started = ContinuousClock.now
                        // A bound the engine takes long to honour is too high (Podman once spent 18 s on tail=10^9);
                        // only a readiness wait that cannot be met (occurrences) runs into its 3 s.
                        defer {
                            let took = ContinuousClock.now - started
                            #expect(took < .seconds(target.field == "wait.log.occurrences" ? 15 : 10), "\(engine) \(target) = \(probe.text) took \(took)")
                        }
                        let response: OcimandClient.Response
                        do {
                            response = try await client.request(
                                base.method, path, body: body,
                                headers: body == nil ? [:] : ["Content-Type": "application/json"], timeout: 60)
                        } catch {
                            try #require(processExists(server.processIdentifier), "ocimand died on \(engine) \(target) = \(probe.text)\n\(server.log)")
                            Issue.record("\(engine) \(target) = \(probe.text): \(error)")
                            continue
                        }
                        let what = "\(engine) \(target) = \(probe.text): \(response.status) \(response.text)"
                        let inRange = probe.value.map { value in
                            (target.minimum.map { value >= $0 } ?? true) && (target.maximum.map { value <= $0 } ?? true)
                        } ?? false
                        if response.status >= 400 {
                            #expect(response.header("Content-Type") == "application/problem+json", "\(what)")
                        }
                        if inRange {
                            #expect(![500, 502].contains(response.status), "\(what)")
                            #expect(!response.text.contains("must be between"), "\(what)")
                        } else {
                            #expect(response.status == 400, "\(what)")
                            #expect((try? response.object()["field"] as? String) == target.field, "\(what)")
                        }
                        if target.operationID == "createSession", response.status == 201,
                            let id = try? response.object()["id"] as? String
                        {
                            _ = try await client.delete("/sessions/\(id)")
                        }
                        try #require(processExists(server.processIdentifier), "ocimand died after \(what)\n\(server.log)")
                        try #require(try await client.get("/health").status == 200, "after \(what)")
                    }
                }
                _ = try await client.delete("/sessions/\(fixtures.session)")
                // Removes whatever members a `size` under test booted.
                let pool = try await client.delete("/pools/bounds-\(fixtures.running.prefix(12))")
                #expect([204, 404].contains(pool.status), "\(pool.text)")
            }
        }
        #expect(try await fixture.labelledContainers().isEmpty, "containers left behind in \(engine)")
    }
}
