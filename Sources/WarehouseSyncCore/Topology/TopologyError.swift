/// A topology file that cannot be read or is not valid. Fix the file and run again: nothing has
/// been declared when this is thrown.
///
/// The description names the file (when loaded from one), the key path inside it
/// (`streams.inventory.partitions`, `retry.tiers[1]`) and what is wrong, in one line.
public struct TopologyError: Error, CustomStringConvertible, Sendable, Hashable {
    /// What kind of mistake; a struct rather than an enum so that new kinds do not break callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The file could not be read.
        public static let unreadableFile = Code("unreadableFile")
        /// The file is not JSON, or its top level is not an object.
        public static let invalidJSON = Code("invalidJSON")
        /// A key the format does not know: usually a typo.
        public static let unknownKey = Code("unknownKey")
        /// A required key is absent.
        public static let missingKey = Code("missingKey")
        /// A value of the wrong JSON type (a number where a string belongs…).
        public static let wrongType = Code("wrongType")
        /// A value of the right type outside what is allowed (a delivery limit of 0…).
        public static let invalidValue = Code("invalidValue")
        /// A duration that does not parse; see ``DurationParser``.
        public static let invalidDuration = Code("invalidDuration")
        /// Retry tiers that are not 1–10 strictly increasing delays.
        public static let invalidTiers = Code("invalidTiers")
        /// A partition count other than 0 or 2…64.
        public static let invalidPartitions = Code("invalidPartitions")
        /// A stream other than inventory, shipment, receipt.
        public static let unknownStream = Code("unknownStream")
        /// An exchange or queue name RabbitMQ would refuse or that we reserve.
        public static let invalidName = Code("invalidName")
        /// Two exchanges, or two queues, that would get the same name.
        public static let duplicateName = Code("duplicateName")
    }

    public let code: Code
    /// Where in the document, as dotted keys with `[index]` for array elements; empty for the
    /// document as a whole.
    public let keyPath: String
    /// What is wrong and, where it helps, what would be right.
    public let message: String
    /// The file the document came from, when it came from one.
    public var file: String?

    public init(code: Code, keyPath: String, message: String, file: String? = nil) {
        self.code = code
        self.keyPath = keyPath
        self.message = message
        self.file = file
    }

    public var description: String {
        var parts: [String] = []
        if let file { parts.append(file) }
        if !keyPath.isEmpty { parts.append(keyPath) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}
