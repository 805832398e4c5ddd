import Foundation
import OcimanCore

/// The channel scheme of interactive sessions (`channel.v1.ociman`, documented in the contract):
/// each binary message starts with its channel byte.
enum InteractiveChannel: UInt8 {
    case stdin = 0
    case stdout = 1
    case stderr = 2
    case status = 3
    case resize = 4
    case close = 255

    static let subprotocol = "channel.v1.ociman"

    /// A message on this channel.
    func message(_ payload: some Collection<UInt8>) -> [UInt8] {
        var message = [rawValue]
        message.reserveCapacity(payload.count + 1)
        message += payload
        return message
    }

    /// Channel 3's payload, sent once before the close.
    struct Status: Codable, Equatable {
        var exitCode: Int?
        var error: String?

        enum CodingKeys: String, CodingKey {
            case exitCode = "exit_code"
            case error
        }

        var bytes: [UInt8] { (try? Array(JSONEncoder().encode(self))) ?? Array("{}".utf8) }
    }

    /// Channel 4's payload.
    struct Resize: Codable {
        var rows: Int
        var columns: Int
        var size: TerminalSize { TerminalSize(rows: rows, columns: columns) }
    }
}

extension StandardStream {
    var channel: InteractiveChannel {
        switch self {
        case .stdout: .stdout
        case .stderr: .stderr
        }
    }
}
