import Foundation
import OcimanTestSupport
import Testing

/// ocimand run by an unprivileged user against that user's rootless Podman
/// (`OCIMAN_TEST_ENGINES=podman-rootless`); the container and registry suites run there too.
@Suite("Rootless Podman")
struct RootlessPodmanTests {
    static let engines = TestEngines.available.filter { $0 == "podman-rootless" }

    @Test("finds the user's socket, reports rootless, keeps state under XDG_STATE_HOME, execs as a user, builds", arguments: engines)
    func rootless(engine: String) async throws {
        let fixture = EngineFixture(engine: engine)
        let account = try #require(TestEngines.account(for: engine))
        let tag = "localhost/ociman-rootless-\(fixture.runID):1"
        try await fixture.withCleanup(images: [tag]) {
            try await withOcimand(engine: engine) { server, client in
                let backend = try await client.get("/backend").object()
                #expect(backend["rootless"] as? Bool == true && backend["kind"] as? String == "podman")
                #expect(backend["endpoint"] as? String == "unix://\(account.runtimeDirectory)/podman/podman.sock")
                // The process is the user's, and so is its state.
                let status = try String(contentsOfFile: "/proc/\(server.processIdentifier)/status", encoding: .utf8)
                #expect(status.contains("Uid:\t\(account.uid)\t"), "\(status.prefix(400))")
                let state = account.home + "/.local/state/ociman"
                var stateInfo = stat()
                #expect(stat(state + "/sessions.json", &stateInfo) == 0 && stateInfo.st_uid == account.uid)

                let name = "rootless-\(fixture.runID)"
                let run = try await client.post(
                    "/containers",
                    json: ["image": TestEngines.baseImage, "name": name, "labels": fixture.labels, "command": ["sleep", "300"]])
                #expect(run.status == 201, "\(run.text)")
                let asNobody = try await client.post(
                    "/containers/\(name)/exec", json: ["command": ["sh", "-c", "id -u; cat"], "user": "65534", "stdin": "in\n"])
                #expect(try asNobody.object()["stdout"] as? String == "65534\nin\n", "\(asNobody.text)")

                let build = try await client.post(
                    "/images/build",
                    json: ["context": ["instructions": "FROM \(TestEngines.baseImage)\nRUN echo built > /built\n"], "tag": tag])
                let end = try #require(try build.lines().last)
                #expect(end["type"] as? String == "result" && end["reference"] as? String == tag, "\(build.text)")
                #expect(try await client.delete("/containers/\(name)?force=true").status == 204)
            }
        }
    }
}
