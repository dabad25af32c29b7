import WarehouseSyncCore

/// Generates the undisturbed day: a discrete-event simulation of receipts, shipments and stock
/// movements over `W` warehouses, which keeps the WMS's own stock non-negative in emission order
/// and numbers each key's events 1, 2, 3….
///
/// Activities start from 06:00 to 22:00, spread by the share of the day's events committed so far
/// (follow-ups of late ones run past 22:00, some past midnight); each one knows at its start how many events
/// it will emit (so the day has exactly `options.events`), emits the first now and schedules the
/// rest minutes to hours later. Stock a shipment will take is reserved when it is packed.
struct DayGenerator {
    let options: SimulationOptions
    let catalogue: Catalogue
    private var random: SeededRandom
    private let skuCount: Int
    private let dayStart: Int64  // milliseconds since 1970
    /// Jitter of activity starts: the window's share of one event.
    private let meanGap: Int64
    /// New activities start from 06:00 to 22:00; their follow-ups may run later.
    private static let activityWindow: Int64 = 16 * 3_600_000

    private var events: [SimulatedEvent] = []
    private var nextSequence: [String: Int64] = [:]
    /// Micro-units per (warehouse, SKU, status): index `(w * skuCount + s) * 6 + status`.
    private var stock: [Int64]
    /// Micro-units of `available` reserved by packed shipments, per (warehouse, SKU).
    private var reserved: [Int64]
    private var lastEmitted: Int64 = 0
    private var counters = Counters()
    private var pending = FollowUpQueue()

    private struct Counters {
        var event = 0
        var shipment = 0
        var receipt = 0
        var move = 0
        var followUp = 0
    }

    init(options: SimulationOptions, catalogue: Catalogue) {
        self.options = options
        self.catalogue = catalogue
        random = SeededRandom(seed: options.seed, stream: 1)
        skuCount = catalogue.skus.count
        dayStart = (SimulationOptions.dayStart(options.date) ?? 0) * 1000 + 6 * 3_600_000
        meanGap = max(1, Self.activityWindow / Int64(options.events))
        stock = Array(repeating: 0, count: catalogue.warehouses.count * catalogue.skus.count * 6)
        reserved = Array(repeating: 0, count: catalogue.warehouses.count * catalogue.skus.count)
        lastEmitted = dayStart
    }

    // MARK: The loop

    mutating func run() -> [SimulatedEvent] {
        let budget = options.events
        var committed = 0
        var nextStart = dayStart
        events.reserveCapacity(budget)
        while true {
            let canStart = committed < budget
            if let time = pending.peekTime, !canStart || time <= nextStart {
                let item = pending.pop()
                perform(item.followUp, at: item.time)
                continue
            }
            guard canStart else { break }
            committed += startActivity(at: nextStart, remaining: budget - committed)
            // Starts spread over 06:00-22:00 in proportion to the events committed so far.
            let due = dayStart + Self.activityWindow * Int64(committed) / Int64(budget)
            nextStart = max(nextStart, due + Int64(random.below(Int(meanGap) + 1)))
        }
        precondition(events.count == budget, "DayGenerator emitted \(events.count) events, not \(budget)")
        return events
    }

    // MARK: Activities

    private enum Activity: CaseIterable {
        case receipt, shipment, adjustment, cycleCount, pick, qualityHold, damage, customerReturn, transfer, staging

        var weight: Int {
            switch self {
            case .receipt: 16
            case .shipment: 30
            case .adjustment: 6
            case .cycleCount: 8
            case .pick: 7
            case .qualityHold: 7
            case .damage: 5
            case .customerReturn: 7
            case .transfer: 7
            case .staging: 7
            }
        }

        var minimumCost: Int {
            switch self {
            case .receipt, .shipment, .damage: 2
            case .adjustment, .cycleCount, .pick: 1
            case .customerReturn, .staging: 3
            case .qualityHold, .transfer: 4
            }
        }
    }

