import ArgumentParser
import Foundation
import OcimanClient
import OpenAPIRuntime

/// `ociman`: docker-like commands against an ocimand (`--host` / `OCIMAN_HOST`).
@main
struct Ociman: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ociman",
        abstract: "Run containers and build images through ocimand.",
        discussion: """
            Talks to the ocimand at --host (OCIMAN_HOST: tcp://HOST:PORT or unix:///PATH, default \
            tcp://127.0.0.1:8420) with the token from --token-file or OCIMAN_TOKEN. Exit status: the \
            container's for run and exec, 125 when ocimand refused or could not be reached.
            Shell completion: ociman --generate-completion-script bash|zsh|fish.
            """,
        subcommands: [
            Backend.self, Run.self, Ps.self, Inspect.self, Exec.self, Attach.self, Logs.self, Stop.self, Kill.self,
            Wait.self, Rm.self, Commit.self, Build.self, Hash.self, Images.self, Tag.self, Rmi.self, Pull.self,
            Push.self, Session.self,
        ])

    // Also accepted before the subcommand (`ociman --host ... ps`), as docker does.
    @OptionGroup var connection: ConnectionOptions

    /// What ociman exits with when the request itself failed (docker's convention).
    static let failureStatus: Int32 = 125

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("ociman: \(failure.message)\n".utf8))
            Foundation.exit(failureStatus)
        } catch let error as ClientError {
            let message = (error.underlyingError as? CommandFailure)?.message ?? "\(error.underlyingError)"
            FileHandle.standardError.write(Data("ociman: \(message)\n".utf8))
            Foundation.exit(failureStatus)
        } catch {
            exit(withError: error)
        }
    }
}

/// Why a command failed, in words for the user.
struct CommandFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
