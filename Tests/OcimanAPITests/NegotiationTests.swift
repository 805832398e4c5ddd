import Foundation
import HTTPTypes
import OpenAPIRuntime
import Synchronization
import Testing

@testable import OcimanAPI

@Suite("Content negotiation before the handler")
struct NegotiationTests {
    static let exec = ["application/json", "application/x-ndjson"]

    @Test(arguments: [
        // No Accept, anything, or JSON preferred or equal: JSON.
        ([], "application/json"),
        (["*/*"], "application/json"),
        (["application/*"], "application/json"),
        (["application/json, application/x-ndjson"], "application/json"),
        (["application/x-ndjson, application/json"], "application/json"),
        (["application/x-ndjson", "application/json"], "application/json"),
        (["application/json;q=0.5, application/x-ndjson;q=0.5"], "application/json"),
        (["application/x-ndjson, */*"], "application/json"),
        // ndjson only when strictly preferred or the only acceptable one.
        (["application/x-ndjson"], "application/x-ndjson"),
        (["application/x-ndjson, application/json;q=0.9"], "application/x-ndjson"),
        (["application/x-ndjson, */*;q=0.1"], "application/x-ndjson"),
        (["Application/X-NDJSON; charset=utf-8"], "application/x-ndjson"),
        (["application/json;q=0, */*"], "application/x-ndjson"),
    ] as [([String], String)])
    func execChoice(accept: [String], chosen: String) {
        #expect(MediaRange.choose(from: Self.exec, accept: accept) == chosen)
    }

    @Test(arguments: [
        ["text/html"], ["application/problem+json"], ["application/json;q=0, application/x-ndjson;q=0"],
        ["text/*"], ["*/*;q=0"],
    ])
    func nothingAcceptable(accept: [String]) {
        #expect(MediaRange.choose(from: Self.exec, accept: accept) == nil)
    }

    @Test func ownMediaTypesOfMetricsAndTheContract() {
        for accept in [["text/plain"], ["text/*"], ["*/*"], [], ["text/plain; version=0.0.4"], ["application/json, text/plain;q=0.1"]] {
            #expect(MediaRange.choose(from: ["text/plain"], accept: accept) == "text/plain", "\(accept)")
        }
        for accept in [["application/problem+json"], ["application/json"], ["text/html"], ["text/plain;q=0"]] {
            #expect(MediaRange.choose(from: ["text/plain"], accept: accept) == nil, "\(accept)")
        }
        #expect(MediaRange.choose(from: ["application/yaml"], accept: ["application/*"]) == "application/yaml")
        #expect(MediaRange.choose(from: ["application/yaml"], accept: ["application/json"]) == nil)
    }

    @Test func malformedElementsAreSkippedAndBadWeightsCountAsOne() {
        #expect(MediaRange.choose(from: Self.exec, accept: ["garbage, application/x-ndjson"]) == "application/x-ndjson")
        #expect(MediaRange.choose(from: Self.exec, accept: ["application/x-ndjson;q=lots"]) == "application/x-ndjson")
        #expect(MediaRange.choose(from: Self.exec, accept: ["*/json"]) == "application/json")  // not a range: anything
    }

    @Test func theOffersFollowTheContract() {
        #expect(NegotiationMiddleware.offers["execInContainer"] == Self.exec)
        #expect(NegotiationMiddleware.offers["getMetrics"] == ["text/plain"])
        #expect(NegotiationMiddleware.offers["getOpenAPIDocument"] == ["application/yaml"])
        #expect(NegotiationMiddleware.offers["getContainerLogs"] == ["application/x-ndjson"])
        #expect(NegotiationMiddleware.offers["runContainer"] == ["application/json"])
        // Every operation of the contract whose success has a body is listed.
        var operations: [String] = []
        for line in embeddedOpenAPIDocument.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("operationId: ") { operations.append(String(text.dropFirst("operationId: ".count))) }
        }
        let bodiless: Set = [
            "removeContainer", "stopContainer", "killContainer", "checkImage", "removeImage", "tagImage",
            // A 101 switches to WebSocket; a resize answers 204.
            "attachExecSession", "attachContainer", "resizeExecSession", "resizeContainer",
        ]
        #expect(Set(NegotiationMiddleware.offers.keys) == Set(operations).subtracting(bodiless))
    }

    @Test func aRefusalNeverRunsTheOperationAndAChoiceIsWhatTheHandlerSees() async throws {
        let middleware = NegotiationMiddleware()
        let seen = Mutex<[String]?>(nil)
        let next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?) = { request, _, _ in
            seen.withLock { $0 = request.headerFields[values: .accept] }
            return (HTTPResponse(status: .ok), nil)
        }
        func request(_ accept: String?) -> HTTPRequest {
            var request = HTTPRequest(method: .post, scheme: nil, authority: nil, path: "/containers/x/exec")
            if let accept { request.headerFields[.accept] = accept }
            return request
        }
        let (refused, body) = try await middleware.intercept(
            request("text/html"), body: nil, metadata: .init(), operationID: "execInContainer", next: next)
        #expect(refused.status.code == 406)
        #expect(refused.headerFields[.contentType] == "application/problem+json")
        let problem = try JSONSerialization.jsonObject(with: Data(try await [UInt8](collecting: try #require(body), upTo: 1 << 16)))
        #expect((problem as? [String: Any])?["status"] as? Int == 406)
        #expect(seen.withLock { $0 } == nil)

        _ = try await middleware.intercept(
            request("application/x-ndjson, application/json"), body: nil, metadata: .init(), operationID: "execInContainer", next: next)
        #expect(seen.withLock { $0 } == ["application/json, application/problem+json"])
        _ = try await middleware.intercept(request(nil), body: nil, metadata: .init(), operationID: "getMetrics", next: next)
        #expect(seen.withLock { $0 } == ["text/plain, application/problem+json"])
        // Nothing to negotiate for an answer without a body.
        _ = try await middleware.intercept(request("text/html"), body: nil, metadata: .init(), operationID: "removeContainer", next: next)
        #expect(seen.withLock { $0 } == ["text/html"])
    }
}