    /// Starts one activity that emits at most `remaining` events; returns how many it will emit.
    private mutating func startActivity(at time: Int64, remaining: Int) -> Int {
        let affordable = Activity.allCases.filter { $0.minimumCost <= remaining }
        let activity = affordable[random.weighted(affordable.map(\.weight))]
        let warehouse = random.below(catalogue.warehouses.count)
        if let cost = start(activity, warehouse: warehouse, at: time, remaining: remaining) {
            return cost
        }
        // Not feasible (no stock to take): bring stock in instead.
        if remaining >= 2, let cost = start(.receipt, warehouse: warehouse, at: time, remaining: remaining) {
            return cost
        }
        return startFoundStock(warehouse: warehouse, at: time)
    }

    private mutating func start(_ activity: Activity, warehouse w: Int, at time: Int64, remaining: Int) -> Int? {
        switch activity {
        case .receipt: return startReceipt(warehouse: w, at: time)
        case .shipment: return startShipment(warehouse: w, at: time, remaining: remaining)
        case .adjustment: return startAdjustment(warehouse: w, at: time, reason: .adjustment)
        case .cycleCount: return startAdjustment(warehouse: w, at: time, reason: .cycleCount)
        case .pick: return startPick(warehouse: w, at: time)
        case .qualityHold: return startQualityHold(warehouse: w, at: time)
        case .damage: return startDamage(warehouse: w, at: time)
        case .customerReturn: return startReturn(warehouse: w, at: time)
        case .transfer: return startTransfer(warehouse: w, at: time)
        case .staging: return startStaging(warehouse: w, at: time, remaining: remaining)
        }
    }

    private static let suppliers = [
        "ACME-SUPPLY", "NORDIC-PARTS", "BLUE-RIVER", "KESTREL-FOODS", "ORION-TEXTILES", "SUMMIT-TOOLS",
        "DELTA-PACK", "IBERIA-AGRO",
    ]
    private static let carriers = ["DHL", "UPS", "DPD", "GLS", "FEDEX", "POSTNL"]

    private mutating func startReceipt(warehouse w: Int, at time: Int64) -> Int {
        counters.receipt += 1
        let number = counters.receipt
        let receipt = ReceiptState(
            warehouse: w, receiptId: "RCV-\(options.seed)-\(pad(number, 6))",
            purchaseOrderRef: "PO-\(options.seed)-\(pad(number, 6))", supplier: random.pick(Self.suppliers),
            lines: distinctSKUs(count: random.int(in: 1...4)).map { s in
                let expected = receiptQuantity(s)
                var received = expected
                if random.chance(0.02) {
                    received = 0  // nothing of this line arrived
                } else if random.chance(0.12) {
                    // short or over delivery: 80-110 % of what was expected, in whole units
                    let quantum = self.quantum(s)
                    let percent = Int64(random.int(in: 80...110))
                    received = max(quantum, expected / quantum * percent / 100 * quantum)
                }
                return ReceiptState.Line(sku: s, expected: expected, received: received, lot: lot(s))
            }
        )
        emitReceipt(receipt, status: .received, at: time)
        for line in receipt.lines { stock[index(w, line.sku, .available)] += line.received }
        schedule(.receiptPutaway(receipt), at: time + minutes(10...120))
        return 2
    }

    private mutating func startShipment(warehouse w: Int, at time: Int64, remaining: Int) -> Int? {
        var lines: [ShipmentState.Line] = []
        let wanted = random.int(in: 1...3)
        var tried = Set<Int>()
        for _ in 0..<(wanted * 4) where lines.count < wanted {
            let s = random.below(skuCount)
            guard tried.insert(s).inserted else { continue }
            let free = freeAvailable(w, s)
            guard free >= quantum(s) else { continue }
            let quantity = min(free, smallQuantity(s, units: 1...24, cases: 1...6, kilograms: 500...40_000))
            reserved[w * skuCount + s] += quantity
            lines.append(.init(sku: s, quantity: quantity, lot: lot(s)))
        }
        guard !lines.isEmpty else { return nil }
        counters.shipment += 1
        let number = counters.shipment
        let cancelled = remaining < 3 || random.chance(0.08)
        let shipment = ShipmentState(
            warehouse: w, shipmentId: "SHP-\(options.seed)-\(pad(number, 6))",
            orderRef: "SO-\(options.seed)-\(pad(number, 6))", lines: lines, carrier: random.pick(Self.carriers),
            trackingNumber: "TRK\(pad(Int(random.below(1_000_000_000)), 9))"
        )
        emitShipment(shipment, status: .packed, at: time)
        if cancelled {
            schedule(.shipmentCancel(shipment), at: time + minutes(5...90))
            return 2
        }
        schedule(.shipmentShip(shipment), at: time + minutes(5...90))
        return 3
    }

