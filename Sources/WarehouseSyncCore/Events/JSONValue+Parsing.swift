extension JSONValue {
    /// The nesting limit the parser applies unless told otherwise.
    public static let defaultMaxDepth = 64

    /// Parses one JSON text (RFC 8259, UTF-8, no byte order mark) strictly: numbers keep their
    /// literal text, duplicate keys, unpaired surrogates, malformed UTF-8, control characters in
    /// strings and anything after the value are errors, and arrays and objects may nest at most
    /// `maxDepth` levels.
    public init(parsing bytes: some Collection<UInt8>, maxDepth: Int = JSONValue.defaultMaxDepth)
        throws(JSONParseError)
    {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            JSONParser.parse(buffer, maxDepth: maxDepth)
        }
        if let result {
            self = try result.get()
        } else {
            self = try Array(bytes).withUnsafeBufferPointer { buffer in
                JSONParser.parse(buffer, maxDepth: maxDepth)
            }.get()
        }
    }

    /// Parses the UTF-8 of `text`; see ``init(parsing:maxDepth:)-(Collection<UInt8>,_)``.
    public init(parsing text: String, maxDepth: Int = JSONValue.defaultMaxDepth) throws(JSONParseError) {
        var text = text
        self = try text.withUTF8 { buffer in
            JSONParser.parse(buffer, maxDepth: maxDepth)
        }.get()
    }
}

