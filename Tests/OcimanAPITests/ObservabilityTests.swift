import Foundation
import HTTPTypes
import Logging
import OpenAPIRuntime
import Synchronization
import Testing

import InMemoryEngine

@testable import OcimanAPI
@testable import OcimanCore

@Suite struct JSONLogHandlerTests {
    /// Collects what the handler writes instead of writing to stderr.
    final class Sink: Sendable {
        let lines = Mutex<[String]>([])
        func write(_ bytes: [UInt8]) { lines.withLock { $0.append(String(decoding: bytes, as: UTF8.self)) } }
        var objects: [[String: Any]] {
            lines.withLock { $0 }.map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        }
    }

    func logger(_ sink: Sink, level: Logger.Level = .info, provider: Logger.MetadataProvider? = nil) -> Logger {
        Logger(label: "ocimand") { label in
            var handler = JSONLogHandler(label: label, metadataProvider: provider) { sink.write($0) }
            handler.logLevel = level
            return handler
        }
    }

    @Test func oneObjectPerLineWithTypedFields() throws {
        let sink = Sink()
        logger(sink).info(
            "request",
            metadata: [
                "status": .stringConvertible(200), "duration_ms": .stringConvertible(0.25), "route": "/health",
                "ok": .stringConvertible(true), "tags": ["a", "b"], "nested": ["k": "v"],
            ])
        let lines = sink.lines.withLock { $0 }
        #expect(lines.count == 1)
        #expect(lines[0].hasSuffix("}\n"))
        #expect(lines[0].dropLast().contains("\n") == false)
        let object = try #require(sink.objects.first)
        #expect(object["level"] as? String == "info")
        #expect(object["logger"] as? String == "ocimand")
        #expect(object["message"] as? String == "request")
        #expect(object["status"] as? Int == 200)
        #expect(object["duration_ms"] as? Double == 0.25)
        #expect(object["ok"] as? Bool == true)
        #expect(object["route"] as? String == "/health")
        #expect(object["tags"] as? [String] == ["a", "b"])
        #expect((object["nested"] as? [String: String]) == ["k": "v"])
        let time = try #require(object["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
    }

