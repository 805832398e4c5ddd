import Foundation
import HTTPTypes
import OpenAPIRuntime
import Synchronization
import Testing

@testable import OcimanAPI

@Suite struct RequestAdmissionTests {
    static func request(
        _ method: HTTPRequest.Method = .get,
        host: String? = "127.0.0.1:8420",
        _ fields: [(String, String)] = []
    ) -> HTTPRequest {
        request(method, host: host, fields: fields)
    }

    static func request(_ fields: [(String, String)]) -> HTTPRequest { request(.get, host: "127.0.0.1:8420", fields: fields) }

    static func request(_ method: HTTPRequest.Method, host: String?, fields: [(String, String)]) -> HTTPRequest {
        var request = HTTPRequest(method: method, scheme: nil, authority: host, path: "/")
        if let host { request.headerFields.append(HTTPField(name: RequestAdmission.hostField, value: host)) }
        for (name, value) in fields { request.headerFields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return request
    }

    static let loopback = try! RequestAdmission(listenHost: "127.0.0.1")

    @Test(arguments: [
        "127.0.0.1", "127.0.0.1:8420", "127.0.0.1:9999", "localhost", "LOCALHOST:8420", "localhost.", "[::1]", "[::1]:8420",
    ])
    func loopbackNamesAreAccepted(host: String) {
        #expect(Self.loopback.check(Self.request(host: host), routeTemplate: "/health", hasBody: false) == nil)
    }

    @Test(arguments: [
        "evil.example", "evil.example:8420", "127.0.0.1.evil.example", "localhost.evil.example", "127.0.0.2", "[::2]:8420",
        "0.0.0.0:8420", "", "localhost:", "localhost:84a0", "[::1", "local host", "localhost:8420:1",
    ])
    func otherHostsAreRefused(host: String) {
        let refusal = Self.loopback.check(Self.request(host: host), routeTemplate: "/health", hasBody: false)
        #expect(refusal?.status == 403, "\(host)")
    }

    @Test func requestWithoutHostIsAdmitted() {
        // HTTP/1.0 clients may omit it; a browser never does.
        #expect(Self.loopback.check(Self.request(host: nil), routeTemplate: "/health", hasBody: false) == nil)
    }

    @Test func twoHostHeadersAreRefused() {
        let request = Self.request(host: "127.0.0.1", [("Host", "evil.example")])
        #expect(Self.loopback.check(request, routeTemplate: "/health", hasBody: false)?.status == 403)
    }

    @Test func listenAddressAndAllowedHostsAreAccepted() throws {
        let admission = try RequestAdmission(listenHost: "10.1.2.3", extraHosts: ["Build-Box.lan", "::1", "[fd00::5]:8420"])
        for host in ["10.1.2.3:8420", "build-box.lan", "BUILD-BOX.LAN:8420", "localhost", "[fd00::5]"] {
            #expect(admission.check(Self.request(host: host), routeTemplate: "/health", hasBody: false) == nil, "\(host)")
        }
        #expect(admission.check(Self.request(host: "other.lan"), routeTemplate: "/health", hasBody: false)?.status == 403)
    }

    @Test func wildcardListenAddressIsNotAHostName() throws {
        let admission = try RequestAdmission(listenHost: "0.0.0.0")
        #expect(admission.check(Self.request(host: "0.0.0.0:8420"), routeTemplate: "/health", hasBody: false)?.status == 403)
        #expect(admission.check(Self.request(host: "localhost:8420"), routeTemplate: "/health", hasBody: false) == nil)
    }

    @Test func unixSocketAcceptsAnyHost() throws {
        let admission = try RequestAdmission(listenHost: nil)
        for host in ["localhost", "docker", "evil.example", "whatever:1"] {
            #expect(admission.check(Self.request(host: host), routeTemplate: "/health", hasBody: false) == nil)
        }
        // Origin and Content-Type still apply.
        #expect(admission.check(Self.request(host: "localhost", [("Origin", "http://evil.example")]), routeTemplate: "/health", hasBody: false)?.status == 403)
    }

    @Test func invalidConfigurationIsRefused() {
        #expect(throws: RequestAdmission.ConfigurationError.self) { try RequestAdmission(listenHost: "127.0.0.1", extraHosts: ["a/b"]) }
        for origin in ["*", "null", "localhost:3000", "http://", "http://a.example/path", "http://user@a.example", "ftp:/x"] {
            #expect(throws: RequestAdmission.ConfigurationError.self, "\(origin)") {
                try RequestAdmission(listenHost: "127.0.0.1", allowedOrigins: [origin])
            }
        }
    }

