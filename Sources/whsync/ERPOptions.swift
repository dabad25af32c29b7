import ArgumentParser
import Foundation
import Logging
import WarehouseSyncERP

/// Options of the commands that talk to the ERP (`status`, `reconcile`): the workers' own
/// client, URL and token, so that an operator sees what the workers see.
struct ERPOptions: ParsableArguments {
    @Option(name: .customLong("erp-base-url"), help: "The ERP's base URL. Default: $ERP_BASE_URL")
    var erpBaseURL: String?
    @Option(
        name: .customLong("erp-token-file"),
        help: "File with the ERP's bearer token, sent as the workers send it. Default: $ERP_TOKEN_FILE")
    var erpTokenFile: String?

    var url: String? { erpBaseURL ?? Self.environment("ERP_BASE_URL") }

    /// Runs `body` with a client for the ERP (requests time out after `timeout`) and shuts it
    /// down afterwards. A URL or token file the workers would refuse is an error naming it.
    func withClient<T>(timeout: Duration, _ body: (HTTPERPClient) async throws -> T) async throws -> T {
        guard let url else { throw ValidationError("ERP_BASE_URL: not set (pass --erp-base-url http://host:port)") }
        let configuration: ERPClientConfiguration
        do throws(ERPClientConfigurationError) {
            configuration = try ERPClientConfiguration(
                baseURL: url, token: (erpTokenFile ?? Self.environment("ERP_TOKEN_FILE")).map(ERPClientConfiguration.readToken),
                connectTimeout: timeout, requestTimeout: timeout, healthTimeout: timeout)
        } catch {
            throw ValidationError("\(error)")
        }
        var logger = Logger(label: "whsync.erp-client") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .warning
        let client = HTTPERPClient(configuration: configuration, logger: logger)
        do {
            let result = try await body(client)
            try? await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }
}
