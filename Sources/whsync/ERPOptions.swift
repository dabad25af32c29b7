import ArgumentParser
import Foundation
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

    var url: String? { erpBaseURL ?? environmentValue("ERP_BASE_URL") }

    /// Runs `body` with a client for the ERP (requests time out after `timeout`) and shuts it
    /// down afterwards. A URL or token file the workers would refuse is an error naming it.
    func withClient<T>(timeout: Duration, _ body: (HTTPERPClient) async throws -> T) async throws -> T {
        guard let url else { throw ValidationError("ERP_BASE_URL: not set (pass --erp-base-url http://host:port)") }
        let configuration: ERPClientConfiguration
        do throws(ERPClientConfigurationError) {
            configuration = try ERPClientConfiguration(
                baseURL: url, token: (erpTokenFile ?? environmentValue("ERP_TOKEN_FILE")).map(ERPClientConfiguration.readToken),
                connectTimeout: timeout, requestTimeout: timeout, healthTimeout: timeout)
        } catch {
            throw ValidationError("\(error)")
        }
        let client = HTTPERPClient(configuration: configuration, logger: try commandLogger(level: nil))
        return try await using(client, close: { try? await $0.shutdown() }, body)
    }
}
