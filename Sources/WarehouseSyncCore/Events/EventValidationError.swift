/// Everything wrong with an event body, each problem as a field path and the rule it breaks.
///
/// Field paths are the body's field names (`sequence`), with indexes into arrays
/// (`lines[2].quantity`), or `body` (not JSON, not an object, too large) or `routingKey`. Rules
/// are short phrases ("is required", "must be an integer ≥ 1"). The description is at most
/// ``maxDescriptionLength`` bytes of UTF-8, so it fits the `whsync-error` dead-letter header;
/// it holds no body data beyond the expected routing key.
public struct EventValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One broken rule.
    public struct Violation: Sendable, Hashable, CustomStringConvertible {
        public let field: String
        public let rule: String

        public init(field: String, rule: String) {
            self.field = field
            self.rule = rule
        }

        /// `field: rule`.
        public var description: String { "\(field): \(rule)" }
    }

    /// The bound on ``description``, in UTF-8 bytes (and so also in characters).
    public static let maxDescriptionLength = 512

    /// In the order of the contract's fields; never empty when thrown by ``EventDecoder``.
    public let violations: [Violation]

    public init(violations: [Violation]) {
        self.violations = violations
    }

    /// The violations as `field: rule; field: rule`. When that is longer than
    /// ``maxDescriptionLength`` bytes, as many whole violations as fit, then `; … (N more)`.
    public var description: String {
        let parts = violations.map(\.description)
        let limit = Self.maxDescriptionLength
        let full = parts.joined(separator: "; ")
        guard full.utf8.count > limit else { return full }

        var text = ""
        var included = 0
        while included < parts.count {
            let next = included == 0 ? parts[0] : text + "; " + parts[included]
            let rest = parts.count - included - 1
            let suffixLength = rest == 0 ? 0 : "; … (\(rest) more)".utf8.count
            guard next.utf8.count + suffixLength <= limit else { break }
            text = next
            included += 1
        }
        if included > 0 {
            return text + "; … (\(parts.count - included) more)"
        }
        // Not even the first violation fits: cut it.
        let rest = parts.count - 1
        let suffix = rest == 0 ? "…" : "… (\(rest) more)"
        var budget = limit - suffix.utf8.count
        var cut = ""
        for character in parts[0] {
            let length = character.utf8.count
            guard length <= budget else { break }
            cut.append(character)
            budget -= length
        }
        return cut + suffix
    }
}
