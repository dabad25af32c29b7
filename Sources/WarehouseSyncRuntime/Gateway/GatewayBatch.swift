import WarehouseSyncCore

/// The events of a `/events:batch` body: a JSON array of event objects, or JSON lines (one event
/// per line; blank lines skipped). Each event comes out as the bytes to validate and publish.
struct GatewayBatch: Sendable {
    struct Item: Sendable {
        let body: [UInt8]
        /// For JSON lines: the 1-based line the event was on.
        let line: Int?
    }

    let items: [Item]

    /// Throws only when the body as a whole is unusable (an array that is not JSON); a bad line
    /// of JSON lines is an item that fails validation, reported with the rest.
    init(parsing body: [UInt8]) throws(EventValidationError) {
        let whitespace: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        if body.first(where: { !whitespace.contains($0) }) == UInt8(ascii: "[") {
            let value: JSONValue
            do throws(JSONParseError) {
                value = try JSONValue(parsing: body)
            } catch {
                throw EventValidationError(violations: [.init(field: "body", rule: "must be a JSON array of events or JSON lines: \(error)")])
            }
            // Elements are written back compactly: numbers keep their literal text, members their order.
            items = (value.arrayValue ?? []).map { Item(body: $0.serializedBytes(), line: nil) }
        } else {
            var items: [Item] = []
            var lineNumber = 0
            for rawLine in body.split(separator: 0x0A, omittingEmptySubsequences: false) {
                lineNumber += 1
                guard rawLine.contains(where: { !whitespace.contains($0) }) else { continue }
                items.append(Item(body: Array(rawLine.last == 0x0D ? rawLine.dropLast() : rawLine), line: lineNumber))
            }
            self.items = items
        }
    }
}
