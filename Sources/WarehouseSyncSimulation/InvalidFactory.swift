import WarehouseSyncCore

/// Makes deliberately invalid messages from real events of the day: a fresh eventId, then one
/// defect of the requested kind. The body keeps the template's key and sequence, so a pipeline
/// that let it through would visibly disturb that key.
struct InvalidFactory {
    let options: SimulationOptions
    let catalogue: Catalogue
    let events: [SimulatedEvent]
    /// Indexes of the events that may serve as templates.
    let candidates: [Int]
    private let decoder = EventDecoder()

    init(options: SimulationOptions, catalogue: Catalogue, events: [SimulatedEvent], candidates: [Int]) {
        self.options = options
        self.catalogue = catalogue
        self.events = events
        self.candidates = candidates.isEmpty ? Array(events.indices) : candidates
    }

    /// The message, the field its validation error names first, and that error.
    mutating func make(_ kind: InvalidKind, number: Int, random: inout SeededRandom)
        -> (SimulatedMessage, field: String, error: String)
    {
        let eventId = "evt-\(options.seed)-bad-\(pad(number, 6))"
        var template = events[random.pick(candidates)]
        var kind = kind
        if kind == .zeroQuantity {
            // A zero is invalid only in an inventory delta and in a shipped line.
            var found: SimulatedEvent?
            for _ in 0..<64 {
                let event = events[random.pick(candidates)]
                if Self.acceptsZeroDefect(event) {
                    found = event
                    break
                }
            }
            if let found { template = found } else { kind = .missingField }
        }
        guard case .object(var object)? = try? JSONValue(parsing: template.body) else {
            preconditionFailure("the simulator's own events are JSON objects")
        }
        object["eventId"] = .string(eventId)
        var routingKey = template.routingKey
        let field: String
        var body: [UInt8]
        var bodyEventId: String? = eventId

        switch kind {
        case .malformedJSON:
            field = "body"
            bodyEventId = nil
            let valid = JSONValue.object(object).serializedBytes()
            switch random.below(4) {
            case 0: body = Array(valid.prefix(valid.count * 2 / 3))  // cut off mid-message
            case 1: body = Array(valid.dropLast()) + Array(",}".utf8)  // trailing comma
            case 2: body = Self.replacingFirst(#""sequence":"#, with: "sequence:", in: valid)  // bare key
            default: body = Self.replacingFirst(#"{"schema":"#, with: "{'schema':", in: valid)  // single quotes
            }
        case .missingField:
            let choices = Self.requiredFields(of: template)
            let missing = random.pick(choices)
            object[missing] = nil
            field = missing
            body = JSONValue.object(object).serializedBytes()
        case .zeroQuantity:
            if template.stream == .inventory {
                object["quantity"] = .number(object["quantity"]?.numberLiteral?.contains(".") == true ? "0.000" : "0")
                field = "quantity"
            } else {
                guard case .array(var lines)? = object["lines"], case .object(var first)? = lines.first else {
                    preconditionFailure("a shipped shipment has lines")
                }
                first["quantity"] = .number("0")
                lines[0] = .object(first)
                object["lines"] = .array(lines)
                field = "lines[0].quantity"
            }
            body = JSONValue.object(object).serializedBytes()
        case .badWarehouse:
            let bad = template.warehouse + random.pick(["/DOCK-7", " EAST", "#2", ":B", "\u{00D8}"])
            object["warehouse"] = .string(bad)
            routingKey = template.stream.routingKey(warehouse: bad)
            field = "warehouse"
            body = JSONValue.object(object).serializedBytes()
        case .unknownStatus:
            let codes: [String] = switch template.stream {
            case .inventory: ["ONHAND", "BLOCKED", "Available", "SCRAP"]
            case .shipment: ["LOADED", "Shipped", "IN_TRANSIT", "RETURNED"]
            case .receipt: ["RCVD", "CHECKED_IN", "Received", "PUTAWAY"]
            }
            object["status"] = .string(random.pick(codes))
            field = "status"
            body = JSONValue.object(object).serializedBytes()
        case .routingMismatch:
            if catalogue.warehouses.count > 1, random.chance(0.5) {
                let others = catalogue.warehouses.filter { $0 != template.warehouse }
                routingKey = template.stream.routingKey(warehouse: random.pick(others))
            } else {
                let others = EventStream.allCases.filter { $0 != template.stream }
                routingKey = random.pick(others).routingKey(warehouse: template.warehouse)
            }
            field = "routingKey"
            body = JSONValue.object(object).serializedBytes()
        }

        let error: String
        do throws(EventValidationError) {
            _ = try decoder.decode(body, routingKey: routingKey)
            preconditionFailure("invalid message of kind \(kind) decoded")
        } catch let failure {
            error = failure.description
        }
        let message = SimulatedMessage(kind: .invalid, routingKey: routingKey, body: body, eventId: bodyEventId, invalidKind: kind)
        return (message, field, error)
    }

    private static func acceptsZeroDefect(_ event: SimulatedEvent) -> Bool {
        switch event.effect {
        case .inventory: true
        case .shipment(let status, _): status == .shipped
        case .receipt: false
        }
    }

    /// Fields whose absence the decoder reports as `<field>: is required…`, and as the first violation.
    private static func requiredFields(of event: SimulatedEvent) -> [String] {
        let header = ["occurredAt", "warehouse", "sequence"]
        switch event.effect {
        case .inventory: return header + ["sku", "quantity", "uom", "status", "reason"]
        case .shipment(let status, _):
            return header + ["shipmentId", "orderRef", "status"] + (status == .shipped ? ["lines"] : [])
        case .receipt: return header + ["receiptId", "purchaseOrderRef", "supplier", "status", "lines"]
        }
    }

    private static func replacingFirst(_ target: String, with replacement: String, in bytes: [UInt8]) -> [UInt8] {
        let needle = Array(target.utf8)
        guard needle.count <= bytes.count else { return bytes }
        for start in 0...(bytes.count - needle.count) where bytes[start..<(start + needle.count)].elementsEqual(needle) {
            return Array(bytes[..<start]) + Array(replacement.utf8) + Array(bytes[(start + needle.count)...])
        }
        preconditionFailure("'\(target)' not in the template")
    }
}
