import Testing

@testable import OcimanCore

@Suite("One rule for engine failures")
struct EngineFailureRuleTests {
    @Test("an engine call without an answer in time is a 504, an unreachable engine a 503")
    func engineFailureRule() {
        guard case .timedOut(_, nil, _) = OcimanError(EngineFailure.timedOut("GET /x after 3 seconds")) else {
            Issue.record("timeout is not timedOut")
            return
        }
        guard case .unavailable = OcimanError(EngineFailure.unavailable("connection refused")) else {
            Issue.record("unavailable is not unavailable")
            return
        }
    }
}
