/// A request field that breaks a rule of SPEC §6. `field` is the JSON path of the
/// offending value (`name`, `labels.org.example.role`, `env.PATH`, ...), so the HTTP
/// layer can put it straight into a problem response.
public struct ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public let field: String
    public let message: String

    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }

    public var description: String { "\(field): \(message)" }
}

/// The ociman library's input rules, so clients get the same answers from the service.
/// All lengths are in UTF-8 bytes. Maps are checked in key-byte order, so the error
/// reported for a request with several problems is deterministic.
public enum Validation {
    public static let maxContainerNameLength = 256
    public static let maxLabelKeyLength = 256
    public static let maxLabelValueLength = 65_536
    public static let maxEnvironmentValueLength = 65_535

    /// 1–256 bytes; first an ASCII letter or digit, then letters, digits, `_`, `.` or `-`.
    public static func containerName(_ name: String, field: String = "name") throws(ValidationError) {
        let bytes = Array(name.utf8)
        guard let first = bytes.first else {
            throw ValidationError(field: field, message: "container name must not be empty")
        }
        guard bytes.count <= maxContainerNameLength else {
            throw ValidationError(
                field: field,
                message: "container name is \(bytes.count) bytes long; at most \(maxContainerNameLength) are allowed")
        }
        guard isASCIIAlphanumeric(first) else {
            throw ValidationError(
                field: field,
                message: "container name must start with an ASCII letter or digit, not \(describe(byte: first))")
        }
        if let index = bytes.firstIndex(where: {
            !(isASCIIAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
                || $0 == UInt8(ascii: "-"))
        }) {
            throw ValidationError(
                field: field,
                message:
                    "container name contains \(describe(byte: bytes[index])) at byte \(index); only ASCII letters, digits, \"_\", \".\" and \"-\" are allowed"
            )
        }
    }

    /// Key: 1–256 bytes without `=`, `,`, ASCII whitespace or control characters
    /// (docker/podman split `--label k=v` on the first `=`). Value: at most 65536 bytes.
    public static func labels(_ labels: [String: String], field: String = "labels") throws(ValidationError) {
        for (key, value) in sortedByKeyBytes(labels) {
            try labelKey(key, field: field)
            try labelValue(value, key: key, field: field)
        }
    }

    public static func labelKey(_ key: String, field: String = "labels") throws(ValidationError) {
        let bytes = Array(key.utf8)
        guard !bytes.isEmpty else {
            throw ValidationError(field: field, message: "label key must not be empty")
        }
        let path = "\(field).\(key)"
        guard bytes.count <= maxLabelKeyLength else {
            throw ValidationError(
                field: path,
                message: "label key is \(bytes.count) bytes long; at most \(maxLabelKeyLength) are allowed")
        }
        if let byte = bytes.first(where: {
            $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: ",") || isASCIIWhitespace($0)
                || isASCIIControl($0)
        }) {
            throw ValidationError(
                field: path,
                message:
                    "label key contains \(describe(byte: byte)); \"=\", \",\", whitespace and control characters are not allowed"
            )
        }
    }

    public static func labelValue(_ value: String, key: String, field: String = "labels")
        throws(ValidationError)
    {
        let length = value.utf8.count
        guard length <= maxLabelValueLength else {
            throw ValidationError(
                field: "\(field).\(key)",
                message: "label value is \(length) bytes long; at most \(maxLabelValueLength) are allowed")
        }
    }

    /// Name non-empty without `=` (or NUL, which no process environment can carry);
    /// value without NUL and at most 65535 bytes; newlines are fine.
    public static func environment(_ environment: [String: String], field: String = "env")
        throws(ValidationError)
    {
        for (name, value) in sortedByKeyBytes(environment) {
            try environmentVariable(name: name, value: value, field: field)
        }
    }

    public static func environmentVariable(name: String, value: String, field: String = "env")
        throws(ValidationError)
    {
        guard !name.isEmpty else {
            throw ValidationError(field: field, message: "environment variable name must not be empty")
        }
        let path = "\(field).\(name)"
        if name.utf8.contains(UInt8(ascii: "=")) {
            throw ValidationError(field: path, message: "environment variable name must not contain \"=\"")
        }
        if name.utf8.contains(0) {
            throw ValidationError(field: path, message: "environment variable name must not contain a NUL byte")
        }
        if value.utf8.contains(0) {
            throw ValidationError(field: path, message: "environment variable value must not contain a NUL byte")
        }
        let length = value.utf8.count
        guard length <= maxEnvironmentValueLength else {
            throw ValidationError(
                field: path,
                message:
                    "environment variable value is \(length) bytes long; at most \(maxEnvironmentValueLength) are allowed")
        }
    }

    /// Keys non-empty without `=`; values are free-form.
    public static func buildArguments(_ arguments: [String: String], field: String = "build_args")
        throws(ValidationError)
    {
        for (key, _) in sortedByKeyBytes(arguments) {
            try buildArgumentKey(key, field: field)
        }
    }

    public static func buildArgumentKey(_ key: String, field: String = "build_args") throws(ValidationError) {
        guard !key.isEmpty else {
            throw ValidationError(field: field, message: "build argument name must not be empty")
        }
        if key.utf8.contains(UInt8(ascii: "=")) {
            throw ValidationError(field: "\(field).\(key)", message: "build argument name must not contain \"=\"")
        }
    }

    /// Parses an image reference, reporting a failure against `field`.
    @discardableResult
    public static func imageReference(_ text: String, field: String) throws(ValidationError) -> ImageReference {
        do {
            return try ImageReference(parsing: text)
        } catch {
            throw ValidationError(field: field, message: error.description)
        }
    }

    // MARK: - Helpers

    private static func sortedByKeyBytes(_ map: [String: String]) -> [(key: String, value: String)] {
        map.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    }

    private static func isASCIIAlphanumeric(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    /// Space, tab, LF, FF, CR: the set Rust's `is_ascii_whitespace` uses.
    private static func isASCIIWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0C || byte == 0x0D
    }

    private static func isASCIIControl(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == 0x7F
    }

    private static func describe(byte: UInt8) -> String {
        switch byte {
        case 0x20: return "a space"
        case 0x21..<0x7F: return "\"\(Character(Unicode.Scalar(byte)))\""
        default:
            let hex = String(byte, radix: 16, uppercase: true)
            return "byte 0x\(hex.count == 1 ? "0" + hex : hex)"
        }
    }
}
