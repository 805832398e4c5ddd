import ArgumentParser
import Foundation
import OcimanClient

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a container; in the foreground (exiting with its status) unless -d.")

    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
    @Flag(name: .shortAndLong, help: "Leave it running and print its id.") var detach = false
    @Flag(name: .shortAndLong, help: "Keep stdin open and connect it.") var interactive = false
    @Flag(name: .shortAndLong, help: "Give it a terminal.") var tty = false
    @Flag(name: .long, help: "Remove it when it exits.") var rm = false
    @Option(name: .long, help: "Container name.") var name: String?
    @Option(name: .shortAndLong, help: "Environment variable KEY=VALUE (repeatable).") var env: [String] = []
    @Option(name: .shortAndLong, help: "Publish [IP:][HOST_PORT:]CONTAINER_PORT[/udp] (repeatable).") var publish: [String] = []
    @Option(name: [.customShort("l"), .long], help: "Label KEY=VALUE (repeatable).") var label: [String] = []
    @Option(name: .shortAndLong, help: "Mount SOURCE:TARGET[:ro]; a SOURCE without / is a volume (repeatable).")
    var volume: [String] = []
    @Option(name: .shortAndLong, help: "Working directory.") var workdir: String?
    @Option(name: .shortAndLong, help: "User (user, uid, user:group or uid:gid).") var user: String?
    @Option(name: .long, help: "Replace the image's entrypoint.") var entrypoint: String?
    @Option(name: .long, help: "Session (ociman session create) that owns it.") var session: String?
    @Argument(help: "The image.") var image: String
    @Argument(parsing: .captureForPassthrough, help: "Command and arguments.") var command: [String] = []

    func run() async throws {
        let client = try connection.client()
        let foregroundInteractive = !detach && (interactive || tty)
        let request = Components.Schemas.RunContainerRequest(
            image: image, name: name, command: command.isEmpty ? nil : command,
            entrypoint: entrypoint.map { [$0] },
            env: env.isEmpty ? nil : .init(additionalProperties: try keyValues(env, option: "-e")),
            labels: label.isEmpty ? nil : .init(additionalProperties: try keyValues(label, option: "-l")),
            publish: try publish.map(Self.publishSpec), mounts: try volume.map(Self.mount), workdir: workdir, user: user,
            // In the foreground without a terminal, ociman removes it itself once it has its output and status.
            autoRemove: rm && (detach || foregroundInteractive), session: session, tty: tty, stdinOpen: interactive)
        let container = try await client.runContainer(body: .json(request)).created.body.json
        if detach {
            if output.json { try Output.json(container) } else { Output.print(container.id) }
            return
        }
        let status: Int32
        if foregroundInteractive {
            status = try await TerminalSession.run(
                connection: connection, path: "/containers/\(container.id)/attach", stdin: interactive, tty: tty,
                detachable: true, closesStdin: !tty)
        } else {
            status = try await Self.follow(container.id, client: client)
            if rm { _ = try await client.removeContainer(path: .init(id: container.id), query: .init(force: true)) }
        }
        throw ExitCode(status)
    }

    /// Output until the container stops, then its exit status.
    static func follow(_ id: String, client: Client) async throws -> Int32 {
        for try await event in try await client.logEvents(container: id, follow: true) {
            switch event {
            case .stdout(let line): Output.write(Array((line.line + "\n").utf8))
            case .stderr(let line): Output.write(Array((line.line + "\n").utf8), error: true)
            case .error(let failure): throw CommandFailure(failure.message)
            case .end: break
            }
        }
        let result = try await client.waitContainer(path: .init(id: id), query: .init(condition: .notRunning)).ok.body.json
        return Int32(truncatingIfNeeded: result.exitCode)
    }

    static func publishSpec(_ text: String) throws -> Components.Schemas.PublishSpec {
        var spec = Substring(text)
        var proto: Components.Schemas.PortProtocol?
        if let slash = spec.lastIndex(of: "/") {
            guard let parsed = Components.Schemas.PortProtocol(rawValue: String(spec[spec.index(after: slash)...]))
            else { throw ValidationError("-p: unknown protocol in \(text)") }
            proto = parsed
            spec = spec[..<slash]
        }
        let parts = spec.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard (1...3).contains(parts.count), let containerPort = Int(parts.last!) else {
            throw ValidationError("-p expects [IP:][HOST_PORT:]CONTAINER_PORT[/udp], not \(text)")
        }
        let hostPort = parts.count >= 2 ? Int(parts[parts.count - 2]) : nil
        let hostIP = parts.count == 3 ? parts[0] : nil
        return .init(containerPort: containerPort, _protocol: proto, hostIp: hostIP, hostPort: hostPort)
    }

    static func mount(_ text: String) throws -> Components.Schemas.Mount {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 2 || (parts.count == 3 && parts[2] == "ro") else {
            throw ValidationError("-v expects SOURCE:TARGET[:ro], not \(text)")
        }
        return .init(
            _type: parts[0].hasPrefix("/") ? .bind : .volume, source: parts[0], target: parts[1], readOnly: parts.count == 3)
    }
}

