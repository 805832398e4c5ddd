// swift-tools-version:6.1
import PackageDescription

// One target per layer: transport (libmicrohttpd) → API handlers (generated from openapi.yaml)
// → runtime core (backend-neutral) → engine driver (Engine API over unix sockets, SwiftNIO).
let package = Package(
    name: "ociman",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ocimand", targets: ["ocimand"]),
        // The command-line client, on OcimanClient.
        .executable(name: "ociman", targets: ["ociman"]),
        // A Swift client for ocimand, generated from the same openapi.yaml.
        .library(name: "OcimanClient", targets: ["OcimanClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libmicrohttpd plus a few C functions for what Swift cannot call (variadic start, cast macros).
        .target(
            name: "CMicroHTTPD",
            linkerSettings: [.linkedLibrary("microhttpd")]
        ),
        // OpenSSL's libcrypto for SHA-256 (SHA-NI through EVP).
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Linux: setns(2) and the socket-diagnostics netlink structures (readiness probes).
        .systemLibrary(name: "CLinux"),
        // What a handler sees of a WebSocket the transport accepted (no sockets, no frames).
        .target(name: "WebSockets"),
        .target(
            name: "MHDTransport",
            dependencies: [
                "CMicroHTTPD",
                "CCrypto",
                "WebSockets",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // Pull-based stream translation, shared by every layer a stream crosses.
        .target(name: "PulledStreams"),
        .target(
            name: "EngineDriver",
            dependencies: [
                "PulledStreams",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Backend-neutral: drives any `ContainerEngine`, knows no engine's wire format.
        .target(
            name: "OcimanCore",
            dependencies: [
                "PulledStreams",
                "CCrypto",
                "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // The Docker and Podman adapters (the core's `ContainerEngine` over the engine driver)
        // and the startup choice between them (SPEC §3).
        .target(
            name: "EngineAdapters",
            dependencies: [
                "OcimanCore", "EngineDriver", "PulledStreams", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The contract's `date-time` (RFC 3339), read and written the same way by server and client.
        .target(name: "RFC3339", dependencies: [.product(name: "OpenAPIRuntime", package: "swift-openapi-runtime")]),
        // Client of the contract (swift-openapi-generator in client mode) over the driver's HTTP/1.1
        // client: TCP or a unix socket, streams as typed events.
        .target(
            name: "OcimanClient",
            dependencies: [
                "EngineDriver",
                "PulledStreams",
                "RFC3339",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        // `ociman`: docker-like commands over OcimanClient; `-it` puts the terminal in raw mode.
        .executableTarget(
            name: "ociman",
            dependencies: [
                "OcimanClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "OcimanAPI",
            dependencies: [
                "OcimanCore",
                "WebSockets",
                "PulledStreams",
                "RFC3339",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            plugins: [
                .plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator"),
                .plugin(name: "EmbedContract"),
            ]
        ),
        .executableTarget(
            name: "ocimand",
            dependencies: [
                "OcimanAPI",
                "MHDTransport",
                "OcimanCore",
                "EngineAdapters",
                "EngineDriver",
                "RFC3339",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "EmbedContractTool", path: "Plugins/EmbedContractTool"),
        .plugin(name: "EmbedContract", capability: .buildTool(), dependencies: ["EmbedContractTool"]),
        // Shared by every suite: starts ocimand, talks HTTP to it, labels and cleans up engine resources.
        .target(
            name: "OcimanTestSupport",
            dependencies: [
                "EngineDriver",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tests/OcimanTestSupport"
        ),
        // A `ContainerEngine` in memory, for in-process tests of the runtime and the handlers.
        .target(name: "InMemoryEngine", dependencies: ["OcimanCore"], path: "Tests/InMemoryEngine"),
        .testTarget(
            name: "OcimanCoreTests",
            dependencies: ["OcimanCore", "InMemoryEngine", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "OcimanAPITests",
            dependencies: [
                "OcimanAPI", "InMemoryEngine", "RFC3339", .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ]
        ),
        .testTarget(
            name: "EngineAdaptersTests",
            dependencies: [
                "EngineAdapters", "EngineDriver", "OcimanCore",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "MHDTransportTests", dependencies: ["MHDTransport", "OcimanTestSupport"]),
        .testTarget(name: "EngineDriverTests", dependencies: ["EngineDriver", "OcimanTestSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "OcimanTestSupport", "OcimanCore", "EngineAdapters", "EngineDriver", "OcimanClient",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
            ]
        ),
    ]
)
