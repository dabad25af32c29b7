import WarehouseSyncCore

/// Disturbs the undisturbed day the way a real WMS and network do, and works out what a correct
/// pipeline must make of the result.
///
/// Each disturbance draws from its own random stream, so changing one option (more duplicates,
/// say) leaves the others' choices as they were.
struct Disturber {
    let options: SimulationOptions
    let catalogue: Catalogue
    let events: [SimulatedEvent]

    /// Per event, its key's number (keys numbered in order of first appearance).
    private let keyOf: [Int]
    /// Per key, its events' indexes in sequence order.
    private let keyEvents: [[Int]]

    init(options: SimulationOptions, catalogue: Catalogue, events: [SimulatedEvent]) {
        self.options = options
        self.catalogue = catalogue
        self.events = events
        var numbers: [String: Int] = [:]
        var keyOf: [Int] = []
        var keyEvents: [[Int]] = []
        keyOf.reserveCapacity(events.count)
        for (index, event) in events.enumerated() {
            let key = event.stream.rawValue + " " + event.sequencingKey
            let number: Int
            if let known = numbers[key] {
                number = known
            } else {
                number = keyEvents.count
                numbers[key] = number
                keyEvents.append([])
            }
            precondition(event.sequence == Int64(keyEvents[number].count + 1), "sequences must be contiguous per key")
            keyOf.append(number)
            keyEvents[number].append(index)
        }
        self.keyOf = keyOf
        self.keyEvents = keyEvents
    }

    private struct Gap {
        let key: Int
        let missing: Int64
    }

    private struct Insertion {
        let after: Int
        let order: Int
        let message: SimulatedMessage
        let invalid: PendingInvalid?
    }

    private struct PendingInvalid {
        let kind: InvalidKind
        let field: String
        let error: String
    }

    func run() -> (messages: [SimulatedMessage], manifest: SimulationManifest) {
        // 1. Gaps: one event of a few keys withheld for good.
        let gaps = chooseGaps()
        var gapOfKey: [Int: Int64] = [:]
        var withheld = Array(repeating: false, count: events.count)
        for gap in gaps {
            gapOfKey[gap.key] = gap.missing
            withheld[keyEvents[gap.key][Int(gap.missing) - 1]] = true
        }
        let emitted = events.indices.filter { !withheld[$0] }

        // 2. Out of order: swap places with one of the next `window` events of the same key.
        var order = emitted
        var slot = Array(repeating: -1, count: events.count)
        for (position, index) in order.enumerated() { slot[index] = position }
        var displaced = 0
        do {
            var random = SeededRandom(seed: options.seed, stream: 3)
            let target = Int((options.outOfOrder * Double(options.events) / 2).rounded())
            var used = Array(repeating: false, count: events.count)
            var attempts = 0
            while displaced < 2 * target, attempts < target * 50 + 1000, !emitted.isEmpty {
                attempts += 1
                let first = emitted[random.below(emitted.count)]
                guard !used[first] else { continue }
                let key = keyOf[first]
                let rank = Int(events[first].sequence) - 1
                let partnerRank = rank + random.int(in: 1...options.outOfOrderWindow)
                guard partnerRank < keyEvents[key].count else { continue }
                let second = keyEvents[key][partnerRank]
                guard !withheld[second], !used[second] else { continue }
                order.swapAt(slot[first], slot[second])
                slot.swapAt(first, second)
                used[first] = true
                used[second] = true
                displaced += 2
            }
        }

        // Per event, the last position of its key's events up to and including it: a duplicate
        // goes after that, so its original has been delivered (and can have posted) by then.
        var settledAt = Array(repeating: -1, count: events.count)
        for indexes in keyEvents {
            var latest = -1
            for index in indexes where !withheld[index] {
                latest = max(latest, slot[index])
                settledAt[index] = latest
            }
        }

        var insertions: [Insertion] = []
        var insertionOrder = 0

        // 3. Duplicates: verbatim, later; never of a parked key (what a worker does with a copy of
        // a held event is its own business, not something to count).
        var duplicateIds: [String] = []
        do {
            var random = SeededRandom(seed: options.seed, stream: 4)
            var candidates = emitted.filter { gapOfKey[keyOf[$0]] == nil }
            let count = min(candidates.count, Int((options.duplicates * Double(options.events)).rounded()))
            let spread = max(1, min(500, order.count / 10))
            for picked in 0..<count {
                let swap = picked + random.below(candidates.count - picked)
                candidates.swapAt(picked, swap)
                let index = candidates[picked]
                let event = events[index]
                let after = min(order.count - 1, settledAt[index] + random.below(spread))
                insertionOrder += 1
                insertions.append(Insertion(
                    after: after, order: insertionOrder,
                    message: SimulatedMessage(kind: .duplicate, routingKey: event.routingKey, body: event.body,
                                              eventId: event.eventId, invalidKind: nil),
                    invalid: nil))
                duplicateIds.append(event.eventId)
            }
        }

        // 4. Invalid messages, each kind in turn.
        do {
            var random = SeededRandom(seed: options.seed, stream: 5)
            var kinds = InvalidKind.allCases
            random.shuffle(&kinds)
            let count = Int((options.invalid * Double(options.events)).rounded())
            var factory = InvalidFactory(options: options, catalogue: catalogue, events: events, candidates: emitted)
            for number in 1...max(1, count) where number <= count {
                let (message, field, error) = factory.make(kinds[(number - 1) % kinds.count], number: number, random: &random)
                insertionOrder += 1
                insertions.append(Insertion(
                    after: random.below(order.count + 1) - 1, order: insertionOrder, message: message,
                    invalid: PendingInvalid(kind: message.invalidKind ?? .malformedJSON, field: field, error: error)))
            }
        }

        // 5. The stream.
        insertions.sort { ($0.after, $0.order) < ($1.after, $1.order) }
        var messages: [SimulatedMessage] = []
        messages.reserveCapacity(order.count + insertions.count)
        var invalidEntries: [SimulationManifest.InvalidMessage] = []
        var lineCount = 0
        var next = 0
        func append(_ message: SimulatedMessage, _ invalid: PendingInvalid?) {
            if message.isLine { lineCount += 1 }
            if let invalid {
                invalidEntries.append(SimulationManifest.InvalidMessage(
                    id: "invalid-" + pad(invalidEntries.count + 1, 4), kind: invalid.kind.rawValue,
                    eventId: message.eventId, stream: Self.stream(ofRoutingKey: message.routingKey),
                    routingKey: message.routingKey, field: invalid.field, error: invalid.error, line: message.line,
                    lineNumber: message.isLine ? lineCount : nil, position: messages.count))
            }
            messages.append(message)
        }
        func flush(after position: Int) {
            while next < insertions.count, insertions[next].after == position {
                append(insertions[next].message, insertions[next].invalid)
                next += 1
            }
        }
        flush(after: -1)
        for (position, index) in order.enumerated() {
            let event = events[index]
            append(SimulatedMessage(kind: .event, routingKey: event.routingKey, body: event.body, eventId: event.eventId,
                                    invalidKind: nil), nil)
            flush(after: position)
        }
        precondition(next == insertions.count, "every insertion placed")

        let manifest = makeManifest(
            gaps: gaps, gapOfKey: gapOfKey, withheld: withheld, displaced: displaced, duplicateIds: duplicateIds,
            invalid: invalidEntries, messages: messages)
        return (messages, manifest)
    }

