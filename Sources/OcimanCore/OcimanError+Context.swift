import PulledStreams
import Dispatch
import Glibc
import Synchronization

extension OcimanError {
    /// Filesystem and tar failures of build contexts, by who can fix them.
    init(contextError error: any Error) {
        switch error {
        case let error as OcimanError:
            self = error
        case let error as TarError:
            self = .invalid(field: "body", message: "refused build-context tar: \(error)")
        case let error as ContentHashError:
            switch error.kind {
            case .notFound, .notADirectory:
                self = .invalid(field: "context.path", message: error.description)
            case .unreadable where error.errno == EACCES || error.errno == EPERM:
                self = .forbidden(error.description)
            case .unreadable:
                self = .invalid(field: "context.path", message: error.description)
            case .changedDuringHashing:
                self = .conflict(error.description)
            case .spoolFailed:
                self = .unavailable(error.description)
            }
        default:
            self = .engineFailure("\(error)")
        }
    }
}

extension String {
    var trimmingWhitespace: String {
        var text = Substring(self)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        return String(text)
    }
}
