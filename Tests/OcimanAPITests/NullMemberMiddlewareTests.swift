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
                "pushImage", "tagImage", "createSession", "renewSession", "createExecSession", "resizeExecSession",
                "resizeContainer", "putPool", "claimFromPool",
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

@Suite("Integer members the decoder cannot read")
struct UnrepresentableIntegerTests {
    static func found(_ body: String, operation: String) throws -> (String, String, NullMemberMiddleware.IntegerRange)? {
        let schema = try #require(NullMemberMiddleware.requestSchemas[operation])
        return NullMemberMiddleware.unrepresentableInteger(in: Array(body.utf8), schema: schema).map { ($0.field, $0.number, $0.range) }
    }

    @Test("integer members carry the contract's range")
    func schemaKnowsIntegers() throws {
        guard case .object(let run) = try #require(NullMemberMiddleware.requestSchemas["runContainer"]) else {
            Issue.record("runContainer is not an object schema")
            return
        }
        #expect(run["ttl_seconds"] == .integer(.init(minimum: 1, maximum: 31_536_000)))
        guard case .array(.object(let publish)) = try #require(run["publish"]) else {
            Issue.record("publish is not an array of objects")
            return
        }
        #expect(publish["host_port"] == .integer(.init(minimum: 0, maximum: 65_535)))
    }

    @Test(arguments: [
        ("runContainer", #"{"image":"x","ttl_seconds":9223372036854775808}"#, "ttl_seconds", "9223372036854775808"),
        ("runContainer", #"{"image":"x","publish":[{"container_port":80},{"container_port":1.5}]}"#, "publish[1].container_port", "1.5"),
        ("runContainer", #"{"image":"x","wait":{"timeout_seconds":5,"log":{"pattern":"a","occurrences":1e30}}}"#, "wait.log.occurrences", "1e+30"),
        ("createSession", #"{"lease_seconds":-9223372036854775809}"#, "lease_seconds", nil),
    ] as [(String, String, String, String?)])
    func findsIt(operation: String, body: String, field: String, number: String?) throws {
        let found = try #require(try Self.found(body, operation: operation))
        #expect(found.0 == field)
        if let number { #expect(found.1 == number) }
    }

    @Test("whole 64-bit numbers are left to the core", arguments: [
        #"{"image":"x","ttl_seconds":9223372036854775807}"#, #"{"image":"x","ttl_seconds":-9223372036854775808}"#,
        #"{"image":"x","ttl_seconds":0}"#, #"{"image":"x","name":"1.5"}"#,
    ])
    func leavesWholeNumbers(body: String) throws {
        #expect(try Self.found(body, operation: "runContainer") == nil)
    }
}
