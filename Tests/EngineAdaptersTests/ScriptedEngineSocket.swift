import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An engine socket that answers from a script, so the adapters' routes, negotiation and
/// error remapping run in-process: the script sees each request's method and target and
/// picks the status, headers and body.
final class ScriptedEngineSocket: Sendable {
    struct Answer: Sendable {
        var status: Int
        var headers: [(String, String)] = []
        var body: String = ""
    }

    let path: String
    private let channel: any Channel
    private let recorder: Recorder

    init(_ script: @escaping @Sendable (_ method: String, _ target: String) -> Answer) async throws {
        let path = NSTemporaryDirectory() + "ociman-scripted-\(UUID().uuidString.prefix(8)).sock"
        let recorder = Recorder()
        self.path = path
        self.recorder = recorder
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Responder(script: script, recorder: recorder))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
    }

    /// `METHOD target` of every request so far.
    var requests: [String] { recorder.lines.withLock { $0 } }

    func close() async {
        try? await channel.close()
        unlink(path)
    }

    private final class Recorder: Sendable {
        let lines = Mutex<[String]>([])
    }

    private final class Responder: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let script: @Sendable (String, String) -> Answer
        let recorder: Recorder
        private var head: HTTPRequestHead?

        init(script: @escaping @Sendable (String, String) -> Answer, recorder: Recorder) {
            self.script = script
            self.recorder = recorder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): self.head = head
            case .body: break
            case .end:
                guard let head else { return }
                recorder.lines.withLock { $0.append("\(head.method.rawValue) \(head.uri)") }
                let answer = script(head.method.rawValue, head.uri)
                var headers = HTTPHeaders(answer.headers)
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: String(answer.body.utf8.count))
                let status = HTTPResponseStatus(statusCode: answer.status)
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