struct Ps: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List containers, stopped ones too.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
    @Option(name: [.customShort("l"), .long], help: "Only those with this label (KEY or KEY=VALUE, repeatable).")
    var label: [String] = []
    @Option(name: .long, help: "Only the container with exactly this name.") var name: String?

    func run() async throws {
        let containers = try await connection.client().listContainers(
            query: .init(label: label.isEmpty ? nil : label, name: name)
        ).ok.body.json
        if output.json { return try Output.json(containers) }
        Output.table(
            ["CONTAINER ID", "IMAGE", "STATUS", "NAME"],
            containers.map { [Output.shortID($0.id), $0.image, $0.state.status, $0.name] })
    }
}

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a container as JSON.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Container id or name.") var container: String

    func run() async throws {
        try Output.json(try await connection.client().inspectContainer(path: .init(id: container)).ok.body.json)
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a container's output.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Keep printing new output until the container stops.") var follow = false
    @Option(name: .long, help: "Only the last N lines.") var tail: Int?
    @Argument(help: "Container id or name.") var container: String

    func run() async throws {
        for try await event in try await connection.client().logEvents(container: container, follow: follow, tail: tail) {
            switch event {
            case .stdout(let line): Output.write(Array((line.line + "\n").utf8))
            case .stderr(let line): Output.write(Array((line.line + "\n").utf8), error: true)
            case .error(let failure): throw CommandFailure(failure.message)
            case .end: return
            }
        }
    }
}

struct Stop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop containers (SIGTERM, then SIGKILL).")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Seconds before SIGKILL.") var time: Int?
    @Argument(help: "Container ids or names.") var containers: [String]

    func run() async throws {
        let client = try connection.client()
        for container in containers {
            _ = try await client.stopContainer(path: .init(id: container), query: .init(timeout: time)).noContent
            Output.print(container)
        }
    }
}

struct Kill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a signal to containers' main process.")
    @OptionGroup var connection: ConnectionOptions
    @Option(name: .shortAndLong, help: "Signal name or number (default KILL).") var signal: String?
    @Argument(help: "Container ids or names.") var containers: [String]

    func run() async throws {
        let client = try connection.client()
        for container in containers {
            _ = try await client.killContainer(path: .init(id: container), query: .init(signal: signal)).noContent
            Output.print(container)
        }
    }
}

struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Wait until containers stop; print their exit codes.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Container ids or names.") var containers: [String]

    func run() async throws {
        let client = try connection.client()
        for container in containers {
            let result = try await client.waitContainer(path: .init(id: container), query: .init(condition: .notRunning))
            Output.print(String(try result.ok.body.json.exitCode))
        }
    }
}

struct Rm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove containers.")
    @OptionGroup var connection: ConnectionOptions
    @Flag(name: .shortAndLong, help: "Remove running ones too.") var force = false
    @Argument(help: "Container ids or names.") var containers: [String]

    func run() async throws {
        let client = try connection.client()
        for container in containers {
            _ = try await client.removeContainer(path: .init(id: container), query: .init(force: force)).noContent
            Output.print(container)
        }
    }
}

struct Commit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Make an image from a container.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions
    @Flag(name: .long, help: "Pause the container while committing.") var pause = false
    @Option(name: .shortAndLong, help: "Dockerfile instruction to apply (repeatable).") var change: [String] = []
    @Argument(help: "Container id or name.") var container: String
    @Argument(help: "Reference of the new image.") var reference: String

    func run() async throws {
        let result = try await connection.client().commitContainer(
            path: .init(id: container),
            body: .json(.init(reference: reference, pause: pause, changes: change.isEmpty ? nil : change))
        ).created.body.json
        if output.json { return try Output.json(result) }
        Output.print(result.imageId)
    }
}
