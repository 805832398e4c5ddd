import Foundation

/// One decoder and encoder for engine payloads; both engines use Go's field names as given.
enum EngineJSON {
    static let decoder = JSONDecoder()
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}

extension EngineRequest {
    /// The Engine API's `filters` query parameter (a JSON map of lists); nil when there are none.
    static func filtersParameter(_ filters: [String: [String]]) throws -> (String, String)? {
        guard !filters.isEmpty else { return nil }
        return ("filters", String(decoding: try EngineJSON.encoder.encode(filters), as: UTF8.self))
    }
}