    /// Up to `options.gaps` keys with at least two events, taken from the streams in turn; the
    /// missing sequence is never a key's last (a missing last event is no gap anyone could see).
    private func chooseGaps() -> [Gap] {
        guard options.gaps > 0 else { return [] }
        var random = SeededRandom(seed: options.seed, stream: 2)
        var candidates: [EventStream: [Int]] = [:]
        for (key, indexes) in keyEvents.enumerated() where indexes.count >= 2 {
            candidates[events[indexes[0]].stream, default: []].append(key)
        }
        let streams: [EventStream] = [.inventory, .shipment, .receipt]
        var gaps: [Gap] = []
        for turn in 0..<options.gaps {
            guard let stream = (0..<3).map({ streams[(turn + $0) % 3] }).first(where: { !(candidates[$0]?.isEmpty ?? true) })
            else { break }
            let pool = candidates[stream] ?? []
            let pick = random.below(pool.count)
            let key = pool[pick]
            candidates[stream]?.remove(at: pick)
            gaps.append(Gap(key: key, missing: Int64(random.int(in: 1...(keyEvents[key].count - 1)))))
        }
        return gaps
    }

    static func stream(ofRoutingKey routingKey: String) -> String {
        String(routingKey.prefix { $0 != "." })
    }

    // MARK: Expected outcome

