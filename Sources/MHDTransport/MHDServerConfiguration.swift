import Glibc
import HTTPTypes

/// Every limit is explicit: libmicrohttpd's defaults have no timeout and no body cap (SPEC §9).
public struct MHDServerConfiguration: Sendable {
    public var listen: ListenAddress
    /// Permissions of a `unix:` socket; owner-only unless widened.
    public var unixSocketMode: mode_t = 0o600
    /// Measured fastest at about the core count (SPEC §9).
    public var threadPoolSize: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    public var connectionLimit: Int = 1024
    /// 0 means no per-address limit; clients are local, so one address is normal.
    public var perAddressConnectionLimit: Int = 0
    /// Closes connections idle this long (also bounds slow request bodies between reads).
    public var idleTimeoutSeconds: Int = 60
    /// libmicrohttpd's per-connection pool: request line and headers must fit.
    public var connectionMemoryLimit: Int = 64 * 1024
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
    /// Time from the request line until the head, and a body that fits in `requestBodyBufferBytes`,
    /// are in; a client still sending after that is cut off. libmicrohttpd's own timeout counts
    /// inactivity only, so without this a client sending a byte a second would never time out.
    /// Larger bodies (tar uploads) are paused by the handler's backpressure, so not all of their
    /// time is the client's: only `idleTimeoutSeconds` bounds them. nil turns the deadline off.
    public var requestTimeout: Duration? = .seconds(60)
    /// Where a request's handler task runs each time it is resumed from another thread (it starts
    /// on the libmicrohttpd thread, see `InlineFirstExecutor`); nil means the global concurrent executor.
    public var handlerExecutor: (@Sendable () -> any TaskExecutor)?
    /// Renders transport-level errors (404, 405, 413, 500) as (content type, body).
    public var renderProblem: @Sendable (Int, String) -> (String, [UInt8])

    public init(listen: ListenAddress, renderProblem: @escaping @Sendable (Int, String) -> (String, [UInt8])) {
        self.listen = listen
        self.renderProblem = renderProblem
    }
}
