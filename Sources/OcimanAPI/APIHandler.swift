import Foundation
import Logging
import OcimanCore
import OpenAPIRuntime

/// Implements the generated `APIProtocol`: decodes nothing and touches no socket itself; each
/// operation turns generated input into a runtime call and the result into generated output.
/// Operations live in one extension per resource (`Handlers+*.swift`).
public struct APIHandler: APIProtocol {
    let runtime: Runtime
    let pools: PoolManager
    let logger: Logger

    /// `pools` defaults to a manager over the runtime's pool state that was never started.
    public init(runtime: Runtime, pools: PoolManager? = nil, logger: Logger) {
        self.runtime = runtime
        self.pools = pools ?? PoolManager(runtime: runtime, store: runtime.pools, logger: logger)
        self.logger = logger
    }

    /// The contract served at `GET /openapi.yaml`: the same file the server types were generated from.
    public static let openAPIDocument: [UInt8] = Array(embeddedOpenAPIDocument.utf8)
}