    // MARK: - Origin

    @Test func anyOriginIsRefusedByDefault() {
        for origin in ["http://evil.example", "http://127.0.0.1:8420", "null", "http://localhost:3000"] {
            let refusal = Self.loopback.check(Self.request([("Origin", origin)]), routeTemplate: "/containers", hasBody: false)
            #expect(refusal?.status == 403, "\(origin)")
        }
    }

    @Test func allowedOriginIsAdmittedWhateverItsSpelling() throws {
        let admission = try RequestAdmission(listenHost: "127.0.0.1", allowedOrigins: ["http://localhost:3000", "https://Dash.Example/"])
        for origin in ["http://localhost:3000", "HTTP://LOCALHOST:3000", "https://dash.example"] {
            #expect(admission.check(Self.request([("Origin", origin)]), routeTemplate: "/containers", hasBody: false) == nil, "\(origin)")
        }
        for origin in ["http://localhost:3001", "https://localhost:3000", "http://dash.example", "null"] {
            #expect(admission.check(Self.request([("Origin", origin)]), routeTemplate: "/containers", hasBody: false)?.status == 403, "\(origin)")
        }
        let twice = Self.request([("Origin", "http://localhost:3000"), ("Origin", "http://evil.example")])
        #expect(admission.check(twice, routeTemplate: "/containers", hasBody: false)?.status == 403)
    }

    @Test func crossSiteNavigationWithoutOriginIsRefused() throws {
        for site in ["cross-site", "same-site", "Cross-Site"] {
            #expect(Self.loopback.check(Self.request([("Sec-Fetch-Site", site)]), routeTemplate: "/containers", hasBody: false)?.status == 403)
        }
        // Typed into the address bar, or the service's own origin.
        for site in ["none", "same-origin"] {
            #expect(Self.loopback.check(Self.request([("Sec-Fetch-Site", site)]), routeTemplate: "/containers", hasBody: false) == nil)
        }
        let allowed = try RequestAdmission(listenHost: "127.0.0.1", allowedOrigins: ["http://localhost:3000"])
        let fromAllowedPage = Self.request([("Origin", "http://localhost:3000"), ("Sec-Fetch-Site", "same-site")])
        #expect(allowed.check(fromAllowedPage, routeTemplate: "/containers", hasBody: false) == nil)
    }

    // MARK: - Content-Type

    @Test func bodiesMustBeJSON() {
        for contentType in ["application/json", "application/json; charset=utf-8", "Application/JSON ;charset=UTF-8"] {
            #expect(Self.loopback.check(Self.request(.post, [("Content-Type", contentType)]), routeTemplate: "/containers", hasBody: true) == nil)
        }
        for contentType in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/x-tar",
            "application/jsonx", "application/problem+json"]
        {
            let refusal = Self.loopback.check(Self.request(.post, [("Content-Type", contentType)]), routeTemplate: "/containers", hasBody: true)
            #expect(refusal?.status == 415, "\(contentType)")
        }
        #expect(Self.loopback.check(Self.request(.post), routeTemplate: "/containers", hasBody: true)?.status == 415)
        // No body, no Content-Type needed.
        #expect(Self.loopback.check(Self.request(.post), routeTemplate: "/containers/{id}/stop", hasBody: false) == nil)
    }

    @Test func tarIsAcceptedWhereTheContractTakesOne() {
        for route in ["/images/build/tar", "/hash/tar"] {
            #expect(Self.loopback.check(Self.request(.post, [("Content-Type", "application/x-tar")]), routeTemplate: route, hasBody: true) == nil)
            for contentType in ["application/json", "text/plain"] {
                #expect(Self.loopback.check(Self.request(.post, [("Content-Type", contentType)]), routeTemplate: route, hasBody: true)?.status == 415)
            }
        }
        // A tar sent to the JSON route is told where tar uploads go.
        let misdirected = Self.loopback.check(
            Self.request(.post, [("Content-Type", "application/x-tar")]), routeTemplate: "/images/build", hasBody: true)
        #expect(misdirected?.status == 415)
        #expect(misdirected?.detail.contains("/images/build/tar") == true)
    }

    @Test func tarRoutesMatchTheContract() {
        // Every path whose request body lists application/x-tar, read from the embedded openapi.yaml.
        var tarPaths: Set<String> = []
        var path: String?
        for line in embeddedOpenAPIDocument.split(separator: "\n") {
            if line.hasPrefix("  /") { path = String(line.dropFirst(2).dropLast()) }
            if !line.hasPrefix(" ") && !line.isEmpty { path = nil }
            if let path, line.trimmingCharacters(in: .whitespaces) == "application/x-tar:" { tarPaths.insert(path) }
        }
        #expect(tarPaths == RequestAdmission.tarBodyRoutes)
    }
}

