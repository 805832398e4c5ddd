import HTTPTypes
import OcimanCore
import OpenAPIRuntime

/// Reads an exec request's body as it arrives and moves its `stdin` / `stdin_base64` member
/// into a `StdinSpool` (see `ExecBodySplitter`), handing the handler the rest of the JSON and
/// the spool (`ExecStdinMiddleware.spool`). Before `NullMemberMiddleware`, which then only
/// ever sees the small remainder.
public struct ExecStdinMiddleware: ServerMiddleware {
    /// The spooled input of the exec request this task is handling, if it had one.
    @TaskLocal static var spool: StdinSpool?

    /// Members other than the input: the ordinary JSON body limit.
    let memberLimit: Int

    public init(memberLimit: Int) { self.memberLimit = memberLimit }

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        guard operationID == "execInContainer", let body, NullMemberMiddleware.isJSON(request) else {
            return try await next(request, body, metadata)
        }
        var splitter = ExecBodySplitter(spool: StdinSpool(), memberLimit: memberLimit)
        let rest: [UInt8]
        do {
            for try await chunk in body { try splitter.feed(chunk) }
            rest = try splitter.finish()
        } catch let failure as ExecBodySplitter.Failure {
            throw OcimanError(failure, member: splitter.stdinMember)
        }
        var forwarded = request
        forwarded.headerFields[.contentLength] = String(rest.count)
        guard splitter.stdinMember != nil else { return try await next(forwarded, HTTPBody(rest), metadata) }
        return try await Self.$spool.withValue(splitter.spool) {
            try await next(forwarded, HTTPBody(rest), metadata)
        }
    }
}

extension OcimanError {
    fileprivate init(_ failure: ExecBodySplitter.Failure, member: String?) {
        switch failure {
        case .both:
            self = .invalid(field: "stdin_base64", message: "give either stdin (text) or stdin_base64, not both")
        case .invalidString(let reason):
            self = .invalid(field: member ?? "stdin", message: reason)
        case .membersTooLarge(let limit):
            self = .invalid(field: nil, message: "the members besides stdin exceed \(limit) bytes")
        }
    }
}
