import Foundation
import WarehouseSyncCore

/// Which adapter of the ERP port a process uses (DESIGN §9, `ERP_KIND`).
public enum ERPKind: String, Sendable, CaseIterable {
    /// DESIGN §3's HTTP contract (``HTTPERPClient``), the default.
    case http
    /// Tryton's JSON-RPC (``TrytonERPClient``).
    case tryton

    /// `nil` and the empty string are `http`; anything else not listed is `nil`.
    public init?(setting: String?) {
        guard let text = setting?.trimmingCharacters(in: .whitespaces).lowercased(), !text.isEmpty else {
            self = .http
            return
        }
        self.init(rawValue: text)
    }
}

/// A Tryton user's password. Its description is redacted; only the login call reads ``value``.
public struct TrytonPassword: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    let value: String

    /// `nil` for an empty password (after dropping the file's trailing newline).
    public init?(_ text: String) {
        let trimmed = text.trimmingCharacters(in: .newlines)
        guard !trimmed.isEmpty else { return nil }
        value = trimmed
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}

/// How ``TrytonERPClient`` reaches Tryton and where it books what (docs/tryton.md).
public struct TrytonConfiguration: Sendable {
    /// The server and database: `ERP_BASE_URL` = `http://host:8000/<database>/`; the transport
    /// settings (timeouts, posts in flight) are the HTTP adapter's.
    public var http: ERPClientConfiguration
    /// `ERP_USER`.
    public var user: String
    /// From `ERP_PASSWORD_FILE`.
    public var password: TrytonPassword
    /// The party of customer shipments whose WMS names none that Tryton knows (its code).
    public var customerPartyCode = "WMS-CUSTOMER"
    /// The party of supplier shipments whose supplier Tryton does not know by code.
    public var supplierPartyCode = "WMS-SUPPLIER"
    /// Where stock of a status other than `available` lies: the location whose code is
    /// `<warehouse>-<status>` (`available` is the warehouse's storage location itself). `false`:
    /// every status is the storage location (a site that keeps no status locations).
    public var statusLocations = true

    /// The database: the last path segment of the base URL.
    public var database: String {
        String(http.baseURL.split(separator: "/").last ?? "")
    }

    /// Time for one JSON-RPC call: longer than the HTTP contract's 10 s, because a call that
    /// times out here may still finish inside trytond (SQLite waits for its lock), and a retry
    /// that searches before it finished would create the document again.
    public static let defaultRequestTimeout: Duration = .seconds(60)

    /// Validates the URL (it must name a database after the host), the user and the password.
    public init(
        baseURL: String, user: String, password: TrytonPassword, maxConcurrentPosts: Int = 4,
        requestTimeout: Duration = defaultRequestTimeout
    ) throws(ERPClientConfigurationError) {
        http = try ERPClientConfiguration(baseURL: baseURL, requestTimeout: requestTimeout, maxConcurrentPosts: maxConcurrentPosts)
        let path = URLComponents(string: http.baseURL)?.path ?? ""
        guard path.split(separator: "/").count == 1 else {
            throw ERPClientConfigurationError(
                setting: "ERP_BASE_URL", message: "with ERP_KIND=tryton it must name the database: http://host:8000/<database>/")
        }
        guard !user.isEmpty else { throw ERPClientConfigurationError(setting: "ERP_USER", message: "is empty") }
        self.user = user
        self.password = password
    }

    /// Reads the password file: the whole file, its trailing newline dropped.
    public static func readPassword(path: String) throws(ERPClientConfigurationError) -> TrytonPassword {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ERPClientConfigurationError(setting: "ERP_PASSWORD_FILE", message: "cannot read '\(path)'")
        }
        guard let password = TrytonPassword(String(decoding: data, as: UTF8.self)) else {
            throw ERPClientConfigurationError(setting: "ERP_PASSWORD_FILE", message: "'\(path)' is empty")
        }
        return password
    }

    /// `ERP_KIND=tryton`'s settings from the environment: `ERP_BASE_URL`, `ERP_USER`,
    /// `ERP_PASSWORD_FILE`, each failure naming its variable.
    public init(environment: [String: String]) throws(ERPClientConfigurationError) {
        guard let url = environment["ERP_BASE_URL"], !url.isEmpty else {
            throw ERPClientConfigurationError(setting: "ERP_BASE_URL", message: "not set (expected http://host:8000/<database>/)")
        }
        guard let user = environment["ERP_USER"], !user.isEmpty else {
            throw ERPClientConfigurationError(setting: "ERP_USER", message: "not set (ERP_KIND=tryton logs in as this user)")
        }
        guard let path = environment["ERP_PASSWORD_FILE"], !path.isEmpty else {
            throw ERPClientConfigurationError(setting: "ERP_PASSWORD_FILE", message: "not set (a file holding ERP_USER's password)")
        }
        try self.init(baseURL: url, user: user, password: Self.readPassword(path: path))
    }
}
