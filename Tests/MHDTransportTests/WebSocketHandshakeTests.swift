import HTTPTypes
import Testing

@testable import MHDTransport

@Suite struct WebSocketHandshakeTests {
    static func request(_ fields: [(String, String)], method: HTTPRequest.Method = .get) -> HTTPRequest {
        var request = HTTPRequest(method: method, scheme: nil, authority: "localhost", path: "/exec-sessions/x/attach")
        for (name, value) in fields { request.headerFields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return request
    }

    static let valid = [
        ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"), ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Protocol", "chat, channel.v1.ociman"),
    ]

    @Test func acceptsTheRFCsExampleWithItsAcceptValue() throws {
        let handshake = try #require(WebSocketHandshake(Self.request(Self.valid)))
        // RFC 6455 §1.3.
        #expect(handshake.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(handshake.subprotocols == ["chat", "channel.v1.ociman"])
        let fields = Dictionary(uniqueKeysWithValues: handshake.responseFields(subprotocol: "channel.v1.ociman"))
        #expect(fields["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(fields["Sec-WebSocket-Protocol"] == "channel.v1.ociman")
        #expect(fields["Upgrade"] == "websocket")
    }

    @Test(arguments: [
        ("Upgrade", nil), ("Connection", "keep-alive"), ("Sec-WebSocket-Version", "8"),
        ("Sec-WebSocket-Key", "c2hvcnQ="), ("Sec-WebSocket-Key", nil),
    ] as [(String, String?)])
    func refusesAnIncompleteHandshake(name: String, value: String?) {
        var fields = Self.valid.filter { $0.0 != name }
        if let value { fields.append((name, value)) }
        #expect(WebSocketHandshake(Self.request(fields)) == nil)
    }

    @Test func onlyGET() {
        #expect(WebSocketHandshake(Self.request(Self.valid, method: .post)) == nil)
    }
}
