import Crypto
import Foundation

/// A bearer token read from a secret file (``SettingsReader/secretFile(_:minimumLength:)``): the
/// gateway's `GATEWAY_TOKEN_FILE`, the dead-letter console's `CONSOLE_TOKEN_FILE` and
/// `CONSOLE_WRITE_TOKEN_FILE`. Only its SHA-256 is kept: comparing digests makes the comparison's
/// time independent of both the content and the length of what a client sends. No description
/// shows it.
public struct SecretToken: Sendable, Hashable, CustomStringConvertible {
    private let digest: [UInt8]

    public init(_ secret: [UInt8]) {
        digest = Array(SHA256.hash(data: secret))
    }

    /// Whether `candidate` is the token, in constant time.
    public func matches(_ candidate: some Sequence<UInt8>) -> Bool {
        Self.constantTimeEqual(Array(SHA256.hash(data: Array(candidate))), digest)
    }

    /// Why an `Authorization` header is not `Bearer <this token>`; `nil` when it is. The scheme is
    /// compared case-insensitively, white space around the token is ignored.
    public func refusal(authorization: String) -> Refusal? {
        guard let token = Self.bearerCredential(authorization) else { return .malformed }
        return matches(Array(token.utf8)) ? nil : .wrongToken
    }

    /// A value derived from the token for one `purpose` (64 hex digits): a credential that stands
    /// for the token without showing it, e.g. the dead-letter console's session cookie and form
    /// token. Whoever lacks the token cannot compute it.
    public func derived(_ purpose: String) -> String {
        let bytes = SHA256.hash(data: Array(purpose.utf8) + [0] + digest)
        return bytes.map { String(format: "%02x", $0) }.joined()
    }

    public enum Refusal: Sendable, Hashable {
        /// The header is not `Bearer <token>`.
        case malformed
        case wrongToken
    }

    /// The token of an `Authorization: Bearer <token>` header; `nil` for any other form.
    public static func bearerCredential(_ authorization: String) -> Substring? {
        let prefix = "bearer "
        guard authorization.count > prefix.count, authorization.lowercased().hasPrefix(prefix) else { return nil }
        return authorization.dropFirst(prefix.count).trimmingCharacters(in: .whitespaces)[...]
    }

    private static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    public var description: String { "<redacted>" }
}
