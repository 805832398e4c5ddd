import Foundation
import Logging
import OcimanCore
import OpenAPIRuntime

/// Implements the generated `APIProtocol`: decodes nothing and touches no socket itself; each
/// operation turns generated input into a runtime call and the result into generated output.
/// Operations live in one extension per resource (`Handlers+*.swift`).
public struct APIHandler: APIProtocol {
    let runtime: Runtime
    let logger: Logger

    public init(runtime: Runtime, logger: Logger) {
        self.runtime = runtime
        self.logger = logger
    }

    /// The contract served at `GET /openapi.yaml`: the same file the server types were generated from.
    public static let openAPIDocument: [UInt8] = Array(embeddedOpenAPIDocument.utf8)
}
