import Testing

@testable import OcimanCore

/// Commit changes are checked before the engine sees them: Podman answers a malformed one with
/// 500 (found by the schemathesis contract run), which would reach the client as 502.
@Suite struct CommitChangeTests {
    @Test(arguments: [#"CMD ["sh"]"#, "ENV A=1", "label org.example.seeded=true", "  WORKDIR\t/srv ", "EXPOSE 80/tcp"])
    func acceptsInstructionsWithAnArgument(change: String) {
        #expect(Runtime.isCommitChange(change))
    }

    @Test(arguments: ["", "   ", "CMD", "CMD   ", "RUN echo hi", "FROM scratch", "ÃÎ\"r\u{10}", "ENV A=\u{0}", "STOPSIGNAL SIGTERM"])
    func refusesAnythingElse(change: String) {
        #expect(!Runtime.isCommitChange(change))
    }
}
