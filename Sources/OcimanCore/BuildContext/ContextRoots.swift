import Glibc

// st_mode file types from the Linux ABI; Glibc's S_IF* are macros Swift does not always import.
private let fileTypeMask: mode_t = 0o170000
private let fileTypeDirectory: mode_t = 0o040000


/// The directories a client may name as a build context (SPEC §7). Paths are compared after
/// `realpath`, so a symbolic link inside a root that points elsewhere does not open a way out.
public struct ContextRoots: Sendable {
    public let roots: [String]

    public init(_ roots: [String]) {
        self.roots = roots
    }

    static let howToConfigure =
        "no build-context roots are configured; start ocimand with --context-root DIR (repeatable) or OCIMAN_CONTEXT_ROOTS=DIR1:DIR2"

    /// The real path of `path` when it is a directory inside a root.
    ///
    /// A path that does not resolve is reported as missing (400) only when it lies lexically
    /// inside a root; otherwise it is forbidden (403) like any other outside path, so the
    /// answer does not reveal what exists outside the roots.
    public func resolve(_ path: String, field: String = "context.path") throws(OcimanError) -> String {
        guard !roots.isEmpty else { throw OcimanError.forbidden(Self.howToConfigure) }
        guard path.hasPrefix("/") else {
            throw OcimanError.invalid(field: field, message: "must be an absolute path, got \"\(path)\"")
        }
        let resolvedRoots = roots.compactMap(Self.realPath)
        guard let resolved = Self.realPath(path) else {
            let code = errno
            let lexical = Self.lexicallyNormalized(path)
            let lexicalRoots = roots.map(Self.lexicallyNormalized)
            if (resolvedRoots + lexicalRoots).contains(where: { Self.contains(root: $0, path: lexical) }) {
                throw OcimanError.invalid(
                    field: field, message: "cannot open \"\(path)\": \(String(cString: strerror(code)))")
            }
            throw outside(path)
        }
        guard resolvedRoots.contains(where: { Self.contains(root: $0, path: resolved) }) else {
            throw outside(path)
        }
        var status = stat()
        guard stat(resolved, &status) == 0, status.st_mode & fileTypeMask == fileTypeDirectory else {
            throw OcimanError.invalid(field: field, message: "\"\(path)\" is not a directory")
        }
        return resolved
    }

    private func outside(_ path: String) -> OcimanError {
        .forbidden(
            "build context \"\(path)\" is outside the configured context roots (\(roots.joined(separator: ", ")))")
    }

    static func contains(root: String, path: String) -> Bool {
        if root == "/" { return path.hasPrefix("/") }
        return path == root || path.hasPrefix(root + "/")
    }

    static func realPath(_ path: String) -> String? {
        guard let pointer = realpath(path, nil) else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// `.` and `..` removed without touching the filesystem (for paths that do not exist).
    static func lexicallyNormalized(_ path: String) -> String {
        var components: [Substring] = []
        for component in path.split(separator: "/") {
            if component == "." { continue }
            if component == ".." {
                _ = components.popLast()
            } else {
                components.append(component)
            }
        }
        return "/" + components.joined(separator: "/")
    }
}
