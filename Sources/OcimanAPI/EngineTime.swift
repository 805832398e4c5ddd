import Foundation
import OcimanCore
import RFC3339

/// The engines' time strings as the contract's `date-time`. An engine that sends something
/// else is failing (502), not the client; an optional time it garbles is left out.
enum EngineTime {
    static func required(_ text: String, _ what: String) throws(OcimanError) -> Date {
        guard let date = RFC3339.parse(text) else {
            throw .engineFailure("the engine reported \(what) as \"\(text)\", which is not an RFC 3339 time")
        }
        return date
    }

    static func optional(_ text: String?) -> Date? { text.flatMap(RFC3339.parse) }
}
