import Foundation
import OcimanTestSupport
import Testing

/// Issue 14: TTY exec sessions and attach over WebSocket, driven by a client nobody here wrote
/// (Python's `websockets`, in the venv scripts/setup/interactive-tools.sh makes). The scenarios
/// live in Tests/interactive/ws_session.py; this suite runs them against ocimand on each engine,
/// with a token so that the handshake's authorization is part of every one.
@Suite("Interactive sessions over WebSocket", .timeLimit(.minutes(10)))
struct InteractiveSessionTests {
    static let python = "/opt/ociman-venv-ws/bin/python"
    static let script = SystemRoutesTests.repositoryRoot + "/Tests/interactive/ws_session.py"
    static let scenarios = [
        "tty", "interrupt", "binary", "drop", "ping", "stalled", "stalled-stdin", "attach", "detach", "refusals", "token",
    ]

    @Test(
        "stty size after a resize, Ctrl-C, exit codes, 10 MB through cat, a dropped socket, ping, stalled both ways, attach, refusals",
        arguments: TestEngines.available)
    func scenariosWithWebsockets(engine: String) async throws {
        let token = UUID().uuidString
        let fixture = EngineFixture(engine: engine)
        try await fixture.withCleanup {
            try await withOcimand(engine: engine, environment: ["OCIMAN_TOKEN": token]) { server, _ in
                let (status, output) = try Self.run(
                    [Self.script, server.baseURL, fixture.labelKey, fixture.runID] + Self.scenarios, token: token,
                    pid: server.processIdentifier)
                for scenario in Self.scenarios {
                    #expect(output.contains("ok   \(scenario) "), "\(engine): \(scenario) did not pass:\n\(output)")
                }
                #expect(status == 0, "\(engine):\n\(output)")
            }
        }
    }

    static func run(_ arguments: [String], token: String, pid: Int32) throws -> (Int32, String) {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw TestSupportError("\(python) is missing: run scripts/setup-engines.sh")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OCIMAN_TOKEN"] = token
        environment["OCIMAND_PID"] = String(pid)
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
