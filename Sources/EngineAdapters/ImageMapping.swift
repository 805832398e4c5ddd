import EngineDriver
import Glibc
import OcimanCore

/// Images between the Engine API's shapes and the runtime's.
enum ImageMapping {
    static func info(_ image: EngineImage) -> ImageInfo {
        ImageInfo(
            id: image.id, references: references(image.repoTags), labels: image.config?.labels ?? [:],
            created: image.created ?? "", size: image.size ?? 0)
    }

    static func info(_ summary: EngineImageSummary) -> ImageInfo {
        ImageInfo(
            id: summary.id, references: references(summary.repoTags), labels: summary.labels ?? [:],
            created: rfc3339(unixSeconds: summary.created ?? 0), size: summary.size ?? 0)
    }

    /// Docker lists an untagged image as `<none>:<none>`.
    static func references(_ tags: [String]?) -> [String] {
        (tags ?? []).filter { $0 != "<none>:<none>" && !$0.hasPrefix("<none>") }
    }

    static func rfc3339(unixSeconds: Int64) -> String {
        var time = time_t(unixSeconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
