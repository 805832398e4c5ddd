import ArgumentParser
import Foundation
import OcimanClient

struct Backend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Which engine ocimand drives.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let backend = try await connection.client().getBackend().ok.body.json
        if output.json { return try Output.json(backend) }
        Output.table(
            ["KIND", "VERSION", "API", "ROOTLESS", "ENDPOINT"],
            [[backend.kind.rawValue, backend.version, backend.apiVersion, String(backend.rootless), backend.endpoint]])
    }
}

struct Session: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Leases that own containers.", subcommands: [Create.self, Renew.self, Remove.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a session; prints its id.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: OutputOptions
        @Option(name: .long, help: "Seconds the lease lasts.") var lease = 600

        func run() async throws {
            let session = try await connection.client().createSession(body: .json(.init(leaseSeconds: lease))).created.body.json
            if output.json { return try Output.json(session) }
            Output.print(session.id)
        }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Extend a session's lease.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: OutputOptions
        @Option(name: .long, help: "Seconds from now.") var lease = 600
        @Argument(help: "Session id.") var id: String

        func run() async throws {
            let session = try await connection.client().renewSession(
                path: .init(id: id), body: .json(.init(leaseSeconds: lease))
            ).ok.body.json
            if output.json { return try Output.json(session) }
            Output.print(session.expiresAt.formatted(.iso8601))
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "End a session and remove its containers.")
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Session id.") var id: String

        func run() async throws {
            let result = try await connection.client().deleteSession(path: .init(id: id)).ok.body.json
            if output.json { return try Output.json(result) }
            Output.print("removed \(result.removedContainers) containers")
        }
    }
}
