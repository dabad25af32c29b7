import Foundation

/// How every store keeps a message's string headers (held messages, dead letters): one JSON
/// object with sorted keys, so that the same headers are the same bytes in SQLite and PostgreSQL.
public enum StoredHeaders {
    public static func json(_ headers: [String: String]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(headers)
    }

    /// The headers stored as `json`; `nil` when it is not a JSON object of strings.
    public static func headers(json: String) -> [String: String]? {
        try? JSONDecoder().decode([String: String].self, from: Data(json.utf8))
    }
}
