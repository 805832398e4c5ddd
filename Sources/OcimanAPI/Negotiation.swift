import Foundation
import HTTPTypes
import OcimanCore
import OpenAPIRuntime

/// Content negotiation, decided before the operation runs, so an `Accept` nothing satisfies is a
/// 406 with no side effect (no container made, no command run). The chosen media type then
/// replaces the request's `Accept`, so the handler and the generated code see one answer, plus
/// problem documents: an operation may return one (a 503 with `Retry-After`), and the generated
/// code refuses to send what `Accept` does not list.
public struct NegotiationMiddleware: ServerMiddleware {
    public init() {}

    public func intercept(
        _ request: HTTPRequest,
        body: HTTPBody?,
        metadata: ServerRequestMetadata,
        operationID: String,
        next: @Sendable (HTTPRequest, HTTPBody?, ServerRequestMetadata) async throws -> (HTTPResponse, HTTPBody?)
    ) async throws -> (HTTPResponse, HTTPBody?) {
        // Operations that answer without a body have nothing to negotiate.
        guard let offers = Self.offers[operationID], !offers.isEmpty else { return try await next(request, body, metadata) }
        let accept = request.headerFields[values: .accept]
        guard let chosen = MediaRange.choose(from: offers, accept: accept) else {
            let detail = "this operation answers \(offers.joined(separator: " or ")), which Accept: \(accept.joined(separator: ", ")) does not admit"
            return ProblemDocument.response(status: 406, bytes: ProblemDocument.render(status: 406, detail: detail))
        }
        var request = request
        request.headerFields[.accept] = "\(chosen), \(ProblemDocument.contentType)"
        return try await next(request, body, metadata)
    }

    /// The media types of each operation's success answer, preferred first (JSON before ndjson),
    /// taken from the generated code, so they follow openapi.yaml.
    static let offers: [String: [String]] = Dictionary(uniqueKeysWithValues: [
        offer(Operations.GetHealth.id, Operations.GetHealth.AcceptableContentType.self),
        offer(Operations.GetReady.id, Operations.GetReady.AcceptableContentType.self),
        offer(Operations.GetBackend.id, Operations.GetBackend.AcceptableContentType.self),
        offer(Operations.GetOpenAPIDocument.id, Operations.GetOpenAPIDocument.AcceptableContentType.self),
        offer(Operations.GetMetrics.id, Operations.GetMetrics.AcceptableContentType.self),
        offer(Operations.RunContainer.id, Operations.RunContainer.AcceptableContentType.self),
        offer(Operations.ListContainers.id, Operations.ListContainers.AcceptableContentType.self),
        offer(Operations.InspectContainer.id, Operations.InspectContainer.AcceptableContentType.self),
        offer(Operations.ExecInContainer.id, Operations.ExecInContainer.AcceptableContentType.self),
        offer(Operations.GetContainerLogs.id, Operations.GetContainerLogs.AcceptableContentType.self),
        offer(Operations.WaitContainer.id, Operations.WaitContainer.AcceptableContentType.self),
        offer(Operations.CommitContainer.id, Operations.CommitContainer.AcceptableContentType.self),
        offer(Operations.BuildImage.id, Operations.BuildImage.AcceptableContentType.self),
        offer(Operations.BuildImageFromTar.id, Operations.BuildImageFromTar.AcceptableContentType.self),
        offer(Operations.HashContext.id, Operations.HashContext.AcceptableContentType.self),
        offer(Operations.HashTarContext.id, Operations.HashTarContext.AcceptableContentType.self),
        offer(Operations.ListImages.id, Operations.ListImages.AcceptableContentType.self),
        offer(Operations.PullImage.id, Operations.PullImage.AcceptableContentType.self),
        offer(Operations.PushImage.id, Operations.PushImage.AcceptableContentType.self),
        offer(Operations.InspectImage.id, Operations.InspectImage.AcceptableContentType.self),
        offer(Operations.CreateSession.id, Operations.CreateSession.AcceptableContentType.self),
        offer(Operations.RenewSession.id, Operations.RenewSession.AcceptableContentType.self),
        offer(Operations.DeleteSession.id, Operations.DeleteSession.AcceptableContentType.self),
        offer(Operations.CreateExecSession.id, Operations.CreateExecSession.AcceptableContentType.self),
        offer(Operations.InspectExecSession.id, Operations.InspectExecSession.AcceptableContentType.self),
        offer(Operations.GetEvents.id, Operations.GetEvents.AcceptableContentType.self),
        offer(Operations.PutPool.id, Operations.PutPool.AcceptableContentType.self),
        offer(Operations.GetPool.id, Operations.GetPool.AcceptableContentType.self),
        offer(Operations.DeletePool.id, Operations.DeletePool.AcceptableContentType.self),
        offer(Operations.ClaimFromPool.id, Operations.ClaimFromPool.AcceptableContentType.self),
        offer(Operations.ReleasePoolMember.id, Operations.ReleasePoolMember.AcceptableContentType.self),
    ])

    /// Problem documents are the error answer of every operation, sent whatever `Accept` says;
    /// they are not what a client negotiates for.
    private static func offer<Types: AcceptableProtocol>(_ id: String, _ types: Types.Type) -> (String, [String]) {
        let media = types.allCases.map(\.rawValue).filter { $0 != ProblemDocument.contentType }
        return (id, media.filter { $0 == "application/json" } + media.filter { $0 != "application/json" })
    }
}

/// One element of an `Accept` header (RFC 9110 §12.5.1): a media range and its weight.
struct MediaRange: Equatable {
    var type: String
    var subtype: String
    var quality: Double

    /// The offer the client accepts most, the earlier offer on a tie; nil when it accepts none.
    /// No `Accept` (or an empty one) accepts anything.
    static func choose(from offers: [String], accept: [String]) -> String? {
        let ranges = accept.flatMap { $0.split(separator: ",") }.compactMap(MediaRange.init)
        guard !ranges.isEmpty else { return offers.first }
        var best: (offer: String, quality: Double)?
        for offer in offers {
            let quality = Self.quality(of: offer, in: ranges)
            if quality > 0, quality > (best?.quality ?? 0) { best = (offer, quality) }
        }
        return best?.offer
    }

    /// The weight of the most specific range that matches (`type/subtype`, then `type/*`, then `*/*`).
    static func quality(of mediaType: String, in ranges: [MediaRange]) -> Double {
        let parts = mediaType.lowercased().split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return 0 }
        var best: (specificity: Int, quality: Double)?
        for range in ranges {
            let specificity: Int
            if range.type == parts[0] && range.subtype == parts[1] {
                specificity = 2
            } else if range.type == parts[0] && range.subtype == "*" {
                specificity = 1
            } else if range.type == "*" && range.subtype == "*" {
                specificity = 0
            } else {
                continue
            }
            if specificity > (best?.specificity ?? -1) { best = (specificity, range.quality) }
        }
        return best?.quality ?? 0
    }

    /// nil for an element that is not a media range; a malformed weight counts as 1.
    init?(_ element: Substring) {
        let parameters = element.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let range = parameters.first, !range.isEmpty else { return nil }
        let parts = range.lowercased().split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, parts[0] != "*" || parts[1] == "*" else { return nil }
        type = parts[0]
        subtype = parts[1]
        quality = 1
        for parameter in parameters.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "q", let weight = Double(pair[1]), (0...1).contains(weight) {
                quality = weight
            }
        }
    }
}
