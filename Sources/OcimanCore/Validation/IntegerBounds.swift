/// The range of every integer a client sends, exactly as `openapi.yaml` documents it with
/// `minimum`/`maximum`. Each is checked before the value takes part in any arithmetic: a count of
/// seconds near `Int.max` overflows (and traps) once it becomes a deadline or nanoseconds, and a
/// client must get a 400 naming the field instead.
public enum IntegerBounds {
    /// A container's time-to-live: up to a year.
    public static let ttlSeconds = 1...31_536_000
    /// A readiness wait: up to an hour.
    public static let readinessTimeoutSeconds = 1...3_600
    /// Matching log lines a readiness wait counts.
    public static let logOccurrences = 1...1_000_000
    /// An exec's own deadline: up to a day.
    public static let execTimeoutSeconds = 1...86_400
    /// `POST /containers/{id}/stop?timeout=`: up to an hour before SIGKILL.
    public static let stopTimeoutSeconds = 0...3_600
    /// `POST /containers/{id}/wait?timeout=`: up to a day.
    public static let waitTimeoutSeconds = 1...86_400
    /// `GET /containers/{id}/logs?tail=`: lines. Podman spends time on every requested line,
    /// however short the log (18 s for a billion), so a million it is.
    public static let logTail = 0...1_000_000
    /// `GET /containers/{id}/logs?since=`: Unix seconds up to 9999-12-31T23:59:59Z.
    public static let logSince = 0...253_402_300_799
    /// A session lease: up to a day.
    public static let leaseSeconds = 1...86_400
    /// A terminal's rows or columns (the kernel keeps each in 16 bits).
    public static let terminalCells = 1...10_000
    /// `GET /events?heartbeat_seconds=`.
    public static let heartbeatSeconds = 1...3_600
    /// A pool's `size`, `max` and `boot_concurrency`.
    public static let poolSize = 0...256
    public static let poolMax = 1...256
    public static let poolBootConcurrency = 1...16
    /// How long a claim waits for a member.
    public static let claimTimeoutSeconds = 0...3_600
    public static let containerPort = 1...65_535
    /// 0 lets the engine pick.
    public static let hostPort = 0...65_535

    /// Throws a 400-bound error naming `field` unless `value` lies in `range`.
    public static func check(_ value: Int, _ range: ClosedRange<Int>, field: String) throws(ValidationError) {
        guard range.contains(value) else {
            throw ValidationError(
                field: field,
                message: "\(field) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
        }
    }
}

extension OcimanError {
    /// Unix seconds with a fraction (`GET /events?since=`): finite and within `logSince`.
    static func checkTime(_ value: Double?, field: String) throws(OcimanError) {
        guard let value else { return }
        let range = IntegerBounds.logSince
        guard value.isFinite, Double(range.lowerBound) <= value, value <= Double(range.upperBound) else {
            throw .invalid(field: field, message: "\(field) must be between \(range.lowerBound) and \(range.upperBound), not \(value)")
        }
    }

    /// `IntegerBounds.check` for callers that throw `OcimanError`.
    public static func checkBounds(_ value: Int?, _ range: ClosedRange<Int>, field: String) throws(OcimanError) {
        guard let value else { return }
        do {
            try IntegerBounds.check(value, range, field: field)
        } catch {
            throw OcimanError(error)
        }
    }
}
