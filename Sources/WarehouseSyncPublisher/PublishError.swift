import AMQPClient
// An adapter imports this library alone: the core's typed events and AMQPConfiguration come with it.
@_exported import WarehouseSyncCore

/// Why an event was not published. `description` is safe to log: it names fields and rules, never
/// a body or a credential.
public struct PublishError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The event breaks the contract (``PublishError/violations`` says where): fix it, do not
        /// retry it as it is. Nothing was published.
        public static let invalid = Code("invalid")
        /// The broker is unreachable or the connection dropped before the confirm: retry later.
        public static let unavailable = Code("unavailable")
        /// No confirm came within the confirm timeout: retry (the eventId makes a repeat harmless).
        public static let timeout = Code("timeout")
        /// The broker refused the message (nack) or no queue is bound for its routing key:
        /// a topology problem for an operator; retrying helps only once it is mended.
        public static let notConfirmed = Code("not-confirmed")
    }

    public var code: Code
    public var message: String
    /// For ``Code/invalid``: every broken rule, field by field.
    public var violations: [EventValidationError.Violation]

    public init(_ code: Code, _ message: String, violations: [EventValidationError.Violation] = []) {
        self.code = code
        self.message = message
        self.violations = violations
    }

    public init(_ error: EventValidationError) {
        self.init(.invalid, error.description, violations: error.violations)
    }

    /// Maps what the connection reported for one message.
    public init(_ error: AMQPError) {
        switch error.code {
        case .timeout: self.init(.timeout, error.message)
        case .nacked, .unroutable, .notFound: self.init(.notConfirmed, error.message)
        default: self.init(.unavailable, error.message)
        }
    }

    /// Sending the same event again may succeed (and is safe: the eventId deduplicates).
    public var isRetryable: Bool { code == .unavailable || code == .timeout }

    public var description: String { "\(code): \(message)" }
}
