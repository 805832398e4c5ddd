import EngineDriver
import Foundation
import OcimanTestSupport
import Testing

extension ImagesAndBuilds {
    @Suite("Image routes")
    struct ImageTests {
        /// Percent-encodes a reference for the path, `/` as `%2F` (SPEC §8).
        private func path(_ reference: String) -> String {
            "/images/" + reference.replacingOccurrences(of: "/", with: "%2F")
        }

        /// Builds a one-layer image labelled with the fixture labels.
        private func buildImage(_ client: OcimandClient, _ fixture: EngineFixture, tag: String) async throws -> String {
            let response = try await client.request(
                "POST", "/images/build",
                json: [
                    "context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN echo \(fixture.runID) > /id\n"],
                    "tag": tag, "labels": fixture.labels.merging(["org.example.role": "test"]) { $1 },
                ])
            return try #require(try terminalResult(response)["image_id"] as? String)
        }

        @Test("inspect, labels, HEAD, tag, list by name, remove", arguments: TestEngines.available)
        func lifecycle(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let repository = "localhost/ociman-test-\(fixture.runID)"
            let first = "\(repository):first"
            let second = "\(repository):second"
            try await fixture.withCleanup(images: [first, second]) {
                try await withOcimand(engine: engine) { _, client in
                    let imageID = try await buildImage(client, fixture, tag: first)

                    let inspect = try await client.get(path(first))
                    #expect(inspect.status == 200)
                    let image = try inspect.object()
                    #expect(image["id"] as? String == imageID)
                    #expect((image["references"] as? [String])?.contains(first) == true)
                    let labels = image["labels"] as? [String: String]
                    #expect(labels?[fixture.labelKey] == fixture.runID)
                    #expect(labels?["org.example.role"] == "test")
                    #expect((image["size"] as? Int ?? 0) > 0)
                    #expect((image["created"] as? String)?.hasPrefix("20") == true)

                    let head = try await client.request("HEAD", path(first))
                    #expect(head.status == 200 && head.body.isEmpty)
                    let headMissing = try await client.request("HEAD", path("\(repository):missing"))
                    #expect(headMissing.status == 404 && headMissing.body.isEmpty)
                    #expect(try await client.get(path("\(repository):missing")).status == 404)

                    let tagged = try await client.request("POST", path(first) + "/tag", json: ["target": second])
                    #expect(tagged.status == 201, "\(tagged.text)")
                    #expect(try await client.get(path(second)).object()["id"] as? String == imageID)

                    // Registry-insensitive like the library: Podman may store `localhost/x` or `docker.io/…`.
                    let bare = repository.replacingOccurrences(of: "localhost/", with: "")
                    for name in [repository, bare] {
                        let listed = try await client.get("/images?name=\(name)").array()
                        #expect(listed.count == 1, "name=\(name): \(listed)")
                        let references = Set(listed.first?["references"] as? [String] ?? [])
                        #expect(references.isSuperset(of: [first, second]), "\(references)")
                    }
                    let byTag = try await client.get("/images?name=\(second)").array()
                    #expect(byTag.count == 1)
                    #expect(try await client.get("/images?name=\(repository):nope").array().isEmpty)
                    let everything = try await client.get("/images").array()
                    #expect(everything.contains { $0["id"] as? String == imageID })

                    #expect(try await client.delete(path(first)).status == 204)
                    #expect(try await client.get(path(first)).status == 404)
                    #expect(try await client.get(path(second)).status == 200, "removing one reference keeps the other")
                    #expect(try await client.delete(path(second)).status == 204)
                    #expect(try await client.request("HEAD", path(second)).status == 404)
                    #expect(try await client.delete(path(second)).status == 404)
                }
            }
        }

        @Test("removing an image a container uses is 409 without force", arguments: TestEngines.available)
        func removeInUse(engine: String) async throws {
            let fixture = EngineFixture(engine: engine)
            let tag = "localhost/ociman-test-\(fixture.runID):in-use"
            try await fixture.withCleanup(images: [tag]) {
                try await withOcimand(engine: engine) { _, client in
                    _ = try await buildImage(client, fixture, tag: tag)
                    _ = try await fixture.output(of: tag, ["true"])
                    let body = try JSONSerialization.data(withJSONObject: ["Image": tag, "Cmd": ["true"], "Labels": fixture.labels])
                    _ = try await fixture.client.send(
                        EngineRequest(.POST, "/containers/create", body: .bytes(contentType: "application/json", [UInt8](body))))
                    let refused = try await client.delete(path(tag))
                    #expect(refused.status == 409, "\(refused.text)")
                    #expect(refused.header("Content-Type") == "application/problem+json")
                    #expect(try await client.request("HEAD", path(tag)).status == 200)
                    #expect(try await client.delete(path(tag) + "?force=true").status == 204)
                    #expect(try await client.request("HEAD", path(tag)).status == 404)
                }
            }
        }

        @Test("bad references are 400", arguments: TestEngines.available)
        func badReferences(engine: String) async throws {
            try await withOcimand(engine: engine) { _, client in
                for bad in ["UPPER/case:1", "a b", "-leading", "x:bad:tag", "a@sha256:short"] {
                    let encoded = path(bad).replacingOccurrences(of: " ", with: "%20")
                    #expect(try await client.get(encoded).status == 400, "GET \(bad)")
                    #expect(try await client.request("HEAD", encoded).status == 400, "HEAD \(bad)")
                    #expect(try await client.delete(encoded).status == 400, "DELETE \(bad)")
                    let tag = try await client.request("POST", encoded + "/tag", json: ["target": "localhost/ok:1"])
                    #expect(tag.status == 400, "tag \(bad)")
                    #expect(try await client.request("POST", "/images/pull", json: ["reference": bad]).status == 400)
                }
                let digestTarget = try await client.request(
                    "POST", path(TestEngines.baseImage) + "/tag",
                    json: ["target": "localhost/x@sha256:" + String(repeating: "a", count: 64)])
                #expect(digestTarget.status == 400)
                #expect(try digestTarget.object()["field"] as? String == "target")
                #expect(try await client.get("/images?name=Not%20Valid").status == 400)
                #expect(try await client.request("POST", "/images/push", json: ["reference": "Bad"]).status == 400)
            }
        }

        @Test("pull errors end the stream with a classified error", arguments: TestEngines.available)
        func pullErrors(engine: String) async throws {
            try await withOcimand(engine: engine) { _, client in
                // No registry is reachable here: a refused connection is `unreachable`.
                let response = try await client.request("POST", "/images/pull", json: ["reference": "localhost:1/nope:1"])
                #expect(response.status == 200)
                #expect(response.header("Content-Type")?.hasPrefix("application/x-ndjson") == true)
                let last = try #require(try response.lines().last)
                #expect(last["type"] as? String == "error")
                #expect(last["code"] as? String == "unreachable", "\(last)")
                #expect((last["message"] as? String)?.contains("localhost:1") == true)
            }
        }

        @Test("pushing an image that does not exist is 404", arguments: TestEngines.available)
        func pushMissing(engine: String) async throws {
            try await withOcimand(engine: engine) { _, client in
                let response = try await client.request("POST", "/images/push", json: ["reference": "localhost:1/ociman-missing:1"])
                #expect(response.status == 404)
            }
        }
    }
}
