import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ReferenceERP

/// The reference ERP run inside the test process on a free loopback port, over a ledger of its
/// own: what the ERP client's and the reference ERP's own tests post to.
public enum InProcessERP {
    /// The repository's seed as master data.
    public static let seedMasterData: MasterData = {
        do {
            return try MasterData(contentsOfFile: TestRepository.seedFile)
        } catch {
            fatalError("cannot load \(TestRepository.seedFile): \(error)")
        }
    }()

    /// A configuration on 127.0.0.1, a free port, the ledger at `databasePath`, the seed's
    /// master data unless given.
    public static func configuration(
        databasePath: String, masterData: MasterData = seedMasterData, token: String? = nil,
        faults: FaultSettings = FaultSettings(), strictStock: Bool = false
    ) -> ReferenceERPConfiguration {
        ReferenceERPConfiguration(
            host: "127.0.0.1", port: 0, databasePath: databasePath, masterData: masterData,
            token: token.flatMap(BearerToken.init), faults: faults, strictStock: strictStock)
    }

    /// Starts an ERP with `configuration`, runs `body` with a Hummingbird test client for it
    /// (`.live`: real HTTP on its port), then stops it, closing its ledger.
    public static func with<T: Sendable>(
        _ configuration: ReferenceERPConfiguration, setup: TestingSetup = .live,
        _ body: @Sendable (any TestClientProtocol) async throws -> T
    ) async throws -> T {
        var logger = Logger(label: "reference-erp-test")
        logger.logLevel = .warning
        let server = try await ReferenceERPServer.start(configuration: configuration, logger: logger)
        return try await server.application().test(setup) { client in try await body(client) }
    }
}