/// A recursive-descent parser over a byte buffer. The recursion is bounded by `maxDepth`.
private struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    private var index = 0
    private var depth = 0
    /// Reused for strings with escapes.
    private var scratch: [UInt8] = []

    private init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<JSONValue, JSONParseError> {
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        do throws(JSONParseError) {
            return .success(try parser.parseDocument())
        } catch {
            return .failure(error)
        }
    }

    private mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        let value = try parseValue()
        skipWhitespace()
        if index < bytes.count {
            throw JSONParseError(code: .trailingData, offset: index, detail: "expected end of input after the JSON value")
        }
        return value
    }

    // MARK: Values

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard index < bytes.count else { throw endOfInput(expecting: "a JSON value") }
        switch bytes[index] {
        case Byte.openBrace: return try parseObject()
        case Byte.openBracket: return try parseArray()
        case Byte.quote: return .string(try parseString())
        case Byte.t:
            try parseLiteral("true")
            return .bool(true)
        case Byte.f:
            try parseLiteral("false")
            return .bool(false)
        case Byte.n:
            try parseLiteral("null")
            return .null
        case Byte.minus, Byte.zero...Byte.nine:
            return .number(try parseNumber())
        default:
            throw unexpected(expecting: "a JSON value")
        }
    }

    private mutating func parseLiteral(_ literal: StaticString) throws(JSONParseError) {
        let start = index
        let text = UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for expected in text {
            guard index < bytes.count else { throw endOfInput(expecting: "'\(literal)'") }
            guard bytes[index] == expected else {
                throw JSONParseError(code: .unexpectedCharacter, offset: start, detail: "expected a JSON value ('\(literal)'?)")
            }
            index += 1
        }
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        if depth > maxDepth {
            throw JSONParseError(
                code: .depthLimitExceeded, offset: index,
                detail: "expected at most \(maxDepth) levels of nested arrays and objects"
            )
        }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        index += 1  // {
        var members: [JSONObject.Member] = []
        var seenKeys: Set<String>? = nil  // only for large objects, where a linear scan gets slow
        skipWhitespace()
        if index < bytes.count, bytes[index] == Byte.closeBrace {
            index += 1
            depth -= 1
            return .object(JSONObject(uncheckedMembers: members))
        }
        while true {
            skipWhitespace()
            guard index < bytes.count else { throw endOfInput(expecting: "a string key") }
            guard bytes[index] == Byte.quote else { throw unexpected(expecting: "a string key") }
            let keyOffset = index
            let key = try parseString()
            if isDuplicate(key, in: members, seen: &seenKeys) {
                let shown = key.count > 64 ? String(key.prefix(64)) + "…" : key
                throw JSONParseError(code: .duplicateKey, offset: keyOffset, detail: "duplicate key '\(shown)'", key: key)
            }
            skipWhitespace()
            guard index < bytes.count else { throw endOfInput(expecting: "':'") }
            guard bytes[index] == Byte.colon else { throw unexpected(expecting: "':' after the key") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            members.append(JSONObject.Member(key: key, value: value))
            skipWhitespace()
            guard index < bytes.count else { throw endOfInput(expecting: "',' or '}'") }
            switch bytes[index] {
            case Byte.comma:
                index += 1
            case Byte.closeBrace:
                index += 1
                depth -= 1
                return .object(JSONObject(uncheckedMembers: members))
            default:
                throw unexpected(expecting: "',' or '}'")
            }
        }
    }

    private func isDuplicate(_ key: String, in members: [JSONObject.Member], seen: inout Set<String>?) -> Bool {
        if seen == nil, members.count < 16 {
            return members.contains { $0.key == key }
        }
        if seen == nil {
            seen = Set(members.map(\.key))
        }
        return seen?.insert(key).inserted == false
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == Byte.closeBracket {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            guard index < bytes.count else { throw endOfInput(expecting: "',' or ']'") }
            switch bytes[index] {
            case Byte.comma:
                index += 1
            case Byte.closeBracket:
                index += 1
                depth -= 1
                return .array(elements)
            default:
                throw unexpected(expecting: "',' or ']'")
            }
        }
    }

    // MARK: Numbers

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as written.
    private mutating func parseNumber() throws(JSONParseError) -> String {
        let start = index
        if bytes[index] == Byte.minus { index += 1 }
        guard index < bytes.count else { throw endOfInput(expecting: "a digit") }
        guard isDigit(bytes[index]) else { throw invalidNumber(expecting: "a digit") }
        if bytes[index] == Byte.zero {
            index += 1
            if index < bytes.count, isDigit(bytes[index]) {
                throw invalidNumber(expecting: "'.', 'e' or the end of the number after a leading 0")
            }
        } else {
            skipDigits()
        }
        if index < bytes.count, bytes[index] == Byte.dot {
            index += 1
            guard index < bytes.count else { throw endOfInput(expecting: "a digit after '.'") }
            guard isDigit(bytes[index]) else { throw invalidNumber(expecting: "a digit after '.'") }
            skipDigits()
        }
        if index < bytes.count, bytes[index] | 0x20 == Byte.e {
            index += 1
            if index < bytes.count, bytes[index] == Byte.plus || bytes[index] == Byte.minus {
                index += 1
            }
            guard index < bytes.count else { throw endOfInput(expecting: "an exponent digit") }
            guard isDigit(bytes[index]) else { throw invalidNumber(expecting: "an exponent digit") }
            skipDigits()
        }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    private mutating func skipDigits() {
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte &- Byte.zero < 10
    }

    // MARK: Strings

    /// A string starting at the opening quote at `index`.
    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1  // "
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == Byte.quote {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == Byte.backslash {
                return try parseEscapedString(from: start)
            }
            if byte < 0x20 { throw controlCharacter() }
            if byte < 0x80 {
                index += 1
            } else {
                try skipUTF8Sequence()
            }
        }
        throw endOfInput(expecting: "a closing '\"'")
    }

    /// The slow path: the string from `start` has an escape at `index`.
    private mutating func parseEscapedString(from start: Int) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case Byte.quote:
                index += 1
                return String(decoding: scratch, as: UTF8.self)
            case Byte.backslash:
                try appendEscape()
            case 0..<0x20:
                throw controlCharacter()
            case 0x20..<0x80:
                scratch.append(byte)
                index += 1
            default:
                let sequenceStart = index
                try skipUTF8Sequence()
                scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[sequenceStart..<index]))
            }
        }
        throw endOfInput(expecting: "a closing '\"'")
    }

    private mutating func appendEscape() throws(JSONParseError) {
        let escapeStart = index
        index += 1  // backslash
        guard index < bytes.count else { throw endOfInput(expecting: "an escape character") }
        let byte = bytes[index]
        index += 1
        switch byte {
        case Byte.quote: scratch.append(Byte.quote)
        case Byte.backslash: scratch.append(Byte.backslash)
        case Byte.slash: scratch.append(Byte.slash)
        case Byte.b: scratch.append(0x08)
        case Byte.f: scratch.append(0x0C)
        case Byte.n: scratch.append(0x0A)
        case Byte.r: scratch.append(0x0D)
        case Byte.t: scratch.append(0x09)
        case Byte.u:
            let unit = try readHex4()
            var scalar = UInt32(unit)
            if (0xD800...0xDBFF).contains(unit) {
                guard index + 1 < bytes.count, bytes[index] == Byte.backslash, bytes[index + 1] == Byte.u else {
                    throw JSONParseError(
                        code: .invalidString, offset: escapeStart,
                        detail: "expected a low surrogate escape (\\uDC00-\\uDFFF) after the high surrogate"
                    )
                }
                index += 2
                let low = try readHex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw JSONParseError(
                        code: .invalidString, offset: index - 6,
                        detail: "expected a low surrogate escape (\\uDC00-\\uDFFF) after the high surrogate"
                    )
                }
                scalar = 0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONParseError(
                    code: .invalidString, offset: escapeStart,
                    detail: "expected a high surrogate escape (\\uD800-\\uDBFF) before the low surrogate"
                )
            }
            appendUTF8(scalar)
        default:
            throw JSONParseError(
                code: .invalidString, offset: escapeStart,
                detail: "expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"
            )
        }
    }

    private mutating func readHex4() throws(JSONParseError) -> UInt16 {
        var value: UInt16 = 0
        for _ in 0..<4 {
            guard index < bytes.count else { throw endOfInput(expecting: "4 hex digits after \\u") }
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case Byte.zero...Byte.nine: digit = byte - Byte.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default:
                throw JSONParseError(code: .invalidString, offset: index, detail: "expected 4 hex digits after \\u")
            }
            value = value << 4 | UInt16(digit)
            index += 1
        }
        return value
    }

    private mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// Steps over one well-formed multi-byte UTF-8 sequence (RFC 3629: no overlong forms, no
    /// surrogates, nothing above U+10FFFF) starting at `index`.
    private mutating func skipUTF8Sequence() throws(JSONParseError) {
        let lead = bytes[index]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xE1...0xEF: length = 3
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        case 0xF1...0xF3: length = 4
        default: throw invalidUTF8(at: index)
        }
        guard index + length <= bytes.count else { throw invalidUTF8(at: index) }
        guard secondRange.contains(bytes[index + 1]) else { throw invalidUTF8(at: index) }
        var position = index + 2
        while position < index + length {
            guard bytes[position] & 0xC0 == 0x80 else { throw invalidUTF8(at: index) }
            position += 1
        }
        index += length
    }

    // MARK: Whitespace and errors

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private func unexpected(expecting expected: String) -> JSONParseError {
        JSONParseError(code: .unexpectedCharacter, offset: index, detail: "expected \(expected)")
    }

    private func endOfInput(expecting expected: String) -> JSONParseError {
        JSONParseError(code: .unexpectedEndOfInput, offset: index, detail: "expected \(expected), found end of input")
    }

    private func invalidNumber(expecting expected: String) -> JSONParseError {
        JSONParseError(code: .invalidNumber, offset: index, detail: "expected \(expected) in number")
    }

    private func invalidUTF8(at offset: Int) -> JSONParseError {
        JSONParseError(code: .invalidUTF8, offset: offset, detail: "expected well-formed UTF-8")
    }

    private func controlCharacter() -> JSONParseError {
        JSONParseError(
            code: .invalidString, offset: index,
            detail: "expected an escape (\\n, \\t, \\uXXXX) instead of a raw control character in string"
        )
    }
}

/// ASCII bytes the parser looks for.
private enum Byte {
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let nine = UInt8(ascii: "9")
    static let b = UInt8(ascii: "b")
    static let e = UInt8(ascii: "e")
    static let f = UInt8(ascii: "f")
    static let n = UInt8(ascii: "n")
    static let r = UInt8(ascii: "r")
    static let t = UInt8(ascii: "t")
    static let u = UInt8(ascii: "u")
}