    private func makeManifest(
        gaps: [Gap], gapOfKey: [Int: Int64], withheld: [Bool], displaced: Int, duplicateIds: [String],
        invalid: [SimulationManifest.InvalidMessage], messages: [SimulatedMessage]
    ) -> SimulationManifest {
        var ledger = LedgerBuilder(catalogue: catalogue)
        var posted: [String] = []
        var byStream: [String: SimulationManifest.StreamCounts] = [:]
        for stream in EventStream.allCases {
            byStream[stream.rawValue] = .init(generated: 0, withheld: 0, duplicates: 0, invalid: 0, publishable: 0, posted: 0)
        }
        for (index, event) in events.enumerated() {
            let stream = event.stream.rawValue
            byStream[stream]?.generated += 1
            if withheld[index] {
                byStream[stream]?.withheld += 1
                continue
            }
            if let missing = gapOfKey[keyOf[index]], event.sequence > missing { continue }
            posted.append(event.eventId)
            byStream[stream]?.posted += 1
            ledger.post(event, key: keyOf[index])
        }
        for message in messages {
            let stream = Self.stream(ofRoutingKey: message.routingKey)
            switch message.kind {
            case .event: byStream[stream]?.publishable += 1
            case .duplicate:
                byStream[stream]?.publishable += 1
                byStream[stream]?.duplicates += 1
            case .invalid: byStream[stream]?.invalid += 1
            }
        }
        var invalidByKind: [String: Int] = [:]
        for kind in InvalidKind.allCases { invalidByKind[kind.rawValue] = 0 }
        for entry in invalid { invalidByKind[entry.kind, default: 0] += 1 }

        let parked = gaps.map { gap -> SimulationManifest.ParkedKey in
            let indexes = keyEvents[gap.key]
            let missingEvent = events[indexes[Int(gap.missing) - 1]]
            return SimulationManifest.ParkedKey(
                stream: missingEvent.stream.rawValue, key: missingEvent.sequencingKey, routingKey: missingEvent.routingKey,
                missingSequence: gap.missing, withheldEventId: missingEvent.eventId, withheldLine: missingEvent.line,
                heldEventIds: indexes[Int(gap.missing)...].map { events[$0].eventId })
        }.sorted { ($0.stream, $0.key) < ($1.stream, $1.key) }

        let counts = SimulationManifest.Counts(
            generated: events.count, withheld: gaps.count, duplicates: duplicateIds.count, invalid: invalid.count,
            invalidByKind: invalidByKind, displaced: displaced, messages: messages.count,
            lines: messages.count { $0.isLine }, publishable: messages.count { $0.kind != .invalid }, byStream: byStream)
        let expected = SimulationManifest.Expected(
            postedEventIds: posted.sorted(), documents: ledger.documents, duplicates: duplicateIds.count,
            duplicateEventIds: duplicateIds.sorted(), invalid: invalid, parkedKeys: parked, ledger: ledger.result())
        return SimulationManifest(options: options, catalogue: catalogue, counts: counts, expected: expected)
    }
}

/// The ERP's books by the reference ERP's posting rules (see ``SimulationManifest/Ledger``).
struct LedgerBuilder {
    let catalogue: Catalogue
    private var balances: [Int: Int64] = [:]
    private var movements: [Int: Int64] = [:]
    private var shipped: [Int: Int64] = [:]
    private var received: [Int: Int64] = [:]
    private var receiptsMoved: Set<Int> = []
    private(set) var documents: [String: Int] = [
        "inventory-movements": 0, "goods-issues": 0, "shipment-status": 0, "goods-receipts": 0,
    ]

    init(catalogue: Catalogue) {
        self.catalogue = catalogue
    }

    private func cell(_ warehouse: String, _ sku: Int, _ status: InventoryStatus) -> Int {
        ((catalogue.warehouses.firstIndex(of: warehouse) ?? 0) * catalogue.skus.count + sku) * 6
            + DayGenerator.statusIndex(status)
    }

    /// Posts `event`, whose key is number `key`; events of one key must come in sequence order.
    mutating func post(_ event: SimulatedEvent, key: Int) {
        switch event.effect {
        case .inventory(let sku, let status, let quantity):
            documents["inventory-movements", default: 0] += 1
            balances[cell(event.warehouse, sku, status), default: 0] += quantity
            movements[cell(event.warehouse, sku, status), default: 0] += quantity
        case .shipment(let status, let lines):
            guard status == .shipped else {
                documents["shipment-status", default: 0] += 1
                return
            }
            documents["goods-issues", default: 0] += 1
            for line in lines {
                balances[cell(event.warehouse, line.sku, .available), default: 0] -= line.quantity
                shipped[cell(event.warehouse, line.sku, .available), default: 0] += line.quantity
            }
        case .receipt(_, let lines):
            documents["goods-receipts", default: 0] += 1
            let moving = lines.filter { $0.quantity != 0 }
            guard !moving.isEmpty, !receiptsMoved.contains(key) else { return }
            receiptsMoved.insert(key)
            for line in moving {
                balances[cell(event.warehouse, line.sku, .available), default: 0] += line.quantity
                received[cell(event.warehouse, line.sku, .available), default: 0] += line.quantity
            }
        }
    }

    private func decode(_ cell: Int) -> (warehouse: String, sku: Catalogue.SKU, status: InventoryStatus) {
        let status = InventoryStatus.allCases.first { DayGenerator.statusIndex($0) == cell % 6 } ?? .available
        let pair = cell / 6
        return (catalogue.warehouses[pair / catalogue.skus.count], catalogue.skus[pair % catalogue.skus.count], status)
    }

    private func rows(_ cells: [Int: Int64]) -> [SimulationManifest.Balance] {
        cells.map { cell, micro in
            let (warehouse, sku, status) = decode(cell)
            return SimulationManifest.Balance(
                warehouse: warehouse, sku: sku.sku, status: status.rawValue,
                quantity: Quantity(microUnits: micro).description, uom: sku.uom)
        }.sorted { ($0.warehouse, $0.sku, $0.status) < ($1.warehouse, $1.sku, $1.status) }
    }

    private func totals(_ cells: [Int: Int64]) -> [SimulationManifest.Total] {
        rows(cells).map { .init(warehouse: $0.warehouse, sku: $0.sku, quantity: $0.quantity, uom: $0.uom) }
    }

    func result() -> SimulationManifest.Ledger {
        SimulationManifest.Ledger(
            balances: rows(balances), inventoryMovements: rows(movements), shipped: totals(shipped), received: totals(received))
    }
}