@Suite struct SecurityMiddlewareTests {
    @Test func constantTimeEquals() {
        let token = Array("correct-horse-battery".utf8)
        #expect(SecurityMiddleware.constantTimeEquals(token, token))
        #expect(!SecurityMiddleware.constantTimeEquals(Array("correct-horse-batterx".utf8), token))
        #expect(!SecurityMiddleware.constantTimeEquals(Array("correct-horse-battery!".utf8), token))
        #expect(!SecurityMiddleware.constantTimeEquals(Array("correct".utf8), token))
        #expect(!SecurityMiddleware.constantTimeEquals([], token))
        // A guess that is the token followed by NULs must not pass as the token padded.
        #expect(!SecurityMiddleware.constantTimeEquals(token + [0], token))
    }

    @Test func bearerTokenParsing() {
        #expect(SecurityMiddleware.bearerToken("Bearer abc") == "abc")
        #expect(SecurityMiddleware.bearerToken("bearer abc") == "abc")
        #expect(SecurityMiddleware.bearerToken("BEARER   abc") == "abc")
        #expect(SecurityMiddleware.bearerToken("Basic YWxhZGRpbjpvcGVuc2VzYW1l") == nil)
        #expect(SecurityMiddleware.bearerToken("Bearer") == nil)
        #expect(SecurityMiddleware.bearerToken("Bearer ") == nil)
        #expect(SecurityMiddleware.bearerToken("abc") == nil)
    }

    static func call(
        _ middleware: SecurityMiddleware, operationID: String, authorization: [String] = []
    ) async throws -> (status: Int, challenge: String?, reachedHandler: Bool) {
        var request = HTTPRequest(method: .get, scheme: nil, authority: "localhost", path: "/ready")
        for value in authorization { request.headerFields.append(HTTPField(name: .authorization, value: value)) }
        let reached = Counter()
        let (response, _) = try await middleware.intercept(request, body: nil, metadata: .init(), operationID: operationID) { _, _, _ in
            reached.increment()
            return (HTTPResponse(status: .ok), nil)
        }
        return (response.status.code, response.headerFields[.wwwAuthenticate], reached.count == 1)
    }

    @Test func tokenIsRequiredExceptOnHealth() async throws {
        let middleware = SecurityMiddleware(token: "s3cret-token")
        let open = try await Self.call(middleware, operationID: "getHealth")
        #expect(open.status == 200 && open.reachedHandler)

        let missing = try await Self.call(middleware, operationID: "getReady")
        #expect(missing.status == 401 && !missing.reachedHandler)
        #expect(missing.challenge == "Bearer")

        let wrong = try await Self.call(middleware, operationID: "getReady", authorization: ["Bearer s3cret-tokeN"])
        #expect(wrong.status == 401 && !wrong.reachedHandler)
        #expect(wrong.challenge?.hasPrefix("Bearer") == true)

        let basic = try await Self.call(middleware, operationID: "runContainer", authorization: ["Basic czNjcmV0LXRva2Vu"])
        #expect(basic.status == 401 && !basic.reachedHandler)

        let twice = try await Self.call(middleware, operationID: "getReady", authorization: ["Bearer s3cret-token", "Bearer x"])
        #expect(twice.status == 401 && !twice.reachedHandler)

        let right = try await Self.call(middleware, operationID: "getReady", authorization: ["Bearer s3cret-token"])
        #expect(right.status == 200 && right.reachedHandler)
    }

    @Test func refusalIsAProblemDocument() async throws {
        let (head, body) = SecurityMiddleware.unauthorized("no", challenge: "Bearer")
        #expect(head.status.code == 401)
        #expect(head.headerFields[.contentType] == "application/problem+json")
        let bytes = try await [UInt8](collecting: body, upTo: 1 << 16)
        let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        #expect(object?["status"] as? Int == 401)
        #expect(object?["title"] as? String == "Unauthorized")
    }
}

final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}
