import NIOSSL

extension EngineError {
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
