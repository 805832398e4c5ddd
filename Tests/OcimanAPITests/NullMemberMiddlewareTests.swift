import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime
import Testing

@testable import OcimanAPI

@Suite struct NullMemberMiddlewareTests {
    @Test func readsTheDeclaredMembersFromTheContract() {
        let declared = NullMemberMiddleware.declaredMembers
        // Top-level, nested (wait.log) and deeply nested schema members; not schema keywords
        // (`type` is both: Mount and the events have a `type` member).
        for name in ["image", "changes", "timeout_seconds", "host_ip", "pattern", "occurrences", "lease_seconds"] {
            #expect(declared.contains(name), "\(name)")
        }
        for keyword in ["items", "description", "properties", "required", "schema", "minimum"] {
            #expect(!declared.contains(keyword), "\(keyword)")
        }
    }

    @Test(arguments: [
        (#"{"changes":null}"#, "changes"),
        (#"{"reference":"x","pause":true,"changes":null}"#, "changes"),
        (#"{"publish":[{"container_port":80,"host_ip":null}]}"#, "publish[0].host_ip"),
        (#"{"wait":{"timeout_seconds":3,"log":{"pattern":null}}}"#, "wait.log.pattern"),
    ])
    func findsTheNullMember(body: String, field: String) {
        #expect(NullMemberMiddleware.nullMember(in: Array(body.utf8), declared: NullMemberMiddleware.declaredMembers) == field)
    }

    /// Undeclared members are ignored by the decoders, whatever they hold; nulls inside arrays
    /// and maps are refused by the decoders themselves.
    @Test(arguments: [
        #"{"command":["echo","null"]}"#, #"{"unknown":null,"lease_seconds":5}"#, #"{"extra":{"image":null}}"#,
        #"{"changes":["a",null]}"#, "not json null", "null", "[null]",
    ])
    func passesWhatTheDecoderHandles(body: String) {
        #expect(NullMemberMiddleware.nullMember(in: Array(body.utf8), declared: NullMemberMiddleware.declaredMembers) == nil)
    }

    @Test func refusesBeforeTheHandlerAndPassesTheBodyOnOtherwise() async throws {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/containers/x/commit")
        request.headerFields[.contentType] = "application/json; charset=utf-8"
        let middleware = NullMemberMiddleware()
        await #expect {
            _ = try await middleware.intercept(
                request, body: HTTPBody(#"{"changes":null}"#), metadata: .init(), operationID: "commitContainer"
            ) { _, _, _ in Issue.record("the handler ran"); return (HTTPResponse(status: .ok), nil) }
        } throws: { error in
            guard case .invalid(let field, _) = error as? OcimanError else { return false }
            return field == "changes"
        }
        let (_, echoed) = try await middleware.intercept(
            request, body: HTTPBody(#"{"reference":"a"}"#), metadata: .init(), operationID: "commitContainer"
        ) { _, body, _ in (HTTPResponse(status: .ok), body) }
        let text = try await String(collecting: try #require(echoed), upTo: 1024)
        #expect(text == #"{"reference":"a"}"#)
    }
}