    /// A stock correction in `available`: up or down, down only when there is free stock.
    private mutating func startAdjustment(warehouse w: Int, at time: Int64, reason: InventoryReason) -> Int {
        let s = random.below(skuCount)
        var quantity = smallQuantity(s, units: 1...5, cases: 1...2, kilograms: 10...2_000)
        let free = freeAvailable(w, s)
        if free >= quantity, random.chance(0.55) { quantity = -quantity }
        emitDelta(warehouse: w, sku: s, status: .available, quantity: quantity, reason: reason, at: time,
                  correlationId: nil, location: binLocation())
        return 1
    }

    private mutating func startFoundStock(warehouse w: Int, at time: Int64) -> Int {
        let s = random.below(skuCount)
        emitDelta(warehouse: w, sku: s, status: .available, quantity: smallQuantity(s, units: 1...5, cases: 1...2, kilograms: 10...2_000),
                  reason: .adjustment, at: time, correlationId: nil, location: binLocation())
        return 1
    }

    /// A pick for kitting or production: stock leaves `available`.
    private mutating func startPick(warehouse w: Int, at time: Int64) -> Int? {
        guard let (s, quantity) = takeable(w, units: 1...10, cases: 1...3, kilograms: 100...10_000) else { return nil }
        emitDelta(warehouse: w, sku: s, status: .available, quantity: -quantity, reason: .pick, at: time,
                  correlationId: nil, location: binLocation())
        return 1
    }

    /// `available` → `quality-hold`; later released to `available`, or a fifth of the time
    /// found `damaged`.
    private mutating func startQualityHold(warehouse w: Int, at time: Int64) -> Int? {
        guard let (s, quantity) = takeable(w, units: 1...30, cases: 1...8, kilograms: 1_000...50_000) else { return nil }
        let correlation = nextMove()
        emitDelta(warehouse: w, sku: s, status: .available, quantity: -quantity, reason: .adjustment, at: time,
                  correlationId: correlation, location: binLocation())
        emitDelta(warehouse: w, sku: s, status: .qualityHold, quantity: quantity, reason: .adjustment, at: time,
                  correlationId: correlation, location: "QC-01")
        schedule(.releaseHold(warehouse: w, sku: s, quantity: quantity, damaged: random.chance(0.2), correlation: correlation),
                 at: time + minutes(30...240))
        return 4
    }

    /// `available` → `damaged`.
    private mutating func startDamage(warehouse w: Int, at time: Int64) -> Int? {
        guard let (s, quantity) = takeable(w, units: 1...3, cases: 1...1, kilograms: 100...5_000) else { return nil }
        let correlation = nextMove()
        emitDelta(warehouse: w, sku: s, status: .available, quantity: -quantity, reason: .adjustment, at: time,
                  correlationId: correlation, location: binLocation())
        emitDelta(warehouse: w, sku: s, status: .damaged, quantity: quantity, reason: .adjustment, at: time,
                  correlationId: correlation, location: "DMG-01")
        return 2
    }

    /// A customer return lands in `quarantined`; later it is put away to `available`.
    private mutating func startReturn(warehouse w: Int, at time: Int64) -> Int {
        let s = random.below(skuCount)
        let quantity = smallQuantity(s, units: 1...6, cases: 1...2, kilograms: 200...8_000)
        let correlation = nextMove()
        emitDelta(warehouse: w, sku: s, status: .quarantined, quantity: quantity, reason: .return, at: time,
                  correlationId: correlation, location: "RET-01")
        schedule(.returnPutaway(warehouse: w, sku: s, quantity: quantity, correlation: correlation),
                 at: time + minutes(20...180))
        return 3
    }

