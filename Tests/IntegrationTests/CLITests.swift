import EngineDriver
import Foundation
import OcimanTestSupport
import Testing

/// Issue 14: every `ociman` subcommand against ocimand on each engine, then `exec -it ... psql`
/// and `run --rm -it ... sh` in tmux. The cases live in Tests/interactive/cli_test.sh (one
/// function each); this suite gives them an ocimand with a token file and /tmp as a context
/// root, and removes what they made.
@Suite("ociman CLI", .timeLimit(.minutes(15)))
struct CLITests {
    static let script = SystemRoutesTests.repositoryRoot + "/Tests/interactive/cli_test.sh"
    static let cases = [
        "backend", "run_detached_ps_inspect", "run_foreground_status", "run_publish_mount_entrypoint",
        "exec_status_env_stdin", "logs_tail_follow", "stop_kill_wait_rm", "commit_tag_images_rmi", "build_hash",
        "pull_push", "session", "attach_piped", "token_and_host", "completion", "exec_it_psql", "run_rm_it_sh",
    ]

    @Test("every subcommand, psql and sh in a terminal", arguments: TestEngines.available)
    func everySubcommand(engine: String) async throws {
        let binary = try Self.ocimanBinary()
        let directory = try temporaryDirectory("ociman-cli")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tokenFile = directory + "/token"
        try UUID().uuidString.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let fixture = EngineFixture(engine: engine)
        do {
            try await Self.runCases(engine: engine, binary: binary, tokenFile: tokenFile, fixture: fixture)
        } catch {
            await Self.removeTestImages(fixture)
            throw error
        }
        await Self.removeTestImages(fixture)
    }

    static func runCases(engine: String, binary: String, tokenFile: String, fixture: EngineFixture) async throws {
        try await fixture.withCleanup {
            try await withOcimand(
                engine: engine, arguments: ["--context-root", "/tmp"], environment: ["OCIMAN_TOKEN_FILE": tokenFile]
            ) { server, _ in
                let (status, output) = try Self.run(
                    [Self.script, binary, fixture.labelKey, fixture.runID],
                    environment: [
                        "OCIMAN_HOST": "tcp://\(server.host):\(server.port)", "OCIMAN_TOKEN_FILE": tokenFile,
                        "OCIMAN_ENGINE": engine,
                    ])
                for name in Self.cases {
                    #expect(output.contains("ok   \(name)\n"), "\(engine): \(name) did not pass:\n\(output)")
                }
                #expect(status == 0, "\(engine):\n\(output)")
            }
        }
    }

    /// Images the cases name `localhost/ociman-cli-test*` with the run id in their tag, and the
    /// content-addressed one (its tag is a hash), left when a case failed half-way.
    static func removeTestImages(_ fixture: EngineFixture) async {
        guard let images = try? await fixture.client.listImages() else { return }
        for reference in images.flatMap({ $0.repoTags ?? [] })
        where reference.hasPrefix("localhost/ociman-cli-test")
            && (reference.contains(fixture.runID) || reference.hasPrefix("localhost/ociman-cli-test-ca:"))
        {
            _ = try? await fixture.client.send(
                EngineRequest(.DELETE, "/images/\(EngineRequest.escape(reference))", query: [("force", "true")]))
        }
    }

    static func ocimanBinary() throws -> String {
        let ocimand = try OcimandProcess.locateBinary()
        let binary = URL(fileURLWithPath: ocimand).deletingLastPathComponent().appendingPathComponent("ociman").path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw TestSupportError("\(binary) is missing: swift build --product ociman")
        }
        return binary
    }

    static func run(_ arguments: [String], environment extra: [String: String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "OCIMAN_TOKEN")
        for (key, value) in extra { environment[key] = value }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
