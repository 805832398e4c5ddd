import CMicroHTTPD
import Glibc
import HTTPTypes
import Synchronization

/// One request on one connection, from the URI logger to the completion callback.
///
/// Fields without a lock are touched only from libmicrohttpd callbacks, which it runs on the
/// connection's own thread one at a time. `shared` is what the handler task and the
/// disconnect watch touch too.
final class RequestContext: @unchecked Sendable {
    enum Phase { case new, receiving, awaitingResponse, responded }
    enum ResponseOutcome { case response(PreparedResponse), notYet, suspended, clientGone }

    unowned let server: MHDServer
    let rawTarget: String
    /// Bytes of the target up to its first NUL, as libmicrohttpd handed it to the URI logger.
    let rawTargetLength: Int
    let connectionPointer: OpaquePointer
    let connectionContext: ConnectionContext
    var socketDescriptor: Int32 { connectionContext.descriptor }

    var phase = Phase.new
    var immediate: ImmediateResponse?
    /// `immediate` goes out on the first access call: the body will not be read (413, refusals).
    var answerBeforeBody = false
    var routeTemplate: String?
    var bodyLimit: Int64 = 0
    var receivedBodyBytes: Int64 = 0
    var requestBody: RequestBodyStream?

    private struct Shared {
        var connectionOpen = true
        var suspended = false
        var awaitingResponse = false
        var passedOnce = false
        var clientGone = false
        var response: PreparedResponse?
        var responseStream: ResponseStream?
        var task: Task<Void, Never>?
        /// When the client must have sent the head and body by; nil once it has, or when unbounded.
        var receiveDeadline: ContinuousClock.Instant?
    }

    private let shared = Mutex(Shared())

    init(server: MHDServer, rawTarget: UnsafePointer<CChar>, connection: OpaquePointer, context: ConnectionContext) {
        self.server = server
        self.rawTarget = String(cString: rawTarget)
        self.rawTargetLength = strlen(rawTarget)
        self.connectionPointer = connection
        self.connectionContext = context
        if let timeout = server.configuration.requestTimeout {
            shared.withLock { $0.receiveDeadline = .now.advanced(by: timeout) }
        }
    }

    /// The client has sent all it will be waited for (or its body is exempt from the deadline).
    func clearReceiveDeadline() { shared.withLock { $0.receiveDeadline = nil } }

    /// Answers a client still sending after its deadline with `answer` (a 408) and closes its
    /// socket; libmicrohttpd cannot queue a response mid-body. libmicrohttpd then sees the
    /// connection end and completes the request as aborted. Under the lock, so no response can be
    /// queued meanwhile: `queue` clears the deadline first.
    func cutOffIfLate(now: ContinuousClock.Instant, answer: [UInt8]) -> Bool {
        shared.withLock { shared in
            guard shared.connectionOpen, let deadline = shared.receiveDeadline, now >= deadline else { return false }
            shared.receiveDeadline = nil
            connectionContext.answerAndClose(answer)
            // A suspended connection is not watched by libmicrohttpd; wake it so it notices.
            resumeLocked(&shared)
            return true
        }
    }

    var task: Task<Void, Never>? {
        get { shared.withLock { $0.task } }
        set { shared.withLock { $0.task = newValue } }
    }

    /// Only from a libmicrohttpd callback of this connection.
    func suspend() { shared.withLock { suspendLocked(&$0) } }

    /// From any thread.
    func resume() { shared.withLock { resumeLocked(&$0) } }

    /// The response, or the connection suspended until `deliver` brings it.
    ///
    /// libmicrohttpd 0.9.75 keeps the poll intent a connection had when it was suspended, and
    /// reads a resumed connection first if that intent was "read". Suspended on the call that
    /// completes the request, the intent is still the "read" of receiving it, so a client that
    /// half-closed after its request reads as end-of-file on resume and its connection is closed
    /// before the answer goes out. So the first time the answer is not ready the connection is
    /// left running (`notYet`): libmicrohttpd records "blocked" as its intent and, the connection
    /// still being ready, calls again on its next pass, which suspends.
    func takeResponseOrSuspend() -> ResponseOutcome {
        shared.withLock { shared in
            if shared.clientGone { return .clientGone }
            if let response = shared.response {
                shared.response = nil
                return .response(response)
            }
            if !shared.passedOnce {
                shared.passedOnce = true
                return .notYet
            }
            shared.awaitingResponse = true
            suspendLocked(&shared)
            return .suspended
        }
    }

    /// The handler task hands over the response head; wakes the connection if it waits for it.
    func deliver(_ response: PreparedResponse) {
        let stillOpen = shared.withLock { shared in
            guard shared.connectionOpen else { return false }
            shared.response = response
            if shared.awaitingResponse {
                shared.awaitingResponse = false
                resumeLocked(&shared)
            }
            return true
        }
        if !stillOpen, case .stream(let stream) = response.body { stream.close() }
    }

    func makeResponseStream(highWater: Int) -> ResponseStream {
        let stream = ResponseStream(
            highWater: highWater,
            suspendConnection: { [weak self] in self?.suspend() },
            resumeConnection: { [weak self] in self?.resume() }
        )
        let gone = shared.withLock { shared in
            shared.responseStream = stream
            return shared.clientGone || !shared.connectionOpen
        }
        if gone { stream.close() }
        return stream
    }

    /// The disconnect watch saw the client gone while the connection was suspended, where
    /// libmicrohttpd itself would not notice. Cancel the work at once (a stream the handler is
    /// still producing is then reported as abandoned, not completed) and wake the connection so
    /// it fails and completes.
    func clientDisconnected() {
        let (stream, task): (ResponseStream?, Task<Void, Never>?) = shared.withLock { shared in
            shared.clientGone = true
            if shared.responseStream == nil { resumeLocked(&shared) }
            return (shared.responseStream, shared.task)
        }
        task?.cancel()
        // Closing the stream wakes its reader, which answers "end with error".
        stream?.close()
    }

    /// Shutdown after the grace period: cancel the work and release the connection.
    func abandon() { clientDisconnected() }

    /// libmicrohttpd is done with the connection for this request (sent, failed or aborted).
    func connectionClosed(completedNormally: Bool) {
        let (stream, task): (ResponseStream?, Task<Void, Never>?) = shared.withLock { shared in
            shared.connectionOpen = false
            if shared.suspended {
                shared.suspended = false
                server.disconnectWatch.remove(self)
            }
            return (shared.responseStream, shared.task)
        }
        requestBody?.finish(throwing: TransportStreamError.clientDisconnected)
        stream?.close()
        // After a normal completion the task has finished or only its early answer was sent
        // (413, ...); either way nothing it still does can reach the client.
        task?.cancel()
    }

    private func suspendLocked(_ shared: inout Shared) {
        guard shared.connectionOpen, !shared.suspended else { return }
        shared.suspended = true
        MHD_suspend_connection(connectionPointer)
        server.disconnectWatch.add(self)
    }

    private func resumeLocked(_ shared: inout Shared) {
        guard shared.connectionOpen, shared.suspended else { return }
        shared.suspended = false
        MHD_resume_connection(connectionPointer)
        server.disconnectWatch.remove(self)
    }
}