    /// `available` → `in-transit` in one warehouse; later `in-transit` out of it and `available`
    /// into another.
    private mutating func startTransfer(warehouse w: Int, at time: Int64) -> Int? {
        guard catalogue.warehouses.count > 1 else { return nil }
        guard let (s, quantity) = takeable(w, units: 5...50, cases: 2...12, kilograms: 5_000...100_000) else { return nil }
        var destination = random.below(catalogue.warehouses.count - 1)
        if destination >= w { destination += 1 }
        let correlation = nextMove()
        emitDelta(warehouse: w, sku: s, status: .available, quantity: -quantity, reason: .transfer, at: time,
                  correlationId: correlation, location: binLocation())
        emitDelta(warehouse: w, sku: s, status: .inTransit, quantity: quantity, reason: .transfer, at: time,
                  correlationId: correlation, location: nil)
        schedule(.transferArrive(from: w, to: destination, sku: s, quantity: quantity, correlation: correlation),
                 at: time + minutes(60...360))
        return 4
    }

    /// Picked to a staging lane (`available` → `allocated`); later consumed, or put back.
    private mutating func startStaging(warehouse w: Int, at time: Int64, remaining: Int) -> Int? {
        guard let (s, quantity) = takeable(w, units: 1...20, cases: 1...5, kilograms: 500...20_000) else { return nil }
        let correlation = nextMove()
        let putBack = remaining >= 4 && random.chance(0.4)
        let lane = "STAGE-\(pad(random.int(in: 1...12), 2))"
        emitDelta(warehouse: w, sku: s, status: .available, quantity: -quantity, reason: .pick, at: time,
                  correlationId: correlation, location: binLocation())
        emitDelta(warehouse: w, sku: s, status: .allocated, quantity: quantity, reason: .pick, at: time,
                  correlationId: correlation, location: lane)
        schedule(.stagingDone(warehouse: w, sku: s, quantity: quantity, putBack: putBack, correlation: correlation, lane: lane),
                 at: time + minutes(15...120))
        return putBack ? 4 : 3
    }

    // MARK: Follow-ups

    private mutating func perform(_ followUp: FollowUp, at time: Int64) {
        switch followUp {
        case .receiptPutaway(let receipt):
            emitReceipt(receipt, status: .putawayComplete, at: time)
        case .shipmentShip(let shipment):
            emitShipment(shipment, status: .shipped, at: time)
            for line in shipment.lines {
                reserved[shipment.warehouse * skuCount + line.sku] -= line.quantity
                stock[index(shipment.warehouse, line.sku, .available)] -= line.quantity
            }
            schedule(.shipmentDeliver(shipment), at: time + minutes(60...300))
        case .shipmentDeliver(let shipment):
            emitShipment(shipment, status: .delivered, at: time)
        case .shipmentCancel(let shipment):
            emitShipment(shipment, status: .cancelled, at: time)
            for line in shipment.lines { reserved[shipment.warehouse * skuCount + line.sku] -= line.quantity }
        case .releaseHold(let w, let s, let quantity, let damaged, let correlation):
            emitDelta(warehouse: w, sku: s, status: .qualityHold, quantity: -quantity, reason: .adjustment, at: time,
                      correlationId: correlation, location: "QC-01")
            emitDelta(warehouse: w, sku: s, status: damaged ? .damaged : .available, quantity: quantity, reason: .adjustment,
                      at: time, correlationId: correlation, location: damaged ? "DMG-01" : binLocation())
        case .returnPutaway(let w, let s, let quantity, let correlation):
            emitDelta(warehouse: w, sku: s, status: .quarantined, quantity: -quantity, reason: .putaway, at: time,
                      correlationId: correlation, location: "RET-01")
            emitDelta(warehouse: w, sku: s, status: .available, quantity: quantity, reason: .putaway, at: time,
                      correlationId: correlation, location: binLocation())
        case .transferArrive(let from, let to, let s, let quantity, let correlation):
            emitDelta(warehouse: from, sku: s, status: .inTransit, quantity: -quantity, reason: .transfer, at: time,
                      correlationId: correlation, location: nil)
            emitDelta(warehouse: to, sku: s, status: .available, quantity: quantity, reason: .transfer, at: time,
                      correlationId: correlation, location: binLocation())
        case .stagingDone(let w, let s, let quantity, let putBack, let correlation, let lane):
            emitDelta(warehouse: w, sku: s, status: .allocated, quantity: -quantity, reason: putBack ? .putaway : .pick,
                      at: time, correlationId: correlation, location: lane)
            if putBack {
                emitDelta(warehouse: w, sku: s, status: .available, quantity: quantity, reason: .putaway, at: time,
                          correlationId: correlation, location: binLocation())
            }
        }
    }

