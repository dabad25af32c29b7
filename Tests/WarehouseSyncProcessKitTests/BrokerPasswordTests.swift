import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

@Suite("Broker users' passwords: RabbitMQ's hashes and the password files")
struct BrokerPasswordTests {
    /// RabbitMQ's documented example ("Computing Password Hash"): password `test12`, salt
    /// 908DC60A; cross-checked with python3: base64(salt + sha256(salt + b"test12")).
    @Test("SHA-256 hash of a known vector, and a non-ASCII password (UTF-8)")
    func knownVectors() {
        #expect(BrokerPasswordHash.sha256(password: "test12", salt: [0x90, 0x8D, 0xC6, 0x0A]) == "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR")
        #expect(BrokerPasswordHash.sha256(password: "pässwörd", salt: [1, 2, 3, 4]) == "AQIDBPwtq5ZIwNBPpzi5rjcenzm3jkMbdjQ9/km2mOuj20ER")
    }

    @Test("matching a hash the broker shows: SHA-256 and SHA-512, another password, an unknown algorithm")
    func matches() {
        let sha256 = "rabbit_password_hashing_sha256"
        #expect(BrokerPasswordHash.matches(hash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", algorithm: sha256, password: "test12") == true)
        #expect(BrokerPasswordHash.matches(hash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", algorithm: sha256, password: "test13") == false)
        let sha512 = "AQIDBNsKKqE/zLqmj2um5nIC+jebR2ySQbuQzXrLMSmkg4mKDd/PAIfjnjdiMSRyz4CkQ6JvAlsEQlassV5DxRLXm0s="
        #expect(BrokerPasswordHash.matches(hash: sha512, algorithm: "rabbit_password_hashing_sha512", password: "pässwörd") == true)
        #expect(BrokerPasswordHash.matches(hash: sha512, algorithm: "rabbit_password_hashing_md5", password: "pässwörd") == nil)
        #expect(BrokerPasswordHash.matches(hash: "", algorithm: sha256, password: "x") == nil)
        // A fresh salt each time, and each hash matches its password.
        let first = BrokerPasswordHash.sha256(password: "secret")
        let second = BrokerPasswordHash.sha256(password: "secret")
        #expect(first != second)
        #expect(BrokerPasswordHash.matches(hash: first, algorithm: sha256, password: "secret") == true)
        #expect(Data(base64Encoded: first)?.count == 36)
    }

    @Test("password files: one per user, trimmed; every missing or empty one named at once")
    func files() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("passwords-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let permissions = BrokerUser.Permissions(configure: "^$", write: "^$", read: "^$")
        let users = [
            BrokerUser(name: "a", permissions: permissions),
            BrokerUser(name: "b", permissions: permissions, passwordFile: "b.txt"),
        ]
        try Data("  s3cret\n".utf8).write(to: directory.appendingPathComponent("a"))
        try Data("other".utf8).write(to: directory.appendingPathComponent("b.txt"))
        #expect(try BrokerPasswords.load(for: users, directory: directory.path) == ["a": "s3cret", "b": "other"])

        try Data("\n".utf8).write(to: directory.appendingPathComponent("b.txt"))
        let missing = users + [BrokerUser(name: "c", permissions: permissions)]
        let error = #expect(throws: BrokerPasswordsError.self) { try BrokerPasswords.load(for: missing, directory: directory.path) }
        #expect(error?.problems.count == 2)
        #expect(error?.description.contains("b.txt is empty (the password of broker user 'b')") == true)
        #expect(error?.description.contains("cannot read \(directory.path)/c") == true)
        #expect(error?.description.contains("s3cret") == false)
    }

    @Test("AMQP_PASSWORD_FILE: the role's password from a file replaces the URL's; an unreadable one is named")
    func passwordFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("amqp-password-\(UUID().uuidString.prefix(8))")
        try Data("from-the-file\n".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let base = [
            "AMQP_URL": "amqp://whsync-inventory-worker@broker:5672/%2F", "STORE_URL": "sqlite:/tmp/w.db",
            "ERP_BASE_URL": "http://erp:8081",
        ]
        let configuration = try WorkerConfiguration(environment: base.merging(["AMQP_PASSWORD_FILE": file.path]) { $1 })
        #expect(configuration.amqp.username == "whsync-inventory-worker")
        #expect(configuration.amqp.password == "from-the-file")
        let error = #expect(throws: ConfigurationError.self) {
            try WorkerConfiguration(environment: base.merging(["AMQP_PASSWORD_FILE": "/nonexistent/password"]) { $1 })
        }
        #expect(error?.problems.map(\.description).contains { $0.contains("AMQP_PASSWORD_FILE") && $0.contains("/nonexistent/password") } == true)
    }
}
