import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import WarehouseSyncCore

/// The reference ERP: the HTTP API of DESIGN §3 over a SQLite ledger, with fault injection.
///
/// ```swift
/// let server = try await ReferenceERPServer.start(configuration: configuration, logger: logger)
/// let application = server.application()   // a Hummingbird application: run it in a ServiceGroup
/// ```
///
/// The application carries a service that closes the ledger after the HTTP server stopped, so
/// running it (in a `ServiceGroup`, or through HummingbirdTesting) is all there is to do.
public final class ReferenceERPServer: Sendable {
    public let configuration: ReferenceERPConfiguration
    let ledger: Ledger
    let faults: FaultInjector
    let stats: ERPStats
    let logger: Logger

    private init(configuration: ReferenceERPConfiguration, ledger: Ledger, logger: Logger) {
        self.configuration = configuration
        self.ledger = ledger
        self.faults = FaultInjector(settings: configuration.faults)
        self.stats = ERPStats(startedAt: Timestamp(Date(), fractionDigits: 3).text)
        self.logger = logger
    }

    /// Opens the ledger (creating and migrating it when needed). The faults' outage windows
    /// count from here.
    public static func start(configuration: ReferenceERPConfiguration, logger: Logger) async throws -> ReferenceERPServer {
        let ledger = try await Ledger.open(
            path: configuration.databasePath, masterData: configuration.masterData,
            strictStock: configuration.strictStock, logger: logger)
        return ReferenceERPServer(configuration: configuration, ledger: ledger, logger: logger)
    }

    /// Closes the ledger. The application's own service does this when it stops; call it only
    /// for a server whose application never ran.
    public func close() async {
        await ledger.close()
    }

    /// The HTTP application, listening on the configured host and port.
    /// `onServerRunning` receives the bound port (useful with port 0).
    public func application(
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ERPMiddleware(server: self))
        addRoutes(to: router)
        let logger = logger
        let host = configuration.host
        return Application(
            router: router,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port),
                serverName: "reference-erp"),
            services: [LedgerCloser(ledger: ledger)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.notice("reference ERP listening", metadata: ["erp.address": "\(host):\(port)"])
                await onServerRunning(port)
            },
            logger: logger)
    }
}

/// Closes the ledger on graceful shutdown. The application's service group starts it before the
/// HTTP server and stops it after, so no request is still using the ledger.
struct LedgerCloser: Service {
    let ledger: Ledger

    func run() async throws {
        try? await gracefulShutdown()
        await ledger.close()
    }
}
