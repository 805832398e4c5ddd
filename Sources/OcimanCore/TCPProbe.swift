import NIOCore
import NIOPosix

/// Checks from the host whether a published port reaches a listening server.
///
/// A plain connect is not enough: Docker's userland proxy accepts on the host port at once and
/// closes the connection when the container does not listen yet. So the port counts as ready
/// when the connection is accepted and then either sends data or stays open for `settle`.
public enum TCPProbe {
    public enum Outcome: Sendable, Equatable {
        case ready
        /// Refused, timed out, or accepted and closed without a byte (a proxy with no backend).
        case notReady
    }

    public static func check(
        host: String, port: Int, connectTimeout: Duration = .milliseconds(500), settle: Duration = .milliseconds(50)
    ) async -> Outcome {
        let group = MultiThreadedEventLoopGroup.singleton
        let verdict = group.next().makePromise(of: Outcome.self)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(nanoseconds(connectTimeout)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(VerdictHandler(verdict: verdict))
                }
            }
        let channel: any Channel
        do {
            // An address literal (the usual case) needs no resolver round trip.
            if let address = try? SocketAddress(ipAddress: host, port: port) {
                channel = try await bootstrap.connect(to: address).get()
            } else {
                channel = try await bootstrap.connect(host: host, port: port).get()
            }
        } catch {
            verdict.succeed(.notReady)
            return .notReady
        }
        let timer = channel.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds(settle))) {
            verdict.succeed(.ready)
        }
        let outcome = (try? await verdict.futureResult.get()) ?? .notReady
        timer.cancel()
        try? await channel.close()
        return outcome
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.saturatingNanoseconds
    }
}

/// First read means a live server; close before any byte means nobody is behind the port.
private final class VerdictHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    private let verdict: EventLoopPromise<TCPProbe.Outcome>

    init(verdict: EventLoopPromise<TCPProbe.Outcome>) {
        self.verdict = verdict
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        verdict.succeed(.ready)
    }

    func channelInactive(context: ChannelHandlerContext) {
        verdict.succeed(.notReady)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        verdict.succeed(.notReady)
        context.close(promise: nil)
    }
}
