import CCrypto
import Foundation
import HTTPTypes

/// The server's side of the opening handshake (RFC 6455 §4.2): which requests ask for a
/// WebSocket, and the headers of the 101 that accepts one.
struct WebSocketHandshake: Sendable {
    let key: String
    let subprotocols: [String]

    /// Nil unless the request is a well-formed version 13 handshake: GET, `Upgrade: websocket`,
    /// `Connection: upgrade`, `Sec-WebSocket-Version: 13` and a key of 16 bytes in base64.
    init?(_ request: HTTPRequest) {
        let fields = request.headerFields
        func tokens(_ name: HTTPField.Name) -> [String] {
            fields[values: name].flatMap { $0.split(separator: ",") }.map {
                $0.trimmingCharacters(in: .whitespaces).lowercased()
            }
        }
        guard request.method == .get, tokens(.upgrade).contains("websocket"), tokens(.connection).contains("upgrade"),
            fields[values: .secWebSocketVersion] == ["13"],
            let key = fields[.secWebSocketKey]?.trimmingCharacters(in: .whitespaces),
            Data(base64Encoded: key)?.count == 16
        else { return nil }
        self.key = key
        self.subprotocols = fields[values: .secWebSocketProtocol].flatMap { $0.split(separator: ",") }.map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
    }

    /// The headers that complete the handshake, added to the handler's 101.
    func responseFields(subprotocol: String?) -> [(String, String)] {
        var fields = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
        if let subprotocol { fields.append(("Sec-WebSocket-Protocol", subprotocol)) }
        return fields
    }

    /// base64(SHA-1(key + the protocol's GUID)).
    var accept: String {
        let input = Array((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_Digest(input, input.count, &digest, &length, EVP_sha1(), nil)
        return Data(digest.prefix(Int(length))).base64EncodedString()
    }
}
