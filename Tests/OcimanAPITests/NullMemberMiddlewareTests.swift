import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime
import Testing

@testable import OcimanAPI

@Suite struct NullMemberMiddlewareTests {
    typealias Schema = NullMemberMiddleware.MemberSchema

    static func null(in body: String, operation: String) throws -> String? {
        let schema = try #require(NullMemberMiddleware.requestSchemas[operation], "no request schema for \(operation)")
        return NullMemberMiddleware.nullMember(in: Array(body.utf8), schema: schema)
    }

    @Test func readsEveryJSONRequestSchemaOfTheContract() throws {
        let schemas = NullMemberMiddleware.requestSchemas
        #expect(
            Set(schemas.keys) == [
                "runContainer", "execInContainer", "commitContainer", "buildImage", "hashContext", "pullImage",
                "pushImage", "tagImage", "createSession", "renewSession",
            ])
        guard case .object(let run) = try #require(schemas["runContainer"]) else {
            Issue.record("runContainer is not an object schema")
            return
        }
        #expect(run["image"] == .scalar)
        #expect(run["command"] == .array(.scalar))
        #expect(run["labels"] == .map(.scalar))
        guard case .object(let wait) = try #require(run["wait"]), case .object(let log) = try #require(wait["log"]) else {
            Issue.record("wait.log is not an object schema")
            return
        }
        #expect(log["pattern"] == .scalar)
    }

    @Test(arguments: [
        ("commitContainer", #"{"reference":"x","changes":null}"#, "changes"),
        ("commitContainer", #"{"reference":"x","changes":["a",null]}"#, "changes[1]"),
        ("runContainer", #"{"image":"x","publish":[{"container_port":80,"host_ip":null}]}"#, "publish[0].host_ip"),
        ("runContainer", #"{"image":"x","wait":{"timeout_seconds":3,"log":{"pattern":null}}}"#, "wait.log.pattern"),
        ("runContainer", #"{"image":"x","labels":{"a":"1","b":null}}"#, "labels.b"),
        ("execInContainer", #"{"command":["true"],"timeout_seconds":null}"#, "timeout_seconds"),
    ])
    func findsTheNullMember(operation: String, body: String, field: String) throws {
        #expect(try Self.null(in: body, operation: operation) == field)
    }

    /// Undeclared members are ignored by the decoders, whatever they hold, and so here: `name`
    /// is a member of other schemas, not of a session lease.
    @Test(arguments: [
        ("renewSession", #"{"lease_seconds":5,"name":null}"#),
        ("createSession", #"{"lease_seconds":5,"extra":{"image":null}}"#),
        ("execInContainer", #"{"command":["echo","null"]}"#),
        ("runContainer", "not json null"),
        ("runContainer", "null"),
    ])
    func passesWhatTheSchemaDoesNotDeclare(operation: String, body: String) throws {
        #expect(try Self.null(in: body, operation: operation) == nil)
    }

    @Test func refusesBeforeTheHandlerAndPassesTheBodyOnOtherwise() async throws {
        var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/containers/x/commit")
        request.headerFields[.contentType] = "application/json; charset=utf-8"
        let middleware = NullMemberMiddleware()
        await #expect {
            _ = try await middleware.intercept(
                request, body: HTTPBody(#"{"changes":null}"#), metadata: .init(), operationID: "commitContainer"
            ) { _, _, _ in
                Issue.record("the handler ran")
                return (HTTPResponse(status: .ok), nil)
            }
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
