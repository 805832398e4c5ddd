import NIOCore
import NIOPosix
import NIOSSL

/// An engine's TCP listener, with mutual TLS (`DOCKER_TLS_VERIFY`) or, where the caller allowed
/// it, in plain text.
public struct TCPTransport: EngineTransport {
    public let host: String
    public let port: Int
    private let tls: NIOSSLContext?

    /// `tls` nil: plain TCP. The server certificate is checked against `host` (a name, or the
    /// address connected to when `host` is an IP literal).
    public init(host: String, port: Int, tls: EngineTLSFiles?) throws {
        self.host = host
        self.port = port
        self.tls = try tls.map { try $0.clientContext() }
    }

    /// Plain TCP, which cannot fail to set up.
    public init(plainHost host: String, port: Int) {
        self.host = host
        self.port = port
        self.tls = nil
    }

    public var endpoint: String { "tcp://" + hostHeader }

    public var hostHeader: String { "\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    public func connect(
        on eventLoop: any EventLoop, timeout: Duration, halfClosure: Bool,
        protocolHandlers: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        let tls = self.tls
        // SNI and name checks take names only; for an address NIOSSL checks the peer's IP.
        let serverName = IPLiteral.isAddress(host) ? nil : host
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(TimeAmount(timeout))
            .channelOption(.allowRemoteHalfClosure, value: halfClosure)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverName))
                    }
                    try protocolHandlers(channel)
                }
            }
        do {
            return try await bootstrap.connect(host: host, port: port).get()
        } catch {
            throw EngineError.unavailable("cannot connect to \(endpoint): \(error)")
        }
    }
}

/// The three files the docker CLI reads from `DOCKER_CERT_PATH`.
public struct EngineTLSFiles: Sendable, Equatable {
    public var caPath: String
    public var certificatePath: String
    public var keyPath: String

    public init(directory: String) {
        caPath = directory + "/ca.pem"
        certificatePath = directory + "/cert.pem"
        keyPath = directory + "/key.pem"
    }

    /// Full verification against the CA only (not the system roots), and our certificate for
    /// the server's check of us.
    func clientContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .fullVerification
        do {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caPath))
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw EngineError.unavailable("cannot load the TLS files (\(caPath), \(certificatePath), \(keyPath)): \(error)")
        }
    }
}

enum IPLiteral {
    static func isAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
