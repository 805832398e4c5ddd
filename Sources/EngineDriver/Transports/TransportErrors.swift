import NIOSSL

extension EngineError {
    /// The connection ended after the request was handed to it and before any byte of an
    /// answer: on a connection reused from the pool, the engine closed it as idle and never saw
    /// the request, which is then sent once more on a new connection.
    static let closedBeforeAnswer = EngineError.unavailable("the engine closed the connection before answering")

    var isClosedBeforeAnswer: Bool {
        if case .unavailable(let message) = self { return message == "the engine closed the connection before answering" }
        return false
    }

    /// An error a connection's pipeline raised: TLS failures (a certificate the CA did not sign,
    /// a name that does not match, our certificate refused) mean the engine cannot be used, and
    /// say so in OpenSSL's words; anything else is the engine breaking the protocol.
    static func connection(_ error: any Error) -> EngineError {
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return .unavailable("TLS with the engine failed: \(error)")
        }
        return .protocolViolation("\(error)")
    }

    /// A TLS peer that closes TCP without close_notify after its last byte has told us no less
    /// than a unix socket's EOF does: for a hijacked stream that is the end of the output.
    static func isUncleanTLSShutdown(_ error: any Error) -> Bool {
        (error as? NIOSSLError) == .uncleanShutdown
    }
}