    private mutating func schedule(_ followUp: FollowUp, at time: Int64) {
        counters.followUp += 1
        pending.push(time: time, order: counters.followUp, followUp)
    }

    // MARK: Emitting

    private mutating func emitDelta(
        warehouse w: Int, sku s: Int, status: InventoryStatus, quantity: Int64, reason: InventoryReason, at time: Int64,
        correlationId: String?, location: String?
    ) {
        stock[index(w, s, status)] += quantity
        precondition(stock[index(w, s, status)] >= 0, "DayGenerator: negative \(status) stock")
        let sku = catalogue.skus[s]
        var fields: [(String, JSONValue)] = [
            ("sku", .string(sku.sku)), ("quantity", literal(quantity, s)), ("uom", .string(sku.uom)),
            ("status", .string(code(status, warehouse: w))), ("reason", .string(reason.rawValue)),
        ]
        if let location { fields.append(("location", .string(location))) }
        if let lot = lot(s) { fields.append(("lot", .string(lot))) }
        emit(.inventory, warehouse: w, keyId: sku.sku, at: time, correlationId: correlationId, fields: fields,
             effect: .inventory(sku: s, status: status, quantity: quantity))
    }

    private mutating func emitShipment(_ shipment: ShipmentState, status: ShipmentStatus, at time: Int64) {
        var fields: [(String, JSONValue)] = [
            ("shipmentId", .string(shipment.shipmentId)), ("orderRef", .string(shipment.orderRef)),
            ("status", .string(code(status, warehouse: shipment.warehouse))),
        ]
        let withLines = status == .packed || status == .shipped
        if withLines {
            fields.append(("lines", .array(shipment.lines.map { line in
                var members: [(String, JSONValue)] = [
                    ("sku", .string(catalogue.skus[line.sku].sku)), ("quantity", literal(line.quantity, line.sku)),
                    ("uom", .string(catalogue.skus[line.sku].uom)),
                ]
                if let lot = line.lot { members.append(("lot", .string(lot))) }
                return .object(JSONObject(uniqueKeysWithValues: members))
            })))
        }
        if status == .shipped || status == .delivered {
            fields.append(("carrier", .string(shipment.carrier)))
            fields.append(("trackingNumber", .string(shipment.trackingNumber)))
        }
        let lines = status == .shipped ? shipment.lines.map { SimulatedEvent.Line(sku: $0.sku, quantity: $0.quantity) } : []
        emit(.shipment, warehouse: shipment.warehouse, keyId: shipment.shipmentId, at: time, correlationId: shipment.orderRef,
             fields: fields, effect: .shipment(status: status, lines: lines))
    }

    private mutating func emitReceipt(_ receipt: ReceiptState, status: ReceiptStatus, at time: Int64) {
        let fields: [(String, JSONValue)] = [
            ("receiptId", .string(receipt.receiptId)), ("purchaseOrderRef", .string(receipt.purchaseOrderRef)),
            ("supplier", .string(receipt.supplier)), ("status", .string(code(status, warehouse: receipt.warehouse))),
            ("lines", .array(receipt.lines.map { line in
                var members: [(String, JSONValue)] = [
                    ("sku", .string(catalogue.skus[line.sku].sku)), ("quantityExpected", literal(line.expected, line.sku)),
                    ("quantityReceived", literal(line.received, line.sku)), ("uom", .string(catalogue.skus[line.sku].uom)),
                ]
                if let lot = line.lot { members.append(("lot", .string(lot))) }
                return .object(JSONObject(uniqueKeysWithValues: members))
            })),
        ]
        emit(.receipt, warehouse: receipt.warehouse, keyId: receipt.receiptId, at: time,
             correlationId: receipt.purchaseOrderRef, fields: fields,
             effect: .receipt(status: status, lines: receipt.lines.map { .init(sku: $0.sku, quantity: $0.received) }))
    }

