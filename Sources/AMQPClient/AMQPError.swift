/// A failure talking to the broker. `description` is safe to log: it never holds a password,
/// a token or a message body.
public struct AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The URL or an option is malformed; retrying will not help.
        public static let invalidConfiguration = Code("invalid-configuration")
        /// Nothing listens at host:port, or the host is unreachable or unknown.
        public static let connectionRefused = Code("connection-refused")
        /// The TLS handshake failed (untrusted certificate, wrong hostname, protocol mismatch).
        public static let tlsFailed = Code("tls-failed")
        /// 403 ACCESS_REFUSED: wrong credentials or missing permissions.
        public static let accessRefused = Code("ACCESS_REFUSED")
        /// 404 NOT_FOUND: the exchange or queue does not exist.
        public static let notFound = Code("NOT_FOUND")
        /// 405 RESOURCE_LOCKED: an exclusive queue is in use by another connection.
        public static let resourceLocked = Code("RESOURCE_LOCKED")
        /// 406 PRECONDITION_FAILED: e.g. a declare with different arguments than the existing object.
        public static let preconditionFailed = Code("PRECONDITION_FAILED")
        /// 530 NOT_ALLOWED: e.g. the virtual host does not exist.
        public static let notAllowed = Code("NOT_ALLOWED")
        /// The broker closed the channel or connection for another reason (the reply code says which).
        public static let closedByBroker = Code("closed-by-broker")
        /// The connection dropped (socket error, missed heartbeats, broker restart).
        public static let connectionLost = Code("connection-lost")
        /// A `mandatory` message matched no queue; the broker returned it.
        public static let unroutable = Code("unroutable")
        /// The broker refused to take responsibility for a published message (basic.nack).
        public static let nacked = Code("nacked")
        /// The connection was closed by this process.
        public static let closed = Code("closed")
        /// The broker or library broke the protocol in a way we cannot recover from in place.
        public static let protocolError = Code("protocol-error")
        /// An operation did not complete within its time limit.
        public static let timeout = Code("timeout")
    }

    public var code: Code
    public var message: String
    /// The AMQP reply code when the broker sent one (403, 404, 406, 320, ...).
    public var replyCode: UInt16?

    public init(_ code: Code, _ message: String, replyCode: UInt16? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
    }

    public var description: String { message }

    /// Errors after which reconnecting cannot succeed without a configuration change.
    public var isPermanent: Bool {
        [.invalidConfiguration, .accessRefused, .tlsFailed, .notAllowed].contains(code)
    }

    /// Maps a broker's channel.close / connection.close to an error, keeping the broker's text.
    static func fromBroker(replyCode: UInt16, replyText: String, context: String) -> AMQPError {
        let code: Code =
            switch replyCode {
            case 403: .accessRefused
            case 404: .notFound
            case 405: .resourceLocked
            case 406: .preconditionFailed
            case 530: .notAllowed
            default: .closedByBroker
            }
        // RabbitMQ's text already starts with the constant name, e.g. "NOT_FOUND - no queue 'x'".
        return AMQPError(code, "\(context): \(replyText) (reply code \(replyCode))", replyCode: replyCode)
    }
}
