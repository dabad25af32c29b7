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
    /// down afterwards. The flags override the environment the workers read
    /// (``ERPClientConfiguration/init(environment:)``), so a URL or token file they would refuse
    /// is an error naming it.
    func withClient<T>(timeout: Duration, _ body: (HTTPERPClient) async throws -> T) async throws -> T {
        var environment = ProcessInfo.processInfo.environment
        if let erpBaseURL { environment["ERP_BASE_URL"] = erpBaseURL }
        if let erpTokenFile { environment["ERP_TOKEN_FILE"] = erpTokenFile }
        var configuration: ERPClientConfiguration
        do throws(ERPClientConfigurationError) {
            configuration = try ERPClientConfiguration(environment: environment)
        } catch {
            throw ValidationError("\(error) (or pass --erp-base-url, --erp-token-file)")
        }
        configuration.connectTimeout = timeout
        configuration.requestTimeout = timeout
        configuration.healthTimeout = timeout
        let client = HTTPERPClient(configuration: configuration, logger: try commandLogger(level: nil))
        return try await using(client, close: { try? await $0.shutdown() }, body)
    }
}
