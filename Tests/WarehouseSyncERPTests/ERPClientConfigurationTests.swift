import Foundation
import Testing

@testable import WarehouseSyncERP

@Suite("ERPClientConfiguration")
struct ERPClientConfigurationTests {
    @Test("ERP_BASE_URL is required, http or https, with a host; errors name it")
    func baseURL() throws {
        for (value, fragment) in [
            (nil, "not set"), ("", "not set"), ("ftp://erp:21", "scheme 'ftp'"), ("erp:8081", "not http or https"),
            ("http://", "no host"), ("http://erp:8081/?x=1", "query"), ("http://user:pw@erp", "credentials"),
        ] as [(String?, String)] {
            let environment = value.map { ["ERP_BASE_URL": $0] } ?? [:]
            #expect {
                try ERPClientConfiguration(environment: environment)
            } throws: { error in
                let description = "\(error)"
                return description.hasPrefix("ERP_BASE_URL: ") && description.contains(fragment)
                    && !description.contains("\n")
            }
        }
        let configuration = try ERPClientConfiguration(environment: ["ERP_BASE_URL": "https://erp.example/api//"])
        #expect(configuration.baseURL == "https://erp.example/api")
        #expect(configuration.token == nil)
        #expect(configuration.connectTimeout == .seconds(2))
        #expect(configuration.requestTimeout == .seconds(10))
        #expect(configuration.maxConcurrentPosts == 16)
    }

    @Test("ERP_TOKEN_FILE: read and trimmed; missing or empty is an error naming it; never printed")
    func tokenFile() async throws {
        try await withTempFile("\n  abc.DEF-123  \n") { path in
            let configuration = try ERPClientConfiguration(environment: ["ERP_BASE_URL": "http://erp", "ERP_TOKEN_FILE": path])
            #expect(configuration.token?.value == "abc.DEF-123")
            #expect("\(configuration.token!)" == "<redacted>")
            #expect(!"\(configuration)".contains("abc.DEF-123"))
        }
        try await withTempFile("   \n") { path in
            #expect(throws: ERPClientConfigurationError(setting: "ERP_TOKEN_FILE", message: "'\(path)' is empty")) {
                try ERPClientConfiguration(environment: ["ERP_BASE_URL": "http://erp", "ERP_TOKEN_FILE": path])
            }
        }
        try await withTempFile("two tokens") { path in
            #expect {
                try ERPClientConfiguration(environment: ["ERP_BASE_URL": "http://erp", "ERP_TOKEN_FILE": path])
            } throws: { error in
                "\(error)".hasPrefix("ERP_TOKEN_FILE: ") && !"\(error)".contains("tokens")
            }
        }
        #expect {
            try ERPClientConfiguration(environment: ["ERP_BASE_URL": "http://erp", "ERP_TOKEN_FILE": "/nonexistent/erp-token"])
        } throws: { error in
            "\(error)" == "ERP_TOKEN_FILE: cannot read '/nonexistent/erp-token'"
        }
    }

    @Test("an invalid limit or timeout is refused")
    func limits() {
        #expect(throws: ERPClientConfigurationError.self) {
            try ERPClientConfiguration(baseURL: "http://erp", maxConcurrentPosts: 0)
        }
        #expect(throws: ERPClientConfigurationError.self) {
            try ERPClientConfiguration(baseURL: "http://erp", requestTimeout: .zero)
        }
    }

    @Test("the semaphore hands permits on in order and never exceeds its limit")
    func semaphore() async {
        let semaphore = AsyncSemaphore(limit: 3)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    await semaphore.withPermit {
                        try? await Task.sleep(for: .milliseconds(2))
                    }
                }
            }
        }
        #expect(semaphore.peakHolders <= 3)
        #expect(semaphore.holders == 0)
    }
}