    private mutating func emit(
        _ stream: EventStream, warehouse w: Int, keyId: String, at time: Int64, correlationId: String?,
        fields: [(String, JSONValue)], effect: SimulatedEvent.Effect
    ) {
        let warehouse = catalogue.warehouses[w]
        let key = warehouse + "/" + keyId
        let sequence = nextSequence[key, default: 1]
        nextSequence[key] = sequence + 1
        counters.event += 1
        // Never earlier than the previous event: the stream is in occurredAt order before disturbance.
        lastEmitted = max(lastEmitted, time)
        let eventId = "evt-\(options.seed)-\(pad(counters.event, 7))"
        var members: [(String, JSONValue)] = [
            ("schema", .string(stream.schema)), ("eventId", .string(eventId)),
            ("occurredAt", .string(TimeFormat.rfc3339(milliseconds: lastEmitted))), ("warehouse", .string(warehouse)),
            ("sequence", .number(sequence)),
        ]
        if let correlationId { members.append(("correlationId", .string(correlationId))) }
        members.append(("source", .string(options.source)))
        members += fields
        lastEmitted += Int64(random.int(in: 0...3))
        events.append(SimulatedEvent(
            eventId: eventId, stream: stream, warehouse: warehouse, keyId: keyId, sequence: sequence,
            routingKey: stream.routingKey(warehouse: warehouse),
            body: JSONValue.object(JSONObject(uniqueKeysWithValues: members)).serializedBytes(), effect: effect
        ))
    }

    // MARK: Stock and quantities

    private func index(_ w: Int, _ s: Int, _ status: InventoryStatus) -> Int {
        (w * skuCount + s) * 6 + Self.statusIndex(status)
    }

    static func statusIndex(_ status: InventoryStatus) -> Int {
        switch status {
        case .available: 0
        case .allocated: 1
        case .quarantined: 2
        case .inTransit: 3
        case .damaged: 4
        case .qualityHold: 5
        }
    }

    private func freeAvailable(_ w: Int, _ s: Int) -> Int64 {
        stock[index(w, s, .available)] - reserved[w * skuCount + s]
    }

    /// A SKU of warehouse `w` with free stock (a few random tries) and a quantity of it to take.
    private mutating func takeable(
        _ w: Int, units: ClosedRange<Int>, cases: ClosedRange<Int>, kilograms: ClosedRange<Int>
    ) -> (Int, Int64)? {
        for _ in 0..<8 {
            let s = random.below(skuCount)
            let free = freeAvailable(w, s)
            guard free >= quantum(s) else { continue }
            return (s, min(free, smallQuantity(s, units: units, cases: cases, kilograms: kilograms)))
        }
        return nil
    }

    /// The smallest step of a SKU's quantities: 1 unit, or 0.001 for `KG`.
    private func quantum(_ s: Int) -> Int64 {
        catalogue.skus[s].uom == "KG" ? 1_000 : 1_000_000
    }

    /// Micro-units: whole units for `EA`/`CS` (`units`/`cases`), grams for `KG` (`kilograms` in
    /// thousandths of a kilogram).
    private mutating func smallQuantity(
        _ s: Int, units: ClosedRange<Int>, cases: ClosedRange<Int>, kilograms: ClosedRange<Int>
    ) -> Int64 {
        switch catalogue.skus[s].uom {
        case "KG": Int64(random.int(in: kilograms)) * 1_000
        case "CS": Int64(random.int(in: cases)) * 1_000_000
        default: Int64(random.int(in: units)) * 1_000_000
        }
    }

    private mutating func receiptQuantity(_ s: Int) -> Int64 {
        smallQuantity(s, units: 20...400, cases: 2...40, kilograms: 10_000...500_000)
    }

    /// Exactly as the WMS writes it: whole numbers for `EA`/`CS`, three fraction digits for `KG`.
    private func literal(_ micro: Int64, _ s: Int) -> JSONValue {
        let sign = micro < 0 ? "-" : ""
        let magnitude = micro.magnitude
        let whole = magnitude / 1_000_000
        guard catalogue.skus[s].uom == "KG" else { return .number(sign + String(whole)) }
        return .number(sign + String(whole) + "." + pad(Int(magnitude % 1_000_000 / 1_000), 3))
    }

    private mutating func distinctSKUs(count: Int) -> [Int] {
        var chosen: [Int] = []
        for _ in 0..<(count * 3) where chosen.count < min(count, skuCount) {
            let s = random.below(skuCount)
            if !chosen.contains(s) { chosen.append(s) }
        }
        return chosen.isEmpty ? [random.below(skuCount)] : chosen
    }

