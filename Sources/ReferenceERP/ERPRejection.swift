import WarehouseSyncCore

/// Why the ERP refuses a request, answered as `{"error": code, "message": ..., "field": ...}`
/// with ``status``. Messages name fields and values the client sent, never tokens or whole bodies.
struct ERPRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The HTTP status: 400 (malformed), 401, 404, 422 (business rule), 503.
    public let status: Int
    /// A stable machine-readable reason, e.g. `unknown-sku`.
    public let code: String
    public let message: String
    /// The JSON path of the offending field (`lines[1].sku`), when there is one.
    public let field: String?

    public init(status: Int, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    /// 400: the request is not a well-formed document (not JSON, a missing field, a wrong type).
    static func malformed(_ message: String, field: String? = nil) -> ERPRejection {
        ERPRejection(status: 400, code: "invalid-document", message: field.map { "\($0): \(message)" } ?? message, field: field)
    }

    /// 422: a well-formed document the ERP cannot accept (unknown master data, a value out of its
    /// vocabulary, a status posted to the wrong endpoint).
    static func unprocessable(_ code: String, _ message: String, field: String? = nil) -> ERPRejection {
        ERPRejection(status: 422, code: code, message: field.map { "\($0): \(message)" } ?? message, field: field)
    }

    public var description: String { "\(status) \(code): \(message)" }

    /// The response body.
    public var json: JSONValue {
        var members: [(String, JSONValue)] = [("error", .string(code)), ("message", .string(message))]
        if let field { members.append(("field", .string(field))) }
        return .object(JSONObject(uniqueKeysWithValues: members))
    }
}
