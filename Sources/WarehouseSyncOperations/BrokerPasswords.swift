import Crypto
import Foundation
import WarehouseSyncCore
import WarehouseSyncSettings

/// RabbitMQ's password hashes (`rabbit_password_hashing_sha256`, the default, and `…_sha512`):
/// base64 of a 4-byte salt followed by the digest of the salt and the UTF-8 password.
public enum BrokerPasswordHash {
    /// The hash a definitions file carries for `password`, with `salt` (4 random bytes by default).
    public static func sha256(password: String, salt: [UInt8] = randomSalt()) -> String {
        Data(salt + SHA256.hash(data: salt + Array(password.utf8))).base64EncodedString()
    }

    public static func randomSalt() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// Whether `hash` (as the management API shows it, made with `algorithm`) is `password`'s;
    /// nil when that cannot be told (an algorithm other than SHA-256 or SHA-512, or no hash).
    public static func matches(hash: String, algorithm: String, password: String) -> Bool? {
        guard let bytes = Data(base64Encoded: hash).map(Array.init), bytes.count > 4 else { return nil }
        let salt = Array(bytes.prefix(4))
        let input = salt + Array(password.utf8)
        let digest: [UInt8]
        switch algorithm {
        case BrokerUser.passwordHashingAlgorithm: digest = Array(SHA256.hash(data: input))
        case "rabbit_password_hashing_sha512": digest = Array(SHA512.hash(data: input))
        default: return nil
        }
        return Array(bytes.dropFirst(4)) == digest
    }
}

/// The passwords of the topology's users, read from a directory with one file per user
/// (``BrokerUser/passwordFile``): what `whsync topology apply|verify|export --passwords-dir` read.
public enum BrokerPasswords {
    /// Every user's password (by user name), the file's content without surrounding white space.
    /// Throws naming each file that is missing, unreadable or empty, before anything is used.
    public static func load(for users: [BrokerUser], directory: String) throws -> [String: String] {
        var passwords: [String: String] = [:]
        var problems: [String] = []
        for user in users {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(user.passwordFile).path
            guard let data = FileManager.default.contents(atPath: path) else {
                problems.append("cannot read \(path) (the password of broker user '\(user.name)')")
                continue
            }
            let password = String(decoding: SecretFile.contents(data), as: UTF8.self)
            guard !password.isEmpty else {
                problems.append("\(path) is empty (the password of broker user '\(user.name)')")
                continue
            }
            passwords[user.name] = password
        }
        guard problems.isEmpty else { throw BrokerPasswordsError(problems: problems) }
        return passwords
    }
}

public struct BrokerPasswordsError: Error, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}
