import Foundation
import Logging
import OcimanCore
import WebSockets

/// Connects an interactive session to an accepted WebSocket: the client's channels 0, 4 and 255
/// to the process's stdin and terminal, its output to channels 1 and 2, and its exit to channel
/// 3 before the close. Each direction waits for the other end to take what it was given, so a
/// stalled client pauses the process's output and a process that stops reading stdin stops the
/// client's messages from being read. The first direction to end ends the other: a client that
/// leaves drops the session (an exec's process ends, an attach detaches).
struct InteractiveBridge: Sendable {
    let session: InteractiveSession
    let socket: WebSocketConnection
    let logger: Logger

    /// Accepts `offer` (with the channel subprotocol when the client offered it) for `session`.
    static func accept(_ offer: WebSocketOffer, for session: InteractiveSession, logger: Logger) {
        let subprotocol = offer.subprotocols.contains(InteractiveChannel.subprotocol) ? InteractiveChannel.subprotocol : nil
        offer.accept(subprotocol: subprotocol) { socket in
            await InteractiveBridge(session: session, socket: socket, logger: logger).run()
        }
    }

    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await forwardOutput() }
            group.addTask { await forwardInput() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Output to the client, then the exit code and a normal close; an error becomes the status
    /// and close 1011. Returns early when the client is gone.
    private func forwardOutput() async {
        do {
            for try await event in session.events {
                switch event {
                case .output(let stream, let bytes):
                    try await socket.send(.binary(stream.channel.message(bytes)))
                case .exit(let code):
                    try await socket.send(.binary(InteractiveChannel.status.message(InteractiveChannel.Status(exitCode: code).bytes)))
                    await socket.close(.normal, "exited")
                    return
                }
            }
            await socket.close(.normal, "")
        } catch is CancellationError {
            return
        } catch {
            // The client's socket failed (nothing more to say), or the engine did: tell the client.
            let status = InteractiveChannel.Status(error: "\(OcimanError(converting: error))")
            try? await socket.send(.binary(InteractiveChannel.status.message(status.bytes)))
            await socket.close(.internalError, "")
        }
    }

    /// The client's messages, until it closes or leaves.
    private func forwardInput() async {
        var stdinOpen = true
        do {
            while let message = try await socket.receive() {
                guard case .binary(let bytes) = message, let first = bytes.first, let channel = InteractiveChannel(rawValue: first)
                else {
                    await socket.close(.unsupportedData, "expected binary messages on channels 0, 4 or 255")
                    return
                }
                let payload = bytes.dropFirst()
                switch channel {
                case .stdin where stdinOpen:
                    do {
                        try await session.write(Array(payload))
                    } catch {
                        // The process closed its stdin or exited; its exit comes through the output.
                        stdinOpen = false
                    }
                case .resize:
                    guard let resize = try? JSONDecoder().decode(InteractiveChannel.Resize.self, from: Data(payload)) else {
                        await socket.close(.unsupportedData, "a resize is {\"rows\": R, \"columns\": C}")
                        return
                    }
                    do {
                        try await session.resize(resize.size)
                    } catch {
                        logger.debug("resize refused", metadata: ["error": "\(error)"])
                    }
                case .close where payload.first == InteractiveChannel.stdin.rawValue && stdinOpen:
                    stdinOpen = false
                    try? await session.finishWriting()
                case .stdin, .close:
                    continue
                case .stdout, .stderr, .status:
                    await socket.close(.unsupportedData, "channel \(first) is the server's")
                    return
                }
            }
        } catch {
            // The socket broke: the client is gone.
        }
    }
}
