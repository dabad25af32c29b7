import WarehouseSyncCore

/// What to simulate: the size of the day and how to disturb its stream.
///
/// The same options (seed included) always give byte-identical output.
public struct SimulationOptions: Sendable, Codable, Equatable {
    /// Seeds every random choice.
    public var seed: UInt64
    /// Warehouses `WH1`…`WH<n>`, 1–99.
    public var warehouses: Int
    /// SKUs `SKU-0001`…, 1–9999; units of measure follow from the number alone (see ``Catalogue``).
    public var skus: Int
    /// The number of WMS events the day has before any disturbance (withheld events included,
    /// duplicates and invalid events not), at least 1.
    public var events: Int
    /// The day, `YYYY-MM-DD` (UTC). Activity runs from 06:00; follow-ups may run past midnight.
    public var date: String
    /// The fraction of events (of ``events``) displaced by swapping them with one of the next
    /// ``outOfOrderWindow`` events of the same key: each swap displaces two. 0–1.
    public var outOfOrder: Double
    /// How far (in events of the same key) an out-of-order swap may reach, ≥ 1.
    public var outOfOrderWindow: Int
    /// The number of verbatim re-emissions as a fraction of ``events``, 0–1.
    public var duplicates: Double
    /// The number of deliberately invalid events as a fraction of ``events``, 0–1.
    public var invalid: Double
    /// Keys with one event withheld for good, so that the key parks.
    public var gaps: Int
    /// The `source` field of every event.
    public var source: String

    public init(
        seed: UInt64 = 1, warehouses: Int = 5, skus: Int = 50, events: Int = 2000, date: String = "2025-01-15",
        outOfOrder: Double = 0, outOfOrderWindow: Int = 3, duplicates: Double = 0, invalid: Double = 0, gaps: Int = 0,
        source: String = "wms-sim"
    ) {
        self.seed = seed
        self.warehouses = warehouses
        self.skus = skus
        self.events = events
        self.date = date
        self.outOfOrder = outOfOrder
        self.outOfOrderWindow = outOfOrderWindow
        self.duplicates = duplicates
        self.invalid = invalid
        self.gaps = gaps
        self.source = source
    }

    /// Every setting out of its range, as one error per setting.
    public func validate() throws(SimulationOptionsError) {
        var problems: [String] = []
        if !(1...99).contains(warehouses) { problems.append("warehouses must be 1-99 (was \(warehouses))") }
        if !(1...9999).contains(skus) { problems.append("skus must be 1-9999 (was \(skus))") }
        if !(1...50_000_000).contains(events) { problems.append("events must be 1-50000000 (was \(events))") }
        if Self.dayStart(date) == nil { problems.append("date must be YYYY-MM-DD (was '\(date)')") }
        for (name, value) in [("out-of-order", outOfOrder), ("duplicates", duplicates), ("invalid", invalid)]
        where !(value >= 0 && value <= 1) {
            problems.append("\(name) must be a fraction from 0 to 1 (was \(value))")
        }
        if !(1...1000).contains(outOfOrderWindow) {
            problems.append("out-of-order-window must be 1-1000 (was \(outOfOrderWindow))")
        }
        if gaps < 0 { problems.append("gaps must not be negative (was \(gaps))") }
        if source.isEmpty || source.utf8.count > 64 { problems.append("source must be 1-64 characters") }
        if !problems.isEmpty { throw SimulationOptionsError(problems: problems) }
    }

    /// Seconds since 1970 of `date` at 00:00:00Z.
    static func dayStart(_ date: String) -> Int64? {
        guard date.utf8.count == 10, let timestamp = Timestamp(parsing: date + "T00:00:00Z") else { return nil }
        return timestamp.secondsSince1970
    }
}

/// Options that cannot be simulated; each problem names the setting.
public struct SimulationOptionsError: Error, Sendable, Equatable, CustomStringConvertible {
    public let problems: [String]

    public init(problems: [String]) {
        self.problems = problems
    }

    public var description: String { problems.joined(separator: "; ") }
}

/// The warehouses and SKUs of a simulation. They depend only on the counts, never on the seed,
/// so that one ERP master-data file serves every seed.
public struct Catalogue: Sendable, Codable, Equatable {
    public struct SKU: Sendable, Codable, Equatable {
        public let sku: String
        /// `EA`, `CS` or `KG`. Quantities in `KG` have up to 3 fraction digits, the others are whole.
        public let uom: String
        public let description: String
    }

    /// `WH1`…
    public let warehouses: [String]
    public let skus: [SKU]

    /// `warehouses` warehouses and `skus` SKUs: SKU n has unit `KG` when n % 10 is 3 or 7, `CS`
    /// when it is 5 or 0, `EA` otherwise.
    public init(warehouses: Int, skus: Int) {
        self.warehouses = (1...max(1, warehouses)).map { "WH\($0)" }
        self.skus = (1...max(1, skus)).map { number in
            let uom: String
            switch number % 10 {
            case 3, 7: uom = "KG"
            case 5, 0: uom = "CS"
            default: uom = "EA"
            }
            let padded = String(repeating: "0", count: max(0, 4 - String(number).count)) + String(number)
            let kind = uom == "KG" ? "bulk goods" : uom == "CS" ? "case goods" : "each goods"
            return SKU(sku: "SKU-\(padded)", uom: uom, description: "Simulated \(kind) \(padded)")
        }
    }

    /// The seed file of `reference-erp` (`{"warehouses": [{"code", "name"}], "skus": [{"sku", "uom",
    /// "description"}]}`), compact, members in that order.
    public var referenceERPSeed: JSONValue {
        .object(JSONObject(uniqueKeysWithValues: [
            ("warehouses", .array(warehouses.map { code in
                .object(JSONObject(uniqueKeysWithValues: [
                    ("code", .string(code)), ("name", .string("Simulated warehouse \(code)")),
                ]))
            })),
            ("skus", .array(skus.map { sku in
                .object(JSONObject(uniqueKeysWithValues: [
                    ("sku", .string(sku.sku)), ("uom", .string(sku.uom)), ("description", .string(sku.description)),
                ]))
            })),
        ]))
    }
}
