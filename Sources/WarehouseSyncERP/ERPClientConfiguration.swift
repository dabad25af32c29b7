import Foundation
import WarehouseSyncCore

/// A bearer token for the ERP. Its description is redacted so that it never reaches a log line
/// by accident; only the `Authorization` header reads ``value``.
public struct ERPToken: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String

    /// `nil` for a token that is empty after trimming or holds whitespace or control characters.
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            return nil
        }
        value = trimmed
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// A setting the ERP client cannot use.
public typealias ERPClientConfigurationError = SettingError

/// How ``HTTPERPClient`` reaches the ERP.
public struct ERPClientConfiguration: Sendable {
    /// `ERP_BASE_URL` without a trailing slash: `http://erp:8081` or `https://erp.example/api`.
    public let baseURL: String
    /// From `ERP_TOKEN_FILE`; `nil`: no `Authorization` header.
    public let token: ERPToken?
    /// Time to open a connection.
    public var connectTimeout: Duration
    /// Time for a whole posting, from sending to the end of the answer.
    public var requestTimeout: Duration
    /// Time for a health probe.
    public var healthTimeout: Duration
    /// Posts in flight at once at most; further posts wait for a slot.
    public var maxConcurrentPosts: Int
    /// How long an idle keep-alive connection stays in the pool.
    public var idleTimeout: Duration
    /// How much of a response body is read for classification (message, `documentId`).
    public var maxBodyBytes: Int

    public static let defaultConnectTimeout: Duration = .seconds(2)
    public static let defaultRequestTimeout: Duration = .seconds(10)
    public static let defaultHealthTimeout: Duration = .seconds(2)
    public static let defaultMaxConcurrentPosts = 16

    /// Validates `baseURL` (http or https, a host, no query or fragment).
    public init(
        baseURL: String, token: ERPToken? = nil,
        connectTimeout: Duration = defaultConnectTimeout, requestTimeout: Duration = defaultRequestTimeout,
        healthTimeout: Duration = defaultHealthTimeout, maxConcurrentPosts: Int = defaultMaxConcurrentPosts,
        idleTimeout: Duration = .seconds(60), maxBodyBytes: Int = 1 << 20
    ) throws(ERPClientConfigurationError) {
        self.baseURL = try Self.validatedBaseURL(baseURL)
        self.token = token
        guard maxConcurrentPosts >= 1 else {
            throw ERPClientConfigurationError(setting: "maxConcurrentPosts", message: "must be at least 1")
        }
        guard connectTimeout > .zero, requestTimeout > .zero, healthTimeout > .zero, idleTimeout > .zero else {
            throw ERPClientConfigurationError(setting: "timeouts", message: "every timeout must be positive")
        }
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.healthTimeout = healthTimeout
        self.maxConcurrentPosts = maxConcurrentPosts
        self.idleTimeout = idleTimeout
        self.maxBodyBytes = max(256, maxBodyBytes)
    }

    /// Reads `ERP_BASE_URL` (required) and `ERP_TOKEN_FILE` (optional; when set, the file must
    /// hold a token, read now and trimmed). Errors name the variable, never the token.
    public init(environment: [String: String]) throws(ERPClientConfigurationError) {
        guard let base = environment["ERP_BASE_URL"], !base.isEmpty else {
            throw ERPClientConfigurationError(setting: "ERP_BASE_URL", message: "not set (the ERP's http:// or https:// URL)")
        }
        var token: ERPToken?
        if let path = environment["ERP_TOKEN_FILE"], !path.isEmpty {
            token = try Self.readToken(path: path)
        }
        try self.init(baseURL: base, token: token)
    }

    /// The token in the file at `path`, trimmed.
    public static func readToken(path: String) throws(ERPClientConfigurationError) -> ERPToken {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ERPClientConfigurationError(setting: "ERP_TOKEN_FILE", message: "cannot read '\(path)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ERPClientConfigurationError(setting: "ERP_TOKEN_FILE", message: "'\(path)' is not UTF-8 text")
        }
        guard let token = ERPToken(text) else {
            let problem = text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                ? "is empty" : "must hold one token of printable ASCII without spaces"
            throw ERPClientConfigurationError(setting: "ERP_TOKEN_FILE", message: "'\(path)' \(problem)")
        }
        return token
    }

    private static func validatedBaseURL(_ text: String) throws(ERPClientConfigurationError) -> String {
        func failure(_ message: String) -> ERPClientConfigurationError {
            ERPClientConfigurationError(setting: "ERP_BASE_URL", message: message)
        }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased() else {
            throw failure("'\(text)' is not a URL (expected http://host:port or https://host)")
        }
        guard scheme == "http" || scheme == "https" else {
            throw failure("scheme '\(scheme)' is not http or https")
        }
        guard let host = components.host, !host.isEmpty else {
            throw failure("'\(text)' has no host")
        }
        guard components.user == nil, components.password == nil else {
            throw failure("must not carry credentials (use ERP_TOKEN_FILE)")
        }
        guard components.query == nil, components.fragment == nil else {
            throw failure("'\(text)' must not have a query or fragment")
        }
        var result = trimmed
        while result.hasSuffix("/") { result.removeLast() }
        return result
    }
}
