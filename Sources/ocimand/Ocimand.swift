import ArgumentParser
import EngineAdapters
import EngineDriver
import Foundation
import Logging
import MHDTransport
import OcimanAPI
import RFC3339
import OcimanCore
import OpenAPIRuntime

@main
struct Ocimand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ocimand",
        abstract: "One REST API over Docker and Podman.",
        discussion: "Every option can also be set with the environment variable named in its help; the flag wins.",
        subcommands: [Healthcheck.self]
    )

    @Option(help: "HOST:PORT, [IPv6]:PORT or unix:PATH to listen on (OCIMAN_LISTEN). Default \(Defaults.listen).")
    var listen: String?

    @Option(help: "docker or podman; unset auto-detects (OCIMAN_BACKEND).")
    var backend: String?

    @Option(help: "Seconds before an engine call without a response fails (OCIMAN_ENGINE_TIMEOUT). Default \(Defaults.engineTimeout).")
    var engineTimeout: Int?

    @Option(help: "Directory that build and hash contexts may be read from; repeatable (OCIMAN_CONTEXT_ROOTS, colon-separated).")
    var contextRoot: [String] = []

    @Option(help: "Permissions of a unix: listen socket, octal (OCIMAN_SOCKET_MODE). Default \(Defaults.socketMode).")
    var socketMode: String?

    @Option(help: "Seconds an idle connection is kept open (OCIMAN_IDLE_TIMEOUT). Default \(Defaults.idleTimeout).")
    var idleTimeout: Int?

    @Option(help: "Maximum simultaneous connections; one more is answered 503 (OCIMAN_MAX_CONNECTIONS). Default \(Defaults.maxConnections).")
    var maxConnections: Int?

    @Option(help: "Maximum simultaneous connections from one IP address; one more is answered 503, 0 for no such limit (OCIMAN_MAX_CONNECTIONS_PER_CLIENT). Default \(Defaults.maxConnectionsPerClient).")
    var maxConnectionsPerClient: Int?

    @Option(help: "Seconds a client gets to send a request head, from connecting (OCIMAN_HEADER_TIMEOUT). Default \(Defaults.headerTimeout).")
    var headerTimeout: Int?

    @Option(help: "Maximum JSON request body in bytes (OCIMAN_MAX_BODY). Default \(Defaults.maxBody).")
    var maxBody: Int64?

    @Option(help: "Maximum tar build-context upload in bytes (OCIMAN_MAX_TAR_BODY). Default \(Defaults.maxTarBody >> 30) GiB.")
    var maxTarBody: Int64?

    @Option(help: "Seconds in-flight requests get to finish on SIGTERM (OCIMAN_SHUTDOWN_GRACE). Default \(Defaults.shutdownGrace).")
    var shutdownGrace: Int?

    @Option(help: "trace, debug, info, notice, warning, error or critical (OCIMAN_LOG_LEVEL). Default \(Defaults.logLevel).")
    var logLevel: String?

    @Option(help: "Directory for session leases; may be shared by several ocimand (OCIMAN_STATE_DIR). Default /var/lib/ociman, or $XDG_STATE_HOME/ociman when not root.")
    var stateDir: String?

    @Option(help: "Seconds between reaper passes over expired containers (OCIMAN_REAP_INTERVAL). Default \(Defaults.reapInterval).")
    var reapInterval: Int?

    @Option(help: "text or json: one JSON object per log line on stderr (OCIMAN_LOG_FORMAT). Default \(Defaults.logFormat).")
    var logFormat: String?

    @Option(help: "File holding the bearer token every route but /health then requires (OCIMAN_TOKEN_FILE; or the token itself in OCIMAN_TOKEN). Required to listen beyond loopback.")
    var tokenFile: String?

    @Option(help: "Web origin (scheme://host[:port]) whose pages may call the service; repeatable (OCIMAN_ALLOW_ORIGINS, comma-separated). Default none.")
    var allowOrigin: [String] = []

    @Option(help: "Further Host name clients use for the service besides loopback names and the listen address; repeatable (OCIMAN_ALLOW_HOSTS, comma-separated).")
    var allowHost: [String] = []

    @Option(help: "Seconds a client gets to send a request's head and JSON body (OCIMAN_REQUEST_TIMEOUT). Default \(Defaults.requestTimeout).")
    var requestTimeout: Int?

    @Option(help: "auto, or private to always run a supervised podman system service of our own (OCIMAN_PODMAN_SERVICE). Default \(Defaults.podmanService).")
    var podmanService: String?

    @Flag(help: "Allow a tcp:// engine endpoint without TLS beyond loopback (OCIMAN_ALLOW_PLAIN_TCP=true). Default off: engine access is root-equivalent.")
    var allowPlainTCP = false

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings = try Settings(command: self, environment: environment)
        // The passed socket is ours alone: a private Podman service must not see the variables.
        if settings.socketActivated { SocketActivation.clearEnvironment() }
        let listenAddress = try settings.exposedAddress()
        let admission: RequestAdmission
        do {
            var listenHost: String?
            if case .tcp(let host, _) = listenAddress { listenHost = host }
            admission = try RequestAdmission(
                listenHost: listenHost, extraHosts: settings.allowedHosts, allowedOrigins: settings.allowedOrigins)
        } catch {
            throw Failure(error.description)
        }
        let metrics = Observability.bootstrap(logLevel: settings.logLevel, logFormat: settings.logFormat)
        let logger = Logger(label: "ocimand")
        signal(SIGPIPE, SIG_IGN)
        let sessions: SessionStore
        let execLedger: ProcessLedger
        let buildLedger: ProcessLedger
        let poolStore: PoolStore
        do {
            sessions = try SessionStore(directory: settings.stateDirectory)
            execLedger = try ProcessLedger(directory: settings.stateDirectory + "/execs")
            buildLedger = try ProcessLedger(directory: settings.stateDirectory + "/builds")
        } catch {
            throw Failure("cannot use the state directory \(settings.stateDirectory): \(error)")
        }

        let (selection, podmanService) = try await Self.selectBackend(settings: settings, environment: environment, logger: logger)
        do {
            poolStore = try PoolStore(directory: settings.stateDirectory, engine: selection.kind)
        } catch {
            podmanService?.stop()
            throw Failure("cannot use the state directory \(settings.stateDirectory): \(error)")
        }
        let address: EngineAddress
        switch selection.endpoint {
        case .address(let selected): address = selected
        case .privatePodmanService: address = .unix(podmanService!.socketPath)
        }
        let transport: any EngineTransport
        do {
            transport = try address.transport()
        } catch {
            podmanService?.stop()
            throw Failure("cannot use the \(selection.kind.rawValue) engine at \(address): \(error)")
        }
        let runtime = Runtime(
            engine: Engines.adapter(
                for: selection.kind, transport: transport, publishedPortHost: address.publishedPortHost(transport: transport),
                timeout: .seconds(settings.engineTimeoutSeconds), buildLedger: buildLedger),
            contextRoots: settings.contextRoots,
            sessions: sessions,
            execLedger: execLedger,
            pools: poolStore,
            logger: logger
        )
        do {
            try await runtime.connect()
        } catch {
            podmanService?.stop()
            let detail = (transport as? SSHTransport)?.failureDetail.map { " (\($0))" } ?? ""
            throw Failure("cannot use the \(selection.kind.rawValue) engine: \(error)\(detail)")
        }
        await runtime.endLeftoverExecs()
        let reaper = Reaper(runtime: runtime, interval: .seconds(settings.reapIntervalSeconds), logger: logger)
        reaper.start()
        let pools = PoolManager(runtime: runtime, store: poolStore, logger: logger)
        await pools.start()

        var configuration = MHDServerConfiguration(listen: settings.listen) { status, detail in
            (ProblemDocument.contentType, ProblemDocument.render(status: status, detail: detail))
        }
        configuration.unixSocketMode = settings.socketMode
        configuration.idleTimeoutSeconds = settings.idleTimeoutSeconds
        configuration.connectionLimit = settings.maxConnections
        configuration.perAddressConnectionLimit = settings.maxConnectionsPerClient
        configuration.headerTimeout = .seconds(settings.headerTimeoutSeconds)
        configuration.requestTimeout = .seconds(settings.requestTimeoutSeconds)
        configuration.handlerExecutor = EventLoopTaskExecutor.currentOrNext()
        configuration.admit = { request, template, hasBody in
            admission.check(request, routeTemplate: template, hasBody: hasBody)
        }
        let jsonLimit = settings.maxBody
        let tarLimit = settings.maxTarBody
        // An exec's stdin travels inside its JSON body (10 MB of stdin must fit, as base64 too).
        let execLimit = max(jsonLimit, 32 << 20)
        configuration.bodyLimit = { request, template in
            if template == "/containers/{id}/exec" { return execLimit }
            return request.headerFields[.contentType]?.hasPrefix("application/x-tar") == true ? tarLimit : jsonLimit
        }
        let server = MHDServer(configuration: configuration)
        let handler = APIHandler(runtime: runtime, pools: pools, logger: logger)
        try handler.registerHandlers(
            on: RouteTemplateTransport(server),
            configuration: .init(dateTranscoder: RFC3339DateTranscoder(), jsonEncodingOptions: [.sortedKeys, .withoutEscapingSlashes]),
            // Request id, log and metrics first so they see the 401s; the token check before any
            // handler or body decoding.
            middlewares: [
                RequestIDMiddleware(), AccessLogMiddleware(logger: logger), HTTPMetricsMiddleware(metricsFactory: metrics),
            ]
                + (settings.token.map { [SecurityMiddleware(token: $0)] } ?? [])
                + [ProblemMiddleware(), NegotiationMiddleware(), PathParameterMiddleware(), ExecStdinMiddleware(memberLimit: Int(jsonLimit)), NullMemberMiddleware()]
        )
        metrics.addGauge(MetricNames.connectionsOpen) { [server] in server.openConnectionCount }
        let bound: ListenAddress
        do {
            bound = try server.start()
        } catch {
            podmanService?.stop()
            throw Failure("cannot listen on \(settings.listen): \(error)")
        }
        logger.info(
            "ocimand listening",
            metadata: ["address": "\(bound)", "backend": "\(selection.kind.rawValue)", "endpoint": "\(runtime.endpoint)"])

        let signal = await Self.waitForTerminationSignal()
        logger.info("shutting down", metadata: ["signal": "\(signal)", "in_flight": "\(server.inFlightRequestCount)"])
        // Whatever state it is in, the process ends within the grace plus a second: every step
        // below is bounded by the grace, and a hard deadline backs them up.
        let grace = Duration.seconds(settings.shutdownGraceSeconds)
        let deadline = ContinuousClock.now + grace
        ShutdownDeadline.arm(after: grace + .milliseconds(900), logger: logger) {
            if let pid = podmanService?.pid { kill(pid, SIGKILL) }
        }
        // The reaper serves no client: it stops while requests get their grace.
        let reaperStopped = ShutdownDeadline.start {
            await reaper.stop()
            await pools.stop()
        }
        await server.shutdown(gracePeriod: grace)
        // Execs still running have lost their readers; ending them gets what is left of the grace,
        // and at least a moment when requests used all of it.
        await ShutdownDeadline.start { await runtime.endRunningExecs() }
            .wait(until: max(deadline, ContinuousClock.now + .milliseconds(400)))
        // A reaper pass stuck in an engine call is not waited for past the deadline.
        await reaperStopped.wait(until: deadline)
        podmanService?.stop(grace: max(.milliseconds(300), ContinuousClock.now.duration(to: deadline)))
        logger.info("stopped")
        // Returning is not enough: SwiftNIO's event-loop threads would keep the process alive.
        Glibc.exit(0)
    }

    private static func selectBackend(
        settings: Settings,
        environment: [String: String],
        logger: Logger
    ) async throws -> (BackendSelection, PodmanService?) {
        var variables = environment
        if let backend = settings.backendOverride { variables["OCIMAN_BACKEND"] = backend }
        variables["OCIMAN_PODMAN_SERVICE"] = settings.podmanService
        variables[EngineAddress.allowPlainTCPVariable] = settings.allowPlainTCP ? "true" : "false"
        let home = environment["HOME"] ?? NSHomeDirectory()
        let configFile = try? String(contentsOfFile: "\(home)/.config/ociman.toml", encoding: .utf8)
        let selection: BackendSelection
        do {
            selection = try await BackendSelector.select(
                BackendEnvironment(
                    variables: variables,
                    configFile: configFile,
                    podmanBinaryExists: PodmanService.podmanPath() != nil,
                    probe: { address in await EngineProbe.whyNot(address) }
                ))
        } catch let error as BackendSelectionError {
            throw Failure(error.description)
        }
        guard selection.endpoint == .privatePodmanService else { return (selection, nil) }
        let service = try PodmanService(logger: logger)
        try service.start()
        // The service needs a moment to create its socket.
        for _ in 0..<100 {
            if await EngineProbe.answersPing(socketPath: service.socketPath) { return (selection, service) }
            try await Task.sleep(for: .milliseconds(100))
        }
        service.stop()
        throw Failure("started podman system service but its socket \(service.socketPath) never answered")
    }

    private static func waitForTerminationSignal() async -> Int32 {
        let (signals, continuation) = AsyncStream.makeStream(of: Int32.self)
        let sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        for await number in signals { return number }
        return SIGTERM
    }
}

/// A startup failure: printed as one line, exit status 1.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