    /// Lots for `KG` goods only.
    private func lot(_ s: Int) -> String? {
        guard catalogue.skus[s].uom == "KG" else { return nil }
        return "LOT-\(options.date.filter(\.isNumber).suffix(6))-\(pad(s % 7 + 1, 2))"
    }

    private mutating func binLocation() -> String {
        "A-\(pad(random.int(in: 1...20), 2))-\(pad(random.int(in: 1...40), 2))"
    }

    private mutating func nextMove() -> String {
        counters.move += 1
        return "MV-\(options.seed)-\(pad(counters.move, 6))"
    }

    private mutating func minutes(_ range: ClosedRange<Int>) -> Int64 {
        Int64(random.int(in: (range.lowerBound * 60)...(range.upperBound * 60))) * 1000 + Int64(random.below(1000))
    }

    /// Warehouses with an even number (`WH2`, `WH4`…) run a WMS that sends its own status codes,
    /// which the default status mapping translates; the others send canonical names.
    private func code<Status: CanonicalStatus>(_ status: Status, warehouse w: Int) -> String {
        guard w % 2 == 1 else { return status.rawValue }
        switch status.rawValue {
        case "available": return "AVAIL"
        case "allocated": return "ALLOC"
        case "quarantined": return "QUAR"
        case "in-transit": return "TRANSIT"
        case "damaged": return "DMG"
        case "quality-hold": return "QC"
        default: return String(status.rawValue.uppercased().map { $0 == "-" ? "_" : $0 })
        }
    }
}

func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

// MARK: - Activity state

struct ReceiptState: Sendable {
    struct Line: Sendable {
        let sku: Int
        let expected: Int64
        let received: Int64
        let lot: String?
    }

    let warehouse: Int
    let receiptId: String
    let purchaseOrderRef: String
    let supplier: String
    let lines: [Line]
}

struct ShipmentState: Sendable {
    struct Line: Sendable {
        let sku: Int
        let quantity: Int64
        let lot: String?
    }

    let warehouse: Int
    let shipmentId: String
    let orderRef: String
    let lines: [Line]
    let carrier: String
    let trackingNumber: String
}

enum FollowUp: Sendable {
    case receiptPutaway(ReceiptState)
    case shipmentShip(ShipmentState)
    case shipmentDeliver(ShipmentState)
    case shipmentCancel(ShipmentState)
    case releaseHold(warehouse: Int, sku: Int, quantity: Int64, damaged: Bool, correlation: String)
    case returnPutaway(warehouse: Int, sku: Int, quantity: Int64, correlation: String)
    case transferArrive(from: Int, to: Int, sku: Int, quantity: Int64, correlation: String)
    case stagingDone(warehouse: Int, sku: Int, quantity: Int64, putBack: Bool, correlation: String, lane: String)
}

/// A binary min-heap of follow-ups by time, then by scheduling order.
struct FollowUpQueue {
    struct Item {
        let time: Int64
        let order: Int
        let followUp: FollowUp
    }

    private var items: [Item] = []

    var peekTime: Int64? { items.first?.time }

    private static func before(_ a: Item, _ b: Item) -> Bool {
        (a.time, a.order) < (b.time, b.order)
    }

    mutating func push(time: Int64, order: Int, _ followUp: FollowUp) {
        items.append(Item(time: time, order: order, followUp: followUp))
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(items[child], items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Item {
        let top = items[0]
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, Self.before(items[left], items[smallest]) { smallest = left }
            if right < items.count, Self.before(items[right], items[smallest]) { smallest = right }
            guard smallest != parent else { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}

/// RFC 3339 text from milliseconds since 1970, in UTC: `2025-01-15T06:00:00.000Z`.
enum TimeFormat {
    static func rfc3339(milliseconds: Int64) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let millis = Int(milliseconds - seconds * 1000)
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * shiftedMonth + 2) / 5 + 1)
        let month = Int(shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9)
        let year = Int(yearOfEra + era * 400) + (month <= 2 ? 1 : 0)
        return pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" + pad(secondOfDay / 3600, 2) + ":"
            + pad(secondOfDay / 60 % 60, 2) + ":" + pad(secondOfDay % 60, 2) + "." + pad(millis, 3) + "Z"
    }
}
