extension Duration {
    /// Whole nanoseconds as NIO's `TimeAmount` takes them, clamped to `Int64` (about 292 years)
    /// instead of trapping: a deadline far in the future is as good as none.
    public var saturatingNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, sumOverflow) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if sumOverflow { return seconds < 0 ? .min : .max }
        return total
    }
}
