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
