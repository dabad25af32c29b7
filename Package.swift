// swift-tools-version: 6.1
import PackageDescription

// Dependencies point one way: executables → runtime → adapters → core.
let package = Package(
    name: "WarehouseSync",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "whsync", targets: ["whsync"]),
        .library(name: "WarehouseSyncCore", targets: ["WarehouseSyncCore"]),
        .library(name: "AMQPClient", targets: ["AMQPClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // librabbitmq-c 0.11 (Debian bookworm) and 0.12+ header layouts, plus a shim for the
        // variadic amqp_login that Swift cannot call.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The domain: events, validation, topology model. Standard library and Foundation only.
        .target(name: "WarehouseSyncCore"),
        // AMQP 0-9-1 over librabbitmq-c, one thread per connection, async API.
        .target(
            name: "AMQPClient",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Wiring shared by the executables: topology apply/verify/export, event publishing.
        .target(
            name: "WarehouseSyncRuntime",
            dependencies: [
                "WarehouseSyncCore",
                "AMQPClient",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "whsync",
            dependencies: [
                "WarehouseSyncRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "amqp-bench",
            dependencies: ["AMQPClient"],
            path: "bench/Sources/amqp-bench"
        ),
        .testTarget(
            name: "WarehouseSyncCoreTests",
            dependencies: [
                "WarehouseSyncCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "AMQPClientTests", dependencies: ["AMQPClient"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["WarehouseSyncRuntime", "AMQPClient", "WarehouseSyncCore"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
