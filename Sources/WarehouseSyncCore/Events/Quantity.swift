/// An exact decimal quantity with six fraction digits, stored as a count of millionths
/// ("micro-units") in an `Int64`. Values never pass through floating point.
///
/// The range is ±9223372036854.775807 (`Int64.min` micro-units is excluded so that negation never
/// overflows).
public struct Quantity: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Fraction digits kept exactly.
    public static let fractionDigits = 6
    /// Micro-units in one unit.
    public static let scale: Int64 = 1_000_000
    public static let zero = Quantity(microUnits: 0)
    /// The largest quantity, 9223372036854.775807.
    public static let max = Quantity(microUnits: .max)
    /// The smallest quantity, -9223372036854.775807.
    public static let min = Quantity(microUnits: -.max)

    /// The value in millionths: 12.5 is 12_500_000.
    public let microUnits: Int64

    /// A quantity of `microUnits` millionths. `Int64.min` is out of range and traps.
    public init(microUnits: Int64) {
        precondition(microUnits != .min, "Quantity(microUnits:) out of range")
        self.microUnits = microUnits
    }

    /// A whole number of units; `nil` when out of range.
    public init?(units: Int64) {
        let (micro, overflow) = units.multipliedReportingOverflow(by: Self.scale)
        guard !overflow, micro != .min else { return nil }
        microUnits = micro
    }

    /// Parses a JSON number literal or a plain decimal string: an optional `-`, one or more
    /// digits, an optional `.` with one or more digits, and an optional exponent (`e`/`E`,
    /// optional sign, digits) applied exactly. `nil` for anything else, for more than six
    /// fraction digits once the exponent is applied (trailing zeros do not count), and out of
    /// range. ``parse(_:)`` says why.
    public init?(parsing text: String) {
        guard let value = try? Self.parse(text) else { return nil }
        self = value
    }

    /// A quantity as JSON carries it, a number or a decimal string (``init(parsing:)``); `nil`
    /// for anything else, and for no value.
    public init?(json value: JSONValue?) {
        switch value {
        case .number(let text), .string(let text): self.init(parsing: text)
        default: return nil
        }
    }

    /// ``init(parsing:)`` with the reason for a failure.
    public static func parse(_ text: String) throws(QuantityParseError) -> Quantity {
        var text = text
        return try text.withUTF8 { QuantityParser.parse($0) }.get()
    }

    // MARK: Properties

    public var isZero: Bool { microUnits == 0 }

    /// -1, 0 or 1.
    public var signum: Int { Int(microUnits.signum()) }

    /// The canonical text: no exponent, no trailing fraction zeros, no `.` for whole numbers,
    /// `-` for negatives ("12.5", "-3", "0.000001").
    public var description: String {
        let magnitude = microUnits.magnitude
        let whole = magnitude / UInt64(Self.scale)
        var fraction = magnitude % UInt64(Self.scale)
        var text = microUnits < 0 ? "-" : ""
        text += String(whole)
        guard fraction != 0 else { return text }
        var digits = Self.fractionDigits
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let fractionText = String(fraction)
        text += "."
        text += String(repeating: "0", count: digits - fractionText.count)
        text += fractionText
        return text
    }

    /// The quantity as a JSON number in canonical form.
    public var jsonValue: JSONValue { .number(description) }

    // MARK: Arithmetic

    public static func < (lhs: Quantity, rhs: Quantity) -> Bool {
        lhs.microUnits < rhs.microUnits
    }

    /// The sum, or `nil` when it is out of range.
    public func adding(_ other: Quantity) -> Quantity? {
        let (sum, overflow) = microUnits.addingReportingOverflow(other.microUnits)
        guard !overflow, sum != .min else { return nil }
        return Quantity(microUnits: sum)
    }

    /// The difference, or `nil` when it is out of range.
    public func subtracting(_ other: Quantity) -> Quantity? {
        adding(-other)
    }

    /// The sum; traps when out of range, like integer `+`.
    public static func + (lhs: Quantity, rhs: Quantity) -> Quantity {
        guard let sum = lhs.adding(rhs) else { preconditionFailure("Quantity addition out of range") }
        return sum
    }

    /// The difference; traps when out of range, like integer `-`.
    public static func - (lhs: Quantity, rhs: Quantity) -> Quantity {
        guard let difference = lhs.subtracting(rhs) else { preconditionFailure("Quantity subtraction out of range") }
        return difference
    }

    public static prefix func - (operand: Quantity) -> Quantity {
        Quantity(microUnits: -operand.microUnits)
    }

    public static func += (lhs: inout Quantity, rhs: Quantity) {
        lhs = lhs + rhs
    }

    public static func -= (lhs: inout Quantity, rhs: Quantity) {
        lhs = lhs - rhs
    }
}

