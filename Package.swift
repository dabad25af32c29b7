// swift-tools-version: 6.1
import PackageDescription

// Dependencies point one way: executables → kits → engines → adapters → core (docs/architecture.md).
let package = Package(
    name: "WarehouseSync",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "whsync", targets: ["whsync"]),
        .executable(name: "wms-simulator", targets: ["wms-simulator"]),
        .library(name: "WarehouseSyncSimulation", targets: ["WarehouseSyncSimulation"]),
        .library(name: "WarehouseSyncCore", targets: ["WarehouseSyncCore"]),
        .library(name: "AMQPClient", targets: ["AMQPClient"]),
        .library(name: "WarehouseSyncSQLite", targets: ["WarehouseSyncSQLite"]),
        .executable(name: "reference-erp", targets: ["reference-erp"]),
        .executable(name: "inventory-worker", targets: ["inventory-worker"]),
        .executable(name: "shipment-worker", targets: ["shipment-worker"]),
        .executable(name: "receipt-worker", targets: ["receipt-worker"]),
        .executable(name: "replay-worker", targets: ["replay-worker"]),
        .executable(name: "wms-gateway", targets: ["wms-gateway"]),
        // For WMS adapters written in Swift: typed events, validation, confirmed publishing.
        .library(name: "WarehouseSyncPublisher", targets: ["WarehouseSyncPublisher"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Already built for postgres-nio; fingerprints' SHA-256, the gateway's HMAC-SHA256.
        .package(url: "https://github.com/apple/swift-crypto", "3.9.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        // The dead-letter console's server-rendered pages (docs/console.md).
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // W3C trace context from the WMS to the ERP (docs/tracing.md): the API (with
        // ServiceContext) everywhere, already in the graph through Hummingbird; the parser of
        // traceparent and tracestate.
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
        .package(url: "https://github.com/swift-otel/swift-w3c-trace-context", from: "1.0.0"),
        // The OTLP exporter, in the process kit only, and only its OTLP/HTTP trait: the gRPC
        // exporter's packages are not built.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // SQLite 3 (Debian's libsqlite3-dev), plus a shim for the SQLITE_TRANSIENT cast macro.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // Names OS threads so that profiles tell the connection and database threads apart.
        .target(name: "ThreadNaming"),
        // Tells glibc's allocator to keep freed memory in its arenas (the long-running processes).
        .target(name: "ProcessMemory", dependencies: ["CMalloc"]),
        .systemLibrary(name: "CMalloc"),
        // One SQLite connection on its own thread, async read/write, migrations.
        .target(
            name: "WarehouseSyncSQLite",
            dependencies: [
                "CSQLite",
                "ThreadNaming",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The reference ERP (DESIGN section 3): HTTP API, SQLite ledger, fault injection.
        .target(
            name: "ReferenceERP",
            dependencies: [
                "WarehouseSyncCore",
                "WarehouseSyncLogging",
                "WarehouseSyncSQLite",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "reference-erp",
            dependencies: [
                "ReferenceERP",
                "ProcessMemory",
                "WarehouseSyncLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "WarehouseSyncSQLiteTests",
            dependencies: ["WarehouseSyncTesting", "WarehouseSyncSQLite"]
        ),
        .testTarget(
            name: "ReferenceERPTests",
            dependencies: ["WarehouseSyncTesting", 
                "ReferenceERP",
                "WarehouseSyncCore",
                "WarehouseSyncSQLite",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        // librabbitmq-c 0.11 (Debian bookworm) and 0.12+ header layouts, plus a shim for the
        // variadic amqp_login that Swift cannot call.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The domain: events, validation, topology model. Standard library and Foundation, and
        // swift-crypto for the SHA-256 of fingerprints (computation, no I/O).
        .target(
            name: "WarehouseSyncCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // AMQP 0-9-1 over librabbitmq-c, one thread per connection, async API.
        .target(
            name: "AMQPClient",
            dependencies: [
                "CRabbitMQ",
                "ThreadNaming",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Settings from the environment (flags override them by name): every bad setting named
        // at once, in one line each. Below the engines, whose configuration structs it reads.
        .target(
            name: "WarehouseSyncSettings",
            dependencies: [
                "WarehouseSyncCore",
                "AMQPClient",
                "WarehouseSyncLogging",
                // SecretToken: a secret file's token kept as its SHA-256, compared in constant time.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The operations endpoint every long-running process serves: /healthz, /readyz, /metrics.
        .target(
            name: "WarehouseSyncOps",
            dependencies: [
                "WarehouseSyncCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The worker engine (docs/worker.md, docs/replay.md): the pipeline of the stream workers,
        // the replay worker, dead-letter intake and replay. Metrics through swift-metrics only.
        .target(
            name: "WarehouseSyncWorker",
            dependencies: [
                "WarehouseSyncCore",
                "AMQPClient",
                "WarehouseSyncERP",
                "WarehouseSyncLogging",
                "WarehouseSyncStore",
                "WarehouseSyncPublisher",
                "WarehouseSyncSettings",
                "WarehouseSyncTracing",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The HTTP ingress for WMS products that cannot speak AMQP (docs/gateway.md).
        .target(
            name: "WarehouseSyncGateway",
            dependencies: [
                "WarehouseSyncCore",
                "AMQPClient",
                "WarehouseSyncLogging",
                "WarehouseSyncPublisher",
                "WarehouseSyncSettings",
                "WarehouseSyncOps",
                "WarehouseSyncTracing",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                // Its own /metrics, served beside its routes.
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The dead-letter console (docs/console.md): web pages the replay worker serves over the
        // dead-letter store and the replayer, rendered with Mustache templates.
        .target(
            name: "WarehouseSyncConsole",
            dependencies: [
                "WarehouseSyncCore",
                "WarehouseSyncStore",
                "WarehouseSyncWorker",
                "WarehouseSyncSettings",
                "WarehouseSyncOps",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What the operator CLI does beyond the engines: topology deploy and verify, broker users,
        // the management API, publishing event files.
        .target(
            name: "WarehouseSyncOperations",
            dependencies: [
                "WarehouseSyncCore",
                "AMQPClient",
                "WarehouseSyncPublisher",
                "WarehouseSyncSettings",
                // The management API client, on the same HTTP stack as the ERP client.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The process kit: launchers (configuration from flags over environment, logging, the
        // store, the connections, one ServiceGroup), the executables' options. Executables are
        // thin mains over it.
        .target(
            name: "WarehouseSyncProcessKit",
            dependencies: [
                "WarehouseSyncCore",
                "ProcessMemory",
                "AMQPClient",
                "WarehouseSyncERP",
                "WarehouseSyncLogging",
                "WarehouseSyncStore",
                "WarehouseSyncSQLiteStore",
                "WarehouseSyncPostgres",
                "WarehouseSyncPublisher",
                "WarehouseSyncSettings",
                "WarehouseSyncOps",
                "WarehouseSyncWorker",
                "WarehouseSyncGateway",
                "WarehouseSyncConsole",
                "WarehouseSyncTracing",
                // The OTLP exporter, bootstrapped when OTEL_EXPORTER_OTLP_ENDPOINT is set.
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The publisher library (docs/gateway.md): what whsync publish, the gateway and a Swift
        // WMS adapter publish events with. Core (re-exported), the AMQP client, the tracing API.
        .target(
            name: "WarehouseSyncPublisher",
            dependencies: [
                "WarehouseSyncCore",
                "AMQPClient",
                // The W3C trace context of the caller's span on each message (docs/tracing.md).
                "WarehouseSyncTracing",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTP ingress for WMS products that cannot speak AMQP: thin main over GatewayLauncher.
        .executableTarget(
            name: "wms-gateway",
            dependencies: ["WarehouseSyncProcessKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The three workers (DESIGN §1): thin mains over WorkerLauncher.
        .executableTarget(
            name: "inventory-worker",
            dependencies: ["WarehouseSyncProcessKit", "WarehouseSyncCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "shipment-worker",
            dependencies: ["WarehouseSyncProcessKit", "WarehouseSyncCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "receipt-worker",
            dependencies: ["WarehouseSyncProcessKit", "WarehouseSyncCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The replay worker (DESIGN §1, §6): thin main over ReplayWorkerLauncher.
        .executableTarget(
            name: "replay-worker",
            dependencies: ["WarehouseSyncProcessKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The log handler and metadata keys shared by every executable (text or JSON lines to
        // stderr). Its own target so the reference ERP uses it without the runtime's adapters.
        .target(
            name: "WarehouseSyncLogging",
            dependencies: [
                "WarehouseSyncCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // W3C trace context (docs/tracing.md): traceparent/tracestate in AMQP and HTTP headers,
        // the incoming context forwarded as-is when no tracer records. The tracing API only.
        .target(
            name: "WarehouseSyncTracing",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "W3CTraceContext", package: "swift-w3c-trace-context"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "WarehouseSyncProcessKitTests",
            dependencies: ["WarehouseSyncTesting", 
                "WarehouseSyncProcessKit",
                "ProcessMemory",
                "WarehouseSyncConsole",
                "WarehouseSyncSettings",
                "WarehouseSyncOps",
                "WarehouseSyncWorker",
                "WarehouseSyncGateway",
                "WarehouseSyncOperations",
                "WarehouseSyncPublisher",
                "WarehouseSyncLogging",
                "WarehouseSyncERP",
                "WarehouseSyncStore",
                "WarehouseSyncSQLiteStore",
                "WarehouseSyncStoreConformance",
                "AMQPClient",
                "WarehouseSyncTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "whsync",
            dependencies: [
                "WarehouseSyncProcessKit",
                "WarehouseSyncOperations",
                "WarehouseSyncWorker",
                "WarehouseSyncSettings",
                "WarehouseSyncStore",
                "AMQPClient",
                "WarehouseSyncCore",
                "WarehouseSyncERP",
                "WarehouseSyncPublisher",
                "WarehouseSyncTracing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "amqp-bench",
            dependencies: ["AMQPClient"],
            path: "bench/Sources/amqp-bench"
        ),
        // bench/held-key: a decision's cost on a key holding many events, on a real store.
        .executableTarget(
            name: "held-key",
            dependencies: [
                "WarehouseSyncCore", "WarehouseSyncStore", "WarehouseSyncProcessKit",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/Sources/held-key"
        ),
        // bench/store-rounds: events/s through the store, one call per decision or in rounds.
        .executableTarget(
            name: "store-rounds",
            dependencies: [
                "WarehouseSyncCore", "WarehouseSyncStore", "WarehouseSyncProcessKit",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "bench/Sources/store-rounds"
        ),
        // Load generator and raw drain for bench/e2e-throughput (publish backlog/paced, drain).
        .executableTarget(
            name: "e2e-publisher",
            dependencies: ["AMQPClient", .product(name: "Logging", package: "swift-log")],
            path: "bench/Sources/e2e-publisher"
        ),
        // Load generator for bench/gateway-load: concurrent clients posting batches to wms-gateway.
        .executableTarget(
            name: "gateway-load",
            dependencies: [
                "WarehouseSyncCore",
                "WarehouseSyncGateway",
                "WarehouseSyncSettings",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "bench/Sources/gateway-load"
        ),
        // bench/http-floor: one posting's HTTP exchange with no work behind it, per server stack.
        .executableTarget(
            name: "http-floor",
            dependencies: [
                "AMQPClient",
                "ProcessMemory",
                "WarehouseSyncWorker",
                "WarehouseSyncCore",
                "WarehouseSyncERP",
                "WarehouseSyncSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "bench/Sources/http-floor"
        ),
        .testTarget(
            name: "WarehouseSyncCoreTests",
            dependencies: ["WarehouseSyncSettings", "WarehouseSyncOperations", "WarehouseSyncTesting", 
                "WarehouseSyncCore",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(name: "AMQPClientTests", dependencies: ["WarehouseSyncTesting", "AMQPClient"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["WarehouseSyncTesting", 
                "WarehouseSyncProcessKit", "WarehouseSyncWorker", "WarehouseSyncGateway", "WarehouseSyncOperations",
                "WarehouseSyncSettings", "AMQPClient", "WarehouseSyncCore", "WarehouseSyncSimulation", "WarehouseSyncStore",
                "WarehouseSyncPublisher", "WarehouseSyncSQLite", "WarehouseSyncSQLiteStore", "WarehouseSyncERP", "WarehouseSyncStoreConformance",
                "WarehouseSyncConsole", "WarehouseSyncTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // Deterministic WMS event simulator for the demo, integration tests and benchmarks.
        .target(name: "WarehouseSyncSimulation", dependencies: ["WarehouseSyncCore"]),
        .executableTarget(
            name: "wms-simulator",
            dependencies: [
                "WarehouseSyncSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "WarehouseSyncSimulationTests",
            dependencies: ["WarehouseSyncTesting", "WarehouseSyncSimulation", "WarehouseSyncCore"]
        ),
        // Shared test support (used by the test targets, not by products): the servers
        // ./scripts/test starts, temp dirs, the repository's files, the in-process reference ERP.
        .target(
            name: "WarehouseSyncTesting",
            dependencies: [
                "ReferenceERP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The worker store's port (docs/store.md): the protocol, its types, the rules every
        // implementation shares. No database in it: the adapters are its siblings.
        .target(
            name: "WarehouseSyncStore",
            dependencies: ["WarehouseSyncCore"]
        ),
        // The SQLite worker store: one machine, one file shared by its processes.
        .target(
            name: "WarehouseSyncSQLiteStore",
            dependencies: [
                "WarehouseSyncStore",
                "WarehouseSyncCore",
                "WarehouseSyncSQLite",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The store conformance suite every WorkerStore passes (STYLE habit 4); uses Testing.
        .target(
            name: "WarehouseSyncStoreConformance",
            dependencies: ["WarehouseSyncStore", "WarehouseSyncCore"]
        ),
        .testTarget(
            name: "WarehouseSyncStoreTests",
            dependencies: ["WarehouseSyncTesting", 
                "WarehouseSyncStore", "WarehouseSyncSQLiteStore", "WarehouseSyncStoreConformance", "WarehouseSyncCore",
                "WarehouseSyncSQLite",
            ]
        ),
        // The PostgreSQL worker store (docs/store.md "PostgreSQL"): postgres-nio's PostgresClient pool.
        .target(
            name: "WarehouseSyncPostgres",
            dependencies: [
                "WarehouseSyncStore",
                "WarehouseSyncCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Needs WHSYNC_TEST_POSTGRES_URL (scripts/test starts a throwaway server); fails without it.
        .testTarget(
            name: "WarehouseSyncPostgresTests",
            dependencies: ["WarehouseSyncTesting", 
                "WarehouseSyncPostgres",
                "WarehouseSyncStore",
                "WarehouseSyncStoreConformance",
                "WarehouseSyncCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The ERP client adapter (docs/erp-client.md): posts PostingDocuments over HTTP, classifies answers.
        .target(
            name: "WarehouseSyncERP",
            dependencies: [
                "WarehouseSyncCore",
                "WarehouseSyncTracing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                // Timeouts and deadlines are NIO types in AsyncHTTPClient's API.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "WarehouseSyncERPTests",
            dependencies: ["WarehouseSyncTesting", 
                "WarehouseSyncERP",
                "WarehouseSyncCore",
                "ReferenceERP",
                "WarehouseSyncTracing",
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
