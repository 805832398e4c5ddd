// Terminals: `POST /exec/{id}/resize`, `POST /containers/{id}/attach`, `POST /containers/{id}/resize`.
// The same compat endpoints work on Docker and Podman.

/// A terminal's size in character cells.
public struct TerminalCells: Sendable, Equatable {
    public var rows: Int
    public var columns: Int

    public init(rows: Int, columns: Int) {
        self.rows = rows
        self.columns = columns
    }

    var query: [(String, String)] { [("h", String(rows)), ("w", String(columns))] }
}

extension EngineClient {
    /// Sets the TTY size of a running exec (the process gets SIGWINCH).
    public func resizeExec(_ id: String, _ size: TerminalCells) async throws {
        _ = try await send(EngineRequest(.POST, "/exec/\(EngineRequest.escape(id))/resize", query: size.query))
    }

    /// Sets the TTY size of a running container's main process.
    public func resizeContainer(_ id: String, _ size: TerminalCells) async throws {
        _ = try await send(EngineRequest(.POST, "/containers/\(EngineRequest.escape(id))/resize", query: size.query))
    }

    /// Attaches to a container's main process on a hijacked connection: stdin in, output out
    /// (8-byte framed unless the container has a TTY). With `replay` the output the process
    /// wrote before the attach comes first (a shell's first prompt). Closing the connection
    /// detaches; the process keeps running.
    public func attachContainer(_ id: String, replay: Bool) async throws -> HijackedConnection {
        var query = [("stream", "1"), ("stdin", "1"), ("stdout", "1"), ("stderr", "1")]
        if replay { query.append(("logs", "1")) }
        return try await hijack(EngineRequest(.POST, "/containers/\(EngineRequest.escape(id))/attach", query: query))
    }
}
