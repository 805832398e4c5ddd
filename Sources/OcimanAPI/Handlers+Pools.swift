import OcimanCore
import OpenAPIRuntime

extension APIHandler {
    public func putPool(_ input: Operations.PutPool.Input) async throws -> Operations.PutPool.Output {
        guard case .json(let request) = input.body else { throw OcimanError.invalid(field: nil, message: "expected JSON") }
        let spec = PoolSpec(
            run: RunSpec(request.run), size: request.size, max: request.max, bootConcurrency: request.bootConcurrency ?? 2,
            warmUp: request.warmUp.map { PoolWarmUp(command: $0.command, timeoutSeconds: $0.timeoutSeconds ?? 60) })
        let status = try await pools.put(input.path.name, spec)
        return .ok(.init(body: .json(.init(status))))
    }

    public func getPool(_ input: Operations.GetPool.Input) async throws -> Operations.GetPool.Output {
        .ok(.init(body: .json(.init(try await pools.status(input.path.name)))))
    }

    public func deletePool(_ input: Operations.DeletePool.Input) async throws -> Operations.DeletePool.Output {
        try await pools.delete(input.path.name)
        return .noContent(.init())
    }

    public func claimFromPool(_ input: Operations.ClaimFromPool.Input) async throws -> Operations.ClaimFromPool.Output {
        var request: Components.Schemas.PoolClaim?
        if case .json(let body) = input.body { request = body }
        try OcimanError.checkBounds(request?.timeoutSeconds, IntegerBounds.claimTimeoutSeconds, field: "timeout_seconds")
        let options = PoolClaimOptions(
            name: request?.name, labels: request?.labels?.additionalProperties ?? [:], session: request?.session,
            ttlSeconds: request?.ttlSeconds,
            timeout: .seconds(request?.timeoutSeconds ?? 30))
        switch try await pools.claim(input.path.name, options) {
        case .claimed(let container):
            return .created(.init(body: .json(try .init(container))))
        case .noneReady(let detail, let retryAfter):
            let problem = Components.Schemas.Problem(
                _type: "about:blank", title: ProblemDocument.title(for: 503), status: 503, detail: detail)
            return .serviceUnavailable(.init(headers: .init(retryAfter: retryAfter), body: .applicationProblemJson(problem)))
        }
    }
}

extension Components.Schemas.Pool {
    init(_ status: PoolStatus) {
        self.init(
            name: status.name, key: status.key, size: status.spec.size, max: status.spec.max, ready: status.ready,
            booting: status.booting, claimed: status.claimed)
    }
}

extension APIHandler {
    public func releasePoolMember(_ input: Operations.ReleasePoolMember.Input) async throws
        -> Operations.ReleasePoolMember.Output
    {
        try await pools.release(input.path.name, member: input.path.id)
        return .accepted(.init())
    }
}
