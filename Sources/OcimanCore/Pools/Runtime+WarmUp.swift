extension Runtime {
    /// The end of a failed warm-up's output that its error quotes.
    static let warmUpOutputTail = 1024

    /// Runs a pool's warm-up in member `id`; throws unless it exits with 0 within its time.
    /// Only the end of its output is kept, however much it prints.
    func warmUp(_ id: String, _ warmUp: PoolWarmUp) async throws(OcimanError) {
        let events = try await execStream(id, ExecOptions(command: warmUp.command, timeoutSeconds: warmUp.timeoutSeconds))
        var tail: [UInt8] = []
        do {
            for try await event in events {
                switch event {
                case .output(_, let bytes):
                    tail += bytes.suffix(Self.warmUpOutputTail)
                    if tail.count > Self.warmUpOutputTail { tail.removeFirst(tail.count - Self.warmUpOutputTail) }
                case .exit(0):
                    return
                case .exit(let code):
                    let output = String(decoding: tail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    throw OcimanError.unavailable(
                        "the pool's warm-up exited with code \(code) in container \(id)" + (output.isEmpty ? "" : ": \(output)"))
                }
            }
        } catch {
            throw OcimanError(converting: error, context: "the pool's warm-up in container \(id)")
        }
        throw .unavailable("the pool's warm-up in container \(id) ended without an exit code")
    }
}