extension Quantity: ExpressibleByIntegerLiteral {
    /// A whole number of units; traps when out of range.
    public init(integerLiteral value: Int64) {
        guard let quantity = Quantity(units: value) else { preconditionFailure("Quantity literal out of range") }
        self = quantity
    }
}

/// Why a text is not a ``Quantity``. The description does not repeat the text.
public struct QuantityParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case empty = "is empty"
            case invalidSyntax = "is not a decimal number"
            case tooManyFractionDigits = "has more than 6 fraction digits"
            case outOfRange = "is out of range (at most ±9223372036854.775807)"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        public static let empty = Code(.empty)
        /// Not `-? digits (. digits)? ([eE] [+-]? digits)?` (this covers NaN, Infinity, spaces).
        public static let invalidSyntax = Code(.invalidSyntax)
        /// Significant digits beyond the sixth after the point.
        public static let tooManyFractionDigits = Code(.tooManyFractionDigits)
        public static let outOfRange = Code(.outOfRange)

        public var description: String { base.rawValue }
    }

    public let code: Code

    public init(code: Code) {
        self.code = code
    }

    /// "quantity is not a decimal number", and so on.
    public var description: String { "quantity \(code)" }
}

private enum QuantityParser {
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<Quantity, QuantityParseError> {
        guard !bytes.isEmpty else { return .failure(QuantityParseError(code: .empty)) }
        let syntax = Result<Quantity, QuantityParseError>.failure(QuantityParseError(code: .invalidSyntax))
        let zero = UInt8(ascii: "0")
        func isDigit(_ byte: UInt8) -> Bool { byte &- zero < 10 }

        var index = 0
        let negative = bytes[0] == UInt8(ascii: "-")
        if negative { index += 1 }

        let integerStart = index
        while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        let integerEnd = index
        guard integerEnd > integerStart else { return syntax }

        var fractionStart = index
        var fractionEnd = index
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            fractionStart = index
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
            fractionEnd = index
            guard fractionEnd > fractionStart else { return syntax }
        }

        // The exponent saturates far beyond any value that could still be in range.
        var exponent = 0
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            var exponentNegative = false
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") || bytes[index] == UInt8(ascii: "+") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            let exponentStart = index
            while index < bytes.count, isDigit(bytes[index]) {
                exponent = Swift.min(exponent * 10 + Int(bytes[index] - zero), 1_000_000)
                index += 1
            }
            guard index > exponentStart else { return syntax }
            if exponentNegative { exponent = -exponent }
        }
        guard index == bytes.count else { return syntax }

        // The digits of integer and fraction, read as one integer D; the value is D × 10^-scale.
        func digit(at position: Int) -> UInt8 {
            let offset = position < integerEnd - integerStart
                ? integerStart + position
                : fractionStart + position - (integerEnd - integerStart)
            return bytes[offset] - zero
        }
        let digitCount = (integerEnd - integerStart) + (fractionEnd - fractionStart)
        var first = 0
        while first < digitCount, digit(at: first) == 0 { first += 1 }
        guard first < digitCount else { return .success(.zero) }
        var last = digitCount - 1
        while digit(at: last) == 0 { last -= 1 }

        // Drop trailing zeros: they only move the decimal point.
        let scale = (fractionEnd - fractionStart) - exponent - (digitCount - 1 - last)
        guard scale <= Quantity.fractionDigits else {
            return .failure(QuantityParseError(code: .tooManyFractionDigits))
        }
        let outOfRange = Result<Quantity, QuantityParseError>.failure(QuantityParseError(code: .outOfRange))
        // micro = D × 10^(6 - scale) ≥ D, so more than 19 significant digits cannot fit.
        guard last - first < 19 else { return outOfRange }
        var micro: Int64 = 0
        for position in first...last {
            let (shifted, overflow1) = micro.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = shifted.addingReportingOverflow(Int64(digit(at: position)))
            guard !overflow1, !overflow2 else { return outOfRange }
            micro = added
        }
        var shift = Quantity.fractionDigits - scale
        guard shift <= 18 else { return outOfRange }
        while shift > 0 {
            let (shifted, overflow) = micro.multipliedReportingOverflow(by: 10)
            guard !overflow else { return outOfRange }
            micro = shifted
            shift -= 1
        }
        return .success(Quantity(microUnits: negative ? -micro : micro))
    }
}
