extension Validation {
    public static let maxUserLength = 256

    /// `user`, `uid`, `user:group` or `uid:gid` as the engines take it: each part non-empty,
    /// at most one `:`, no whitespace, control characters or NUL.
    public static func user(_ user: String, field: String = "user") throws(ValidationError) {
        let bytes = Array(user.utf8)
        guard !bytes.isEmpty else {
            throw ValidationError(field: field, message: "user must not be empty; omit it for the image's default user")
        }
        guard bytes.count <= maxUserLength else {
            throw ValidationError(
                field: field, message: "user is \(bytes.count) bytes long; at most \(maxUserLength) are allowed")
        }
        if let byte = bytes.first(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw ValidationError(
                field: field,
                message: "user contains byte 0x\(String(byte, radix: 16)); whitespace and control characters are not allowed")
        }
        let parts = user.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError(
                field: field, message: "user must be \"user\", \"uid\", \"user:group\" or \"uid:gid\", not \"\(user)\"")
        }
    }
}
