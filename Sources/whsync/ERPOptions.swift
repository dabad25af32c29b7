import ArgumentParser
import Foundation
import WarehouseSyncERP

/// Options of the commands that talk to the ERP (`status`, `reconcile`): the workers' own
/// adapter (`ERP_KIND`), URL and credentials, so that an operator sees what the workers see.
struct ERPOptions: ParsableArguments {
    @Option(name: .customLong("erp-base-url"), help: "The ERP's base URL. Default: $ERP_BASE_URL")
    var erpBaseURL: String?
    @Option(
        name: .customLong("erp-token-file"),
        help: "File with the ERP's bearer token, sent as the workers send it. Default: $ERP_TOKEN_FILE")
    var erpTokenFile: String?
    @Option(name: .customLong("erp-kind"), help: "The ERP adapter: http or tryton. Default: $ERP_KIND, else http")
    var erpKind: String?
    @Option(name: .customLong("erp-user"), help: "The Tryton user (--erp-kind tryton). Default: $ERP_USER")
    var erpUser: String?
    @Option(
        name: .customLong("erp-password-file"),
        help: "File with the Tryton user's password (--erp-kind tryton). Default: $ERP_PASSWORD_FILE")
    var erpPasswordFile: String?

    var url: String? { erpBaseURL ?? environmentValue("ERP_BASE_URL") }

    /// Runs `body` with a client for the ERP (requests time out after `timeout`) and shuts it
    /// down afterwards. The flags override the environment the workers read
    /// (``ERPClientConfiguration/init(environment:)``), so a URL or token file they would refuse
    /// is an error naming it.
    func withClient<T>(timeout: Duration, _ body: (any ERPAdapter) async throws -> T) async throws -> T {
        var environment = ProcessInfo.processInfo.environment
        if let erpBaseURL { environment["ERP_BASE_URL"] = erpBaseURL }
        if let erpTokenFile { environment["ERP_TOKEN_FILE"] = erpTokenFile }
        if let erpKind { environment["ERP_KIND"] = erpKind }
        if let erpUser { environment["ERP_USER"] = erpUser }
        if let erpPasswordFile { environment["ERP_PASSWORD_FILE"] = erpPasswordFile }
        guard let kind = ERPKind(setting: environment["ERP_KIND"]) else {
            throw ValidationError("ERP_KIND: expected http or tryton (or pass --erp-kind)")
        }
        if kind == .tryton {
            var tryton: TrytonConfiguration
            do throws(ERPClientConfigurationError) {
                tryton = try TrytonConfiguration(environment: environment)
            } catch {
                throw ValidationError("\(error) (or pass --erp-base-url, --erp-user, --erp-password-file)")
            }
            tryton.http.connectTimeout = timeout
            tryton.http.requestTimeout = timeout
            tryton.http.healthTimeout = timeout
            let client: any ERPAdapter = TrytonERPClient(configuration: tryton, logger: try commandLogger(level: nil))
            return try await using(client, close: { try? await $0.shutdown() }, body)
        }
        var configuration: ERPClientConfiguration
        do throws(ERPClientConfigurationError) {
            configuration = try ERPClientConfiguration(environment: environment)
        } catch {
            throw ValidationError("\(error) (or pass --erp-base-url, --erp-token-file)")
        }
        configuration.connectTimeout = timeout
        configuration.requestTimeout = timeout
        configuration.healthTimeout = timeout
        let client: any ERPAdapter = HTTPERPClient(configuration: configuration, logger: try commandLogger(level: nil))
        return try await using(client, close: { try? await $0.shutdown() }, body)
    }
}
