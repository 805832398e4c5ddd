import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime
import Testing

@testable import OcimanAPI

@Suite("Path parameters are checked before decoding")
struct PathParameterMiddlewareTests {
    @Test("invalid escapes, empty, dot segments and control characters are refused", arguments: [
        "%zz", "%", "a%2", "%2", "%g0", "%2e", "%2E", ".", "..", "%2e%2E", "%00", "a%0Ab", "%7F", "%ff", "%c3%28",
    ])
    func refused(_ raw: String) {
        #expect(PathParameterMiddleware.problem(raw[...]) != nil)
    }

    @Test("ids, names, references and well-formed escapes pass", arguments: [
        "web", "3f2a9c", "pg-demo_2.x", "localhost%2Fbusybox:test", "no%2Dsuch", "...", "a.b", "%E2%9C%93",
        "sha256:0123456789abcdef",
    ])
    func accepted(_ raw: String) {
        #expect(PathParameterMiddleware.problem(raw[...]) == nil)
    }

    @Test("decoding is strict UTF-8 and leaves + alone")
    func decoding() {
        #expect(PathParameterMiddleware.strictlyDecoded("localhost%2Fbusybox:test") == "localhost/busybox:test")
        #expect(PathParameterMiddleware.strictlyDecoded("a+b") == "a+b")
        #expect(PathParameterMiddleware.strictlyDecoded("%E2%9C%93") == "✓")
        #expect(PathParameterMiddleware.strictlyDecoded("%E2%9C") == nil)
    }

    @Test("a refused parameter throws a 400 naming it, before the handler runs")
    func throwsBeforeHandler() async throws {
        let middleware = PathParameterMiddleware()
        let request = HTTPRequest(method: .delete, scheme: nil, authority: nil, path: "/containers/%zz")
        await #expect {
            _ = try await middleware.intercept(
                request, body: nil, metadata: ServerRequestMetadata(pathParameters: ["id": "%zz"]),
                operationID: "removeContainer"
            ) { _, _, _ in
                Issue.record("the handler ran")
                return (HTTPResponse(status: .noContent), nil)
            }
        } throws: { error in
            guard case .invalid(let field, _) = error as? OcimanError else { return false }
            return field == "id"
        }
        let (response, _) = try await middleware.intercept(
            request, body: nil, metadata: ServerRequestMetadata(pathParameters: ["id": "web"]), operationID: "removeContainer"
        ) { _, _, _ in (HTTPResponse(status: .noContent), nil) }
        #expect(response.status == .noContent)
    }
}
