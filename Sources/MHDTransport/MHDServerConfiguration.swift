import Glibc
import HTTPTypes

/// Every limit is explicit: libmicrohttpd's defaults have no timeout and no body cap (SPEC §9).
public struct MHDServerConfiguration: Sendable {
    public var listen: ListenAddress
    /// Permissions of a `unix:` socket; owner-only unless widened.
    public var unixSocketMode: mode_t = 0o600
    /// Measured fastest at about the core count (SPEC §9).
    public var threadPoolSize: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    /// Open connections; one more is answered 503 and closed at once.
    public var connectionLimit: Int = 1024
    /// Open connections from one IP address (0: no such cap); one more from it is answered 503.
    /// Unix-socket clients have no address and are held by `connectionLimit` alone.
    public var perAddressConnectionLimit: Int = 64
    /// Closes connections idle this long (also bounds slow request bodies between reads).
    public var idleTimeoutSeconds: Int = 60
    /// libmicrohttpd's per-connection pool: request line and headers must fit. A head too big for
    /// it would be refused by libmicrohttpd itself (414/431 with an HTML body), so the transport's
    /// own, smaller caps below must stay under it: they come first and answer with a problem document.
    public var connectionMemoryLimit: Int = 64 * 1024
    /// Request target (path and query) bytes; more is 414.
    public var maxTargetBytes: Int = 16 * 1024
    /// Request head bytes (request line, headers, line ends); more is 431.
    public var maxHeadBytes: Int = 32 * 1024
    var headLimits: HeadSyntax.Limits { HeadSyntax.Limits(targetBytes: maxTargetBytes, headBytes: maxHeadBytes) }
    /// Request body bytes buffered before the connection is paused.
    public var requestBodyBufferBytes: Int = 1 << 20
    /// Response bytes buffered before a streaming handler is made to wait.
    public var responseStreamBufferBytes: Int = 256 << 10
    /// Bodies of known length up to this size are sent with Content-Length; larger or unknown stream chunked.
    public var bufferedResponseLimit: Int64 = 8 << 20
    public var disconnectCheckInterval: Duration = .milliseconds(200)
    /// The request body cap for a request on a route template.
    public var bodyLimit: @Sendable (HTTPRequest, String) -> Int64 = { _, _ in 1 << 20 }
    /// Decides, before the handler starts and before any body byte is read, whether a request on
    /// a route is served at all: nil admits it; a (status, detail) refusal is answered as a problem
    /// document. Arguments: the request head, the matched route template, whether a body follows.
    /// A refused request with a body is answered at once and its connection closed unread.
    public var admit: (@Sendable (HTTPRequest, String, Bool) -> (status: Int, detail: String)?)?
    /// Time from accepting a connection until its first request head is in. For each later request
    /// on a kept-alive connection the clock starts when the previous answer was sent, plus
    /// `idleTimeoutSeconds` the client may first spend idle: libmicrohttpd does not tell when
    /// the first byte of a request arrives. A client still sending its head after that is answered
    /// 408 and closed; libmicrohttpd's own timeout counts inactivity only, so a client sending a
    /// byte a second would otherwise never be timed out. nil turns the deadline off for later
    /// heads; the first head then has `idleTimeoutSeconds` (`firstHeadDeadline`).
    public var headerTimeout: Duration? = .seconds(10)
    /// The first head's deadline, which is never off: without `headerTimeout`, the idle timeout.
    var firstHeadDeadline: Duration { headerTimeout ?? .seconds(idleTimeoutSeconds) }
    /// Time from the request line until the head, and a body that fits in `requestBodyBufferBytes`,
    /// are in; a client still sending after that is answered 408 and closed.
    /// Larger bodies (tar uploads) are paused by the handler's backpressure, so not all of their
    /// time is the client's: only `idleTimeoutSeconds` bounds them. nil turns the deadline off.
    public var requestTimeout: Duration? = .seconds(60)
    /// Where a request's handler task runs each time it is resumed from another thread (it starts
    /// on the libmicrohttpd thread, see `InlineFirstExecutor`); nil means the global concurrent executor.
    public var handlerExecutor: (@Sendable () -> any TaskExecutor)?
    /// Renders transport-level errors (400, 404, 405, 408, 413, 414, 431, 500, 501, 503) as (content type, body).
    public var renderProblem: @Sendable (Int, String) -> (String, [UInt8])

    public init(listen: ListenAddress, renderProblem: @escaping @Sendable (Int, String) -> (String, [UInt8])) {
        self.listen = listen
        self.renderProblem = renderProblem
    }
}
