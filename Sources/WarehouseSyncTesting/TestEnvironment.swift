import Foundation

/// Where the throwaway servers `./scripts/test` starts are found: environment variables.
/// Integration tests fail, loudly, when one is missing; they never skip.
public enum TestEnvironment {
    public struct Missing: Error, CustomStringConvertible {
        public let name: String
        public let hint: String
        public var description: String { "\(name) is not set: \(hint)" }
    }

    /// The value of `name`, which must be set and not empty.
    public static func require(
        _ name: String, hint: String = "run the suite with ./scripts/test, which starts the brokers and PostgreSQL"
    ) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            throw Missing(name: name, hint: hint)
        }
        return value
    }
}

/// Directories a test makes under the temp dir and removes.
public enum TestDirectory {
    /// A new directory named `prefix-…`; the caller removes it.
    public static func make(_ prefix: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Runs `body` with a new directory named `prefix-…`, removed afterwards whatever happens.
    public static func with<T>(_ prefix: String, _ body: (URL) async throws -> T) async throws -> T {
        let directory = try make(prefix)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try await body(directory)
    }
}

/// The repository the tests run in, and the files in it they read.
public enum TestRepository {
    /// The repository's root (this file is `Sources/WarehouseSyncTesting/TestEnvironment.swift`).
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The reference ERP's seed (WH1…WH5, SKU-0001…SKU-0050), the one its executable uses by default.
    public static var seedFile: String { root.appendingPathComponent("deploy/reference-erp/seed.json").path }
}
