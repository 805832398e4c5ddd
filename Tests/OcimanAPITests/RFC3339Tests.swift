import Foundation
import RFC3339
import Testing

@Suite("RFC 3339 times of the contract")
struct RFC3339Tests {
    @Test func enginesTimesInAnyOffsetAndPrecision() throws {
        let utc = try #require(RFC3339.parse("2025-01-15T10:04:05.123456789Z"))
        #expect(abs(utc.timeIntervalSince1970 - 1_736_935_445.123456789) < 1e-6)
        #expect(RFC3339.parse("2025-01-15T12:04:05.123456789+02:00") == utc)
        #expect(RFC3339.parse("2025-01-15T10:04:05Z")?.timeIntervalSince1970 == 1_736_935_445)
        #expect(RFC3339.parse("1969-12-31T23:59:59Z")?.timeIntervalSince1970 == -1)
        #expect(RFC3339.parse("2024-02-29T00:00:00-00:30")?.timeIntervalSince1970 == 1_709_166_600)
    }

    @Test(arguments: ["", "2025-01-15", "2025-01-15T10:04:05", "2025-13-01T00:00:00Z", "2025-01-15T10:04:05.Z",
        "2025-01-15T10:04:05+0200", "2025-01-15T10:04:05Zjunk", "２０２５-01-15T10:04:05Z"])
    func malformed(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    @Test func writtenInUTCWithMicrosecondsAndReadBack() throws {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_736_935_445.123456)) == "2025-01-15T10:04:05.123456Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1.5)) == "1969-12-31T23:59:58.500000Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 0.9999996)) == "1970-01-01T00:00:01.000000Z")
        for seconds in [0.0, 951_782_400.25, 1_736_935_445.999999, 4_102_444_800.5] {
            let date = Date(timeIntervalSince1970: seconds)
            let back = try #require(RFC3339.parse(RFC3339.format(date)))
            #expect(abs(back.timeIntervalSince(date)) < 1e-6, "\(seconds)")
        }
    }

    @Test func engineEventTimesKeepAllNineDigits() throws {
        #expect(RFC3339.format(nanosecondsSinceEpoch: 1_733_270_400_000_000_007) == "2024-12-04T00:00:00.000000007Z")
        #expect(RFC3339.format(nanosecondsSinceEpoch: 0) == "1970-01-01T00:00:00.000000000Z")
        #expect(RFC3339.format(nanosecondsSinceEpoch: -1) == "1969-12-31T23:59:59.999999999Z")
        let parsed = try #require(RFC3339.parse(RFC3339.format(nanosecondsSinceEpoch: 1_733_270_400_123_456_789)))
        #expect(abs(parsed.timeIntervalSince1970 - 1_733_270_400.123456789) < 1e-6)
    }
}
