/// Why a text is not valid JSON, and where: the byte offset of the problem in the input and what
/// the parser expected there. The description names no input beyond a duplicate key (cut to
/// 64 characters), so it is safe to log.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem. New kinds may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case unexpectedCharacter = "unexpected character"
            case unexpectedEndOfInput = "unexpected end of input"
            case invalidNumber = "invalid number"
            case invalidString = "invalid string"
            case invalidUTF8 = "invalid UTF-8"
            case duplicateKey = "duplicate key"
            case depthLimitExceeded = "nesting too deep"
            case trailingData = "data after the JSON value"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// A byte that cannot start or continue what was expected.
        public static let unexpectedCharacter = Code(.unexpectedCharacter)
        /// The input ended inside a value.
        public static let unexpectedEndOfInput = Code(.unexpectedEndOfInput)
        /// A number that breaks the RFC 8259 grammar (leading zero, missing digits).
        public static let invalidNumber = Code(.invalidNumber)
        /// A bad escape, an unpaired surrogate or an unescaped control character in a string.
        public static let invalidString = Code(.invalidString)
        /// Bytes in a string that are not well-formed UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// An object with the same key twice (``JSONParseError/key`` names it).
        public static let duplicateKey = Code(.duplicateKey)
        /// Arrays and objects nested deeper than the parser's limit.
        public static let depthLimitExceeded = Code(.depthLimitExceeded)
        /// Something other than whitespace after the top-level value.
        public static let trailingData = Code(.trailingData)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// Offset in bytes from the start of the input.
    public let offset: Int
    /// What went wrong, phrased as what was expected: "expected ',' or '}'".
    public let detail: String
    /// For ``Code/duplicateKey``, the key.
    public let key: String?

    public init(code: Code, offset: Int, detail: String, key: String? = nil) {
        self.code = code
        self.offset = offset
        self.detail = detail
        self.key = key
    }

    public var description: String {
        "\(detail) at byte \(offset)"
    }
}
