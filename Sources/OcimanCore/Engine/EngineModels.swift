/// Values crossing `ContainerEngine`: plain, backend-neutral, no engine wire format.

/// What `GET /backend` reports besides the kind and endpoint.
public struct EngineInfo: Sendable, Equatable {
    public var version: String
    /// The API version negotiated with the engine.
    public var apiVersion: String
    public var rootless: Bool
    /// CIDRs of the network containers join by default.
    public var bridgeSubnets: [String]
    public var hostGateway: String?

    public init(version: String, apiVersion: String, rootless: Bool, bridgeSubnets: [String], hostGateway: String?) {
        self.version = version
        self.apiVersion = apiVersion
        self.rootless = rootless
        self.bridgeSubnets = bridgeSubnets
        self.hostGateway = hostGateway
    }
}

/// A container to create: the run request as the engine gets it, ociman's labels included.
public struct ContainerConfig: Sendable, Equatable {
    public var name: String?
    public var image: String
    /// Nil keeps the image's command.
    public var command: [String]?
    public var entrypoint: [String]?
    public var environment: [String: String]
    public var labels: [String: String]
    public var workdir: String?
    public var user: String?
    public var publish: [PublishSpec]
    public var mounts: [MountSpec]
    public var autoRemove: Bool
    /// The main process gets a terminal.
    public var tty = false
    /// Stdin stays open, for clients that attach.
    public var openStdin = false

    public init(
        name: String? = nil, image: String, command: [String]? = nil, entrypoint: [String]? = nil,
        environment: [String: String] = [:], labels: [String: String] = [:], workdir: String? = nil,
        user: String? = nil, publish: [PublishSpec] = [], mounts: [MountSpec] = [], autoRemove: Bool = false
    ) {
        self.name = name
        self.image = image
        self.command = command
        self.entrypoint = entrypoint
        self.environment = environment
        self.labels = labels
        self.workdir = workdir
        self.user = user
        self.publish = publish
        self.mounts = mounts
        self.autoRemove = autoRemove
    }
}

/// An inspected container and what only the runtime needs besides the client's view.
public struct InspectedContainer: Sendable, Equatable {
    public var container: Container
    /// The main process in the engine host's PID namespace; 0 when not running or unknown.
    public var processID: Int
    /// With a TTY the output is one stream.
    public var tty: Bool

    public init(container: Container, processID: Int = 0, tty: Bool = false) {
        self.container = container
        self.processID = processID
        self.tty = tty
    }
}

/// A piece of a process's output, as it came.
public struct OutputChunk: Sendable, Equatable {
    public var stream: StandardStream
    public var bytes: [UInt8]

    public init(_ stream: StandardStream, _ bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// A started exec: its output until the process ends, and a way to cut it short.
public struct ExecAttachment: Sendable {
    public var output: AsyncThrowingStream<OutputChunk, any Error>
    /// Ends the output from outside its consumer (a deadline): the engine connection closes.
    public var close: @Sendable () -> Void

    public init(output: AsyncThrowingStream<OutputChunk, any Error>, close: @escaping @Sendable () -> Void) {
        self.output = output
        self.close = close
    }
}

public struct ExecState: Sendable, Equatable {
    public var running: Bool
    /// Created with a terminal (its output is one raw stream).
    public var tty = false
    /// Created with stdin attached (an interactive session can write to it).
    public var openStdin = false
    /// Meaningful only once `running` is false.
    public var exitCode: Int?
    /// The process in the engine host's PID namespace; 0 or nil when not started.
    public var processID: Int?
    public var containerID: String?

    public init(running: Bool, exitCode: Int?, processID: Int? = nil, containerID: String? = nil) {
        self.running = running
        self.exitCode = exitCode
        self.processID = processID
        self.containerID = containerID
    }
}

/// The engine-side options of a build (ociman's own, like `if_absent`, stay in the runtime).
public struct ImageBuildRequest: Sendable, Equatable {
    public var tags: [String]
    /// Path of the Dockerfile inside the context; nil means `Dockerfile`.
    public var dockerfile: String?
    public var buildArguments: [String: String]
    public var labels: [String: String]
    public var target: String?
    public var noCache: Bool
    public var pull: Bool

    public init(
        tags: [String] = [], dockerfile: String? = nil, buildArguments: [String: String] = [:],
        labels: [String: String] = [:], target: String? = nil, noCache: Bool = false, pull: Bool = false
    ) {
        self.tags = tags
        self.dockerfile = dockerfile
        self.buildArguments = buildArguments
        self.labels = labels
        self.target = target
        self.noCache = noCache
        self.pull = pull
    }
}

/// One step of an engine's build, as it reports it.
public enum BuildProgress: Sendable, Equatable {
    /// A line of the build's output, without its terminator.
    case line(String)
    /// The image the build produced (so far: a later failure still wins).
    case built(imageID: String)
    /// The build failed with this message.
    case failed(String)
}

/// One step of a pull or push.
public enum TransferProgress: Sendable, Equatable {
    case status(String, id: String?, current: Int64?, total: Int64?)
    /// The manifest digest, once the engine names it.
    case digest(String)
    /// The registry operation failed with this message.
    case failed(String)
}

/// A terminal's size in character cells.
public struct TerminalSize: Sendable, Equatable {
    public var rows: Int
    public var columns: Int

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }
}

/// A two-way engine connection to a process: an interactive exec, or an attach to a
/// container's main process. Output is pulled as it is consumed; each write returns once the
/// engine connection took the bytes, so a process that stops reading its stdin holds the writer.
public struct ProcessConnection: Sendable {
    public var output: AsyncThrowingStream<OutputChunk, any Error>
    public var write: @Sendable ([UInt8]) async throws -> Void
    /// End of file on the process's stdin; its output keeps coming.
    public var finishWriting: @Sendable () async throws -> Void
    /// Ends the connection from outside the output's consumer.
    public var close: @Sendable () -> Void

    public init(
        output: AsyncThrowingStream<OutputChunk, any Error>, write: @escaping @Sendable ([UInt8]) async throws -> Void,
        finishWriting: @escaping @Sendable () async throws -> Void, close: @escaping @Sendable () -> Void
    ) {
        self.output = output
        self.write = write
        self.finishWriting = finishWriting
        self.close = close
    }
}