    @Test func escapesControlCharactersQuotesAndKeepsUnicode() throws {
        let sink = Sink()
        logger(sink).warning("line1\nline2 \"quoted\" \\ tab\t bell\u{07} ünïcödé")
        let line = try #require(sink.lines.withLock { $0.first })
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(line.contains(#"\u0007"#))
        #expect(sink.objects.first?["message"] as? String == "line1\nline2 \"quoted\" \\ tab\t bell\u{07} ünïcödé")
    }

    @Test func respectsLevelAndReservedKeys() throws {
        let sink = Sink()
        let log = logger(sink, level: .notice)
        log.info("dropped")
        log.notice("kept", metadata: ["message": "shadow", "level": "x"])
        let objects = sink.objects
        #expect(objects.count == 1)
        #expect(objects[0]["message"] as? String == "kept")
        #expect(objects[0]["metadata.message"] as? String == "shadow")
        #expect(objects[0]["level"] as? String == "notice")
    }

    @Test func metadataProviderAddsTheRequestID() throws {
        let sink = Sink()
        let log = logger(sink, provider: RequestID.metadataProvider)
        RequestID.$current.withValue("abc-123") { log.info("inside") }
        log.info("outside")
        let objects = sink.objects
        #expect(objects[0]["request_id"] as? String == "abc-123")
        #expect(objects[1]["request_id"] == nil)
    }

    @Test func timestampIsUTCWithMilliseconds() {
        var line: [UInt8] = []
        JSONLogHandler.appendTimestamp(timespec(tv_sec: 1_777_636_800, tv_nsec: 7_000_000), to: &line)
        #expect(String(decoding: line, as: UTF8.self) == "2026-05-01T12:00:00.007Z")
    }
}

@Suite struct RequestIDTests {
    @Test(arguments: ["abc", "A.b_c-9", String(repeating: "x", count: 128), "0f0e-uuid-like-1234"])
    func acceptsSafeIDs(_ id: String) {
        #expect(RequestID.isValid(id))
        #expect(RequestID.accepting(id) == id)
    }

    @Test(arguments: [
        "", String(repeating: "x", count: 129), "has space", "new\nline", "quote\"", "ünï", "a/b", "a;b", "{x}",
    ])
    func replacesUnsafeIDs(_ id: String) {
        #expect(!RequestID.isValid(id))
        let replacement = RequestID.accepting(id)
        #expect(replacement != id)
        #expect(RequestID.isValid(replacement))
    }

    @Test func generatesDistinct32HexDigitIDs() {
        let ids = (0..<1000).map { _ in RequestID.generate() }
        #expect(Set(ids).count == 1000)
        #expect(ids.allSatisfy { $0.wholeMatch(of: /[0-9a-f]{32}/) != nil })
        #expect(RequestID.accepting(nil).count == 32)
    }
}

@Suite struct RouteTemplateTests {
    /// Captures what the generated code registers, as a transport does.
    final class RecordingTransport: ServerTransport, Sendable {
        typealias Handler = @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
        let routes = Mutex<[String: Handler]>([:])
        func register(_ handler: @escaping Handler, method: HTTPRequest.Method, path: String) throws {
            routes.withLock { $0["\(method.rawValue) \(path)"] = handler }
        }
    }

    /// Records the template each operation runs under, and answers without running the handler.
    final class TemplateProbe: ServerMiddleware, Sendable {
        let seen = Mutex<[String: String]>([:])
        func intercept(
            _ request: HTTPRequest, body: HTTPBody?, metadata: ServerRequestMetadata, operationID: String,
            next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
        ) async throws -> (HTTPResponse, HTTPBody?) {
            seen.withLock { $0[operationID] = MatchedRoute.template }
            return (HTTPResponse(status: .noContent), nil)
        }
    }

    @Test func everyOperationRunsUnderTheTemplateItWasRegisteredWith() async throws {
        let recorder = RecordingTransport()
        let seen = TemplateProbe()
        let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        try APIHandler(runtime: Runtime(engine: InMemoryEngine(), logger: quiet), logger: quiet)
            .registerHandlers(on: RouteTemplateTransport(recorder), middlewares: [seen])
        let routes = recorder.routes.withLock { $0 }
        let operationCount = embeddedOpenAPIDocument.components(separatedBy: "operationId:").count - 1
        #expect(routes.count == operationCount)
        for (_, handler) in routes {
            _ = try await handler(HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/"), nil, .init())
        }
        let templates = seen.seen.withLock { $0 }
        #expect(templates.count == operationCount)
        #expect(templates["getHealth"] == "/health")
        #expect(templates["inspectContainer"] == "/containers/{id}")
        #expect(templates["checkImage"] == "/images/{reference}")
        #expect(templates["tagImage"] == "/images/{reference}/tag")
        #expect(templates["buildImage"] == "/images/build")
        // Every template is one the contract names.
        for template in templates.values {
            #expect(embeddedOpenAPIDocument.contains("\n  \(template):"))
        }
    }
}

@Suite struct MetricsExpositionTests {
    typealias Next = @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    static let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

    static func answer(_ status: HTTPResponse.Status, _ text: String = "{}") -> Next {
        { _, _, _ in (HTTPResponse(status: status), HTTPBody(text)) }
    }

    func call(
        _ middleware: some ServerMiddleware, _ route: String, _ next: @escaping Next,
        headers: HTTPFields = [:], method: HTTPRequest.Method = .get
    ) async throws -> (HTTPResponse, HTTPBody?) {
        var request = HTTPRequest(method: method, scheme: nil, authority: nil, path: "/whatever")
        request.headerFields = headers
        return try await MatchedRoute.$template.withValue(route) {
            try await middleware.intercept(
                request, body: nil, metadata: .init(), operationID: Self.operationIDs[route] ?? route, next: next)
        }
    }

    static let operationIDs = ["/metrics": "getMetrics"]

    /// The sample value of the series whose line starts with `series` (name plus labels).
    func sample(_ exposition: String, _ series: String) -> Double? {
        for line in exposition.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test func countsRequestsPerRouteAndStatus() async throws {
        let exporter = MetricsExporter()
        let middleware = HTTPMetricsMiddleware(metricsFactory: exporter)
        for _ in 0..<2 { _ = try await call(middleware, "/health", Self.answer(.ok)) }
        _ = try await call(middleware, "/containers/{id}", Self.answer(.notFound))
        let text = String(decoding: exporter.render(), as: UTF8.self)

        #expect(text.contains("# TYPE ociman_http_requests_total counter"))
        #expect(text.contains("# HELP ociman_http_requests_total "))
        #expect(sample(text, #"ociman_http_requests_total{method="GET",route="/health",status="200"}"#) == 2)
        #expect(sample(text, #"ociman_http_requests_total{method="GET",route="/containers/{id}",status="404"}"#) == 1)
        #expect(text.contains("# TYPE ociman_http_request_duration_seconds histogram"))
        #expect(
            sample(text, #"ociman_http_request_duration_seconds_count{method="GET",route="/health",status="200"}"#) == 2)
        #expect(
            sample(text, #"ociman_http_request_duration_seconds_bucket{method="GET",route="/health",status="200",le="+Inf"}"#)
                == 2)
        #expect(sample(text, #"ociman_http_requests_in_flight{route="/health"}"#) == 0)
    }

    @Test func echoesOrAssignsTheRequestID() async throws {
        let middleware = RequestIDMiddleware()
        let seen = Mutex<String?>(nil)
        let next: Next = { _, _, _ in
            seen.withLock { $0 = RequestID.current }
            return (HTTPResponse(status: .ok), nil)
        }
        let (echoed, _) = try await call(middleware, "/health", next, headers: [.requestID: "client-42"])
        #expect(echoed.headerFields[.requestID] == "client-42")
        #expect(seen.withLock { $0 } == "client-42")

        let (replaced, _) = try await call(middleware, "/health", next, headers: [.requestID: "bad id\u{7}"])
        let assigned = try #require(replaced.headerFields[.requestID])
        #expect(assigned != "bad id\u{7}" && RequestID.isValid(assigned))
    }

    @Test func metricsAnswerCarriesThePrometheusContentType() async throws {
        let middleware = HTTPMetricsMiddleware(metricsFactory: MetricsExporter())
        let (response, _) = try await call(middleware, "/metrics", Self.answer(.ok, "x 1\n"))
        #expect(response.headerFields[.contentType] == "text/plain; version=0.0.4; charset=utf-8")
    }

    @Test func streamsCountAsInFlightUntilTheirBodyEnds() async throws {
        let exporter = MetricsExporter()
        let middleware = HTTPMetricsMiddleware(metricsFactory: exporter)
        let (chunks, continuation) = AsyncStream.makeStream(of: ArraySlice<UInt8>.self)
        let next: Next = { _, _, _ in
            (HTTPResponse(status: .ok), HTTPBody(chunks, length: .unknown, iterationBehavior: .single))
        }
        let (_, body) = try await call(middleware, "/images/build", next, method: .post)
        let streamed = try #require(body)
        func gauges() -> (Double?, Double?) {
            let text = String(decoding: exporter.render(), as: UTF8.self)
            return (
                sample(text, #"ociman_http_requests_in_flight{route="/images/build"}"#),
                sample(text, #"ociman_http_response_streams_open{route="/images/build"}"#)
            )
        }
        #expect(gauges() == (1, 1))
        continuation.yield(ArraySlice("{\"type\":\"log\"}\n".utf8))
        continuation.finish()
        var received = 0
        for try await chunk in streamed { received += chunk.count }
        #expect(received == 15)
        #expect(gauges() == (0, 0))
    }

    @Test func abandonedStreamsAreReleased() async throws {
        let exporter = MetricsExporter()
        let middleware = HTTPMetricsMiddleware(metricsFactory: exporter)
        let (chunks, continuation) = AsyncStream.makeStream(of: ArraySlice<UInt8>.self)
        defer { continuation.finish() }
        let next: Next = { _, _, _ in
            (HTTPResponse(status: .ok), HTTPBody(chunks, length: .unknown, iterationBehavior: .single))
        }
        // The transport drops the body when the client goes away, without reading it to the end.
        _ = try await call(middleware, "/containers/{id}/logs", next)
        let text = String(decoding: exporter.render(), as: UTF8.self)
        #expect(sample(text, #"ociman_http_requests_in_flight{route="/containers/{id}/logs"}"#) == 0)
        #expect(sample(text, #"ociman_http_response_streams_open{route="/containers/{id}/logs"}"#) == 0)
    }

    @Test func sampledGaugesAreReadAtEveryScrape() {
        let exporter = MetricsExporter()
        let value = Mutex(3)
        exporter.addGauge(MetricNames.connectionsOpen) { value.withLock { $0 } }
        #expect(sample(String(decoding: exporter.render(), as: UTF8.self), "ociman_http_connections_open") == 3)
        value.withLock { $0 = 5 }
        #expect(sample(String(decoding: exporter.render(), as: UTF8.self), "ociman_http_connections_open") == 5)
    }
}
