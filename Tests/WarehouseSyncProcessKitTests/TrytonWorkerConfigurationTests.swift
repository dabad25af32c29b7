import Foundation
import Testing
import WarehouseSyncERP
import WarehouseSyncProcessKit
import WarehouseSyncSettings

/// `ERP_KIND` and the Tryton settings beside the workers' others (DESIGN §9).
@Suite struct TrytonWorkerConfigurationTests {
    private let base: [String: String] = [
        "AMQP_URL": "amqp://whsync:x@broker:5672/%2F", "STORE_URL": "sqlite:/var/lib/whsync/worker.db",
        "ERP_BASE_URL": "http://tryton:8000/erp/",
    ]

    private func problems(_ changes: [String: String]) -> [String] {
        do {
            _ = try WorkerConfiguration(environment: base.merging(changes) { _, new in new })
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test func withoutERPKindTheHTTPAdapterIsUsed() throws {
        let configuration = try WorkerConfiguration(environment: base)
        #expect(configuration.tryton == nil)
    }

    @Test func trytonReadsUserPasswordFileAndDatabase() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tryton-pw-\(UUID().uuidString.prefix(8))")
        try Data("s3cret-pw\n".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try WorkerConfiguration(environment: base.merging([
            "ERP_KIND": "tryton", "ERP_USER": "whsync", "ERP_PASSWORD_FILE": file.path,
        ]) { _, new in new })
        let tryton = try #require(configuration.tryton)
        #expect(tryton.user == "whsync")
        #expect(tryton.database == "erp")
        #expect(tryton.http.baseURL == "http://tryton:8000/erp")
        #expect("\(tryton.password)" == "<redacted>")
        #expect(configuration.description.hasSuffix("erpKind=tryton erpUser=whsync"))
        #expect(!configuration.description.contains("s3cret"))
    }

    @Test func eachMissingOrBadTrytonSettingIsNamed() {
        #expect(problems(["ERP_KIND": "odoo"]).contains { $0.hasPrefix("ERP_KIND: expected one of http, tryton") })
        let missing = problems(["ERP_KIND": "tryton"])
        #expect(missing.contains { $0.hasPrefix("ERP_USER: not set") }, "\(missing)")
        #expect(missing.contains { $0.hasPrefix("ERP_PASSWORD_FILE: not set") }, "\(missing)")
        let unreadable = problems(["ERP_KIND": "tryton", "ERP_USER": "u", "ERP_PASSWORD_FILE": "/nonexistent/pw"])
        #expect(unreadable == ["ERP_PASSWORD_FILE: cannot read '/nonexistent/pw'"])
    }

    @Test func theURLMustNameTheDatabase() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tryton-pw-\(UUID().uuidString.prefix(8))")
        try Data("pw".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let found = problems([
            "ERP_KIND": "tryton", "ERP_USER": "u", "ERP_PASSWORD_FILE": file.path, "ERP_BASE_URL": "http://tryton:8000/",
        ])
        #expect(found == ["ERP_BASE_URL: with ERP_KIND=tryton it must name the database: http://host:8000/<database>/"])
    }
}
