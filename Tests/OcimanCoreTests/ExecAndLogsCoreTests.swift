import Testing

@testable import OcimanCore

@Suite("Exec validation and process-tree parsing")
struct ExecAndLogsCoreTests {
    @Test(arguments: [
        (ExecOptions(command: []), "command"),
        (ExecOptions(command: ["", "x"]), "command"),
        (ExecOptions(command: ["sh", "a\u{0}b"]), "command"),
        (ExecOptions(command: ["env"], environment: ["A=B": "1"]), "env.A=B"),
        (ExecOptions(command: ["id"], user: "a b"), "user"),
        (ExecOptions(command: ["id"], user: ":1"), "user"),
        (ExecOptions(command: ["pwd"], workdir: "tmp"), "workdir"),
        (ExecOptions(command: ["true"], timeoutSeconds: 0), "timeout_seconds"),
    ])
    func invalidExecOptionsNameTheField(options: ExecOptions, field: String) {
        #expect {
            try Runtime.validate(options)
        } throws: { error in
            guard case .invalid(let reported, _) = error as? OcimanError else { return false }
            return reported == field
        }
    }

    @Test(arguments: ["root", "1000", "1000:1000", "postgres:postgres", "nobody:65534"])
    func acceptedUsers(user: String) throws {
        try Validation.user(user)
    }

    @Test func parentPIDSurvivesParenthesesAndSpacesInTheCommandName() {
        #expect(HostProcessTree.parentPID(stat: "4242 (my (odd) cmd) S 17 4242 4242 0 -1") == 17)
        #expect(HostProcessTree.parentPID(stat: "garbage") == nil)
    }
}
