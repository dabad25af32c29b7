import WarehouseSyncCore

/// The events of a `/events:batch` body: a JSON array of event objects, or JSON lines (one event
/// per line; blank lines skipped). Each event comes out as the bytes to validate and publish.
struct GatewayBatch: Sendable {
    struct Item: Sendable {
        let body: [UInt8]
        /// For JSON lines: the 1-based line the event was on.
        let line: Int?
    }

    enum Problem: Error {
        /// The body as a whole is unusable (an array that is not JSON).
        case invalid(EventValidationError)
        /// More than the limit: counted before anything is built, so a body of a million tiny
        /// elements costs a scan, not a million values.
        case tooMany(atLeast: Int)
    }

    let items: [Item]

    /// A bad line of JSON lines is an item that fails validation, reported with the rest.
    init(parsing body: [UInt8], maxEvents: Int) throws(Problem) {
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        if body.first(where: { !whitespace.contains($0) }) == UInt8(ascii: "[") {
            let count = Self.topLevelElements(body)
            guard count <= maxEvents else { throw .tooMany(atLeast: count) }
            let value: JSONValue
            do throws(JSONParseError) {
                value = try JSONValue(parsing: body)
            } catch {
                throw .invalid(EventValidationError(violations: [
                    .init(field: "body", rule: "must be a JSON array of events or JSON lines: \(error)")
                ]))
            }
            // Elements are written back compactly: numbers keep their literal text, members their order.
            items = (value.arrayValue ?? []).map { Item(body: $0.serializedBytes(), line: nil) }
        } else {
            var items: [Item] = []
            var lineNumber = 0
            for rawLine in body.split(separator: 0x0A, omittingEmptySubsequences: false) {
                lineNumber += 1
                guard rawLine.contains(where: { !whitespace.contains($0) }) else { continue }
                guard items.count < maxEvents else { throw .tooMany(atLeast: items.count + 1) }
                items.append(Item(body: Array(rawLine.last == 0x0D ? rawLine.dropLast() : rawLine), line: lineNumber))
            }
            self.items = items
        }
    }

    /// The elements of the outermost array, counted by its commas outside strings and nested
    /// values (an estimate for malformed JSON, which the parser then refuses anyway).
    private static func topLevelElements(_ body: [UInt8]) -> Int {
        var depth = 0
        var inString = false
        var escaped = false
        var commas = 0
        var sawElement = false
        for byte in body {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
                if depth == 1 { sawElement = true }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if depth == 1 { sawElement = true }
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
            case UInt8(ascii: ","):
                if depth == 1 { commas += 1 }
            case 0x20, 0x09, 0x0A, 0x0D:
                break
            default:
                if depth == 1 { sawElement = true }
            }
        }
        return sawElement ? commas + 1 : 0
    }
}
