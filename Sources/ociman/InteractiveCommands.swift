import ArgumentParser
import Foundation
import OcimanClient

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a running container; exits with its status.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Connect stdin.") var interactive = false
    @Flag(name: .shortAndLong, help: "Give it a terminal.") var tty = false
    @Option(name: .shortAndLong, help: "Environment variable KEY=VALUE (repeatable).") var env: [String] = []
    @Option(name: .shortAndLong, help: "Working directory.") var workdir: String?
    @Option(name: .shortAndLong, help: "User (user, uid, user:group or uid:gid).") var user: String?
    @Argument(help: "Container id or name.") var container: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.") var command: [String]

    func run() async throws {
        let session = try await connection.client().createExecSession(
            path: .init(id: container),
            body: .json(
                .init(
                    command: command, env: env.isEmpty ? nil : .init(additionalProperties: try keyValues(env, option: "-e")),
                    user: user, workdir: workdir, tty: tty, stdin: interactive))
        ).created.body.json
        throw ExitCode(
            try await TerminalSession.run(
                connection: connection, path: "/exec-sessions/\(session.id)/attach", stdin: interactive, tty: tty,
                // With a TTY, Ctrl-D is a byte the process reads.
                detachable: false, closesStdin: !tty))
    }
}

struct Attach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Connect to a running container's main process (detach with Ctrl-P Ctrl-Q).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .long, help: "Do not connect stdin.") var noStdin = false
    @Argument(help: "Container id or name.") var container: String

    func run() async throws {
        let client = try connection.client()
        // Whether the process has a terminal decides raw mode and the exit.
        let inspected = try await client.inspectContainer(path: .init(id: container)).ok.body.json
        guard inspected.state.running else { throw CommandFailure("container \(container) is not running") }
        let status = try await TerminalSession.run(
            connection: connection, path: "/containers/\(inspected.id)/attach", stdin: !noStdin,
            // The engines end an attach whose stdin closes (with a TTY, output still to come or
            // not): the end of ociman's input only stops reading it.
            tty: isatty(STDIN_FILENO) == 1, detachable: true, closesStdin: false)
        throw ExitCode(status)
    }
}
