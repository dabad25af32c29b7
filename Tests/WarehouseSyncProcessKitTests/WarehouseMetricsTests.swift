import Foundation
import Prometheus
import Testing
import WarehouseSyncProcessKit
import WarehouseSyncWorker

/// The per-warehouse metrics as Prometheus exposes them: labels, outcomes, the latency
/// histogram, the gauges, and the bound on the `warehouse` label.
@Suite("Warehouse metrics")
struct WarehouseMetricsTests {
    private struct Exposed {
        let registry = PrometheusCollectorRegistry()
        var text: String { registry.emitToString() }

        /// The samples of `name` (exactly: not its `_bucket` series), keyed by their label text.
        func samples(_ name: String) -> [String: Double] {
            var result: [String: Double] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix(name + "{") {
                let labelsEnd = line.lastIndex(of: "}")!
                let labels = String(line[line.index(line.startIndex, offsetBy: name.count + 1)..<labelsEnd])
                result[labels] = Double(line[line.index(after: labelsEnd)...].trimmingCharacters(in: .whitespaces))
            }
            return result
        }

        /// The distinct values of `label` over the samples of `name`.
        func values(of label: String, in name: String) -> Set<String> {
            Set(samples(name).keys.compactMap { labels in
                labels.split(separator: ",").first { $0.hasPrefix(label + "=\"") }
                    .map { String($0.dropFirst(label.count + 2).dropLast()) }
            })
        }
    }

    @Test("outcomes, dead letters by reason and parked keys are counted per stream and warehouse")
    func countsPerWarehouse() {
        let exposed = Exposed()
        let metrics = WarehouseMetrics(stream: "shipment", factory: OpsMetrics.makeFactory(registry: exposed.registry))
        metrics.count(.posted, warehouse: "WH1")
        metrics.count(.posted, warehouse: "WH1")
        metrics.count(.posted, warehouse: "WH2")
        metrics.count(.held, warehouse: "WH2")
        metrics.deadLettered(reason: "erp-rejected", warehouse: "WH2")
        metrics.deadLettered(reason: "invalid", warehouse: "WH 3!")
        metrics.parked(warehouse: "WH2")

        let events = exposed.samples(WarehouseMetrics.Name.events)
        #expect(events[#"stream="shipment",warehouse="WH1",outcome="posted""#] == 2)
        #expect(events[#"stream="shipment",warehouse="WH2",outcome="posted""#] == 1)
        #expect(events[#"stream="shipment",warehouse="WH2",outcome="held""#] == 1)
        #expect(events[#"stream="shipment",warehouse="WH2",outcome="dead-lettered""#] == 1)
        // A routing key that names no warehouse (a careless WMS) is counted, under (unknown).
        #expect(events[#"stream="shipment",warehouse="(unknown)",outcome="dead-lettered""#] == 1)
        let letters = exposed.samples(WarehouseMetrics.Name.deadLetters)
        #expect(letters == [
            #"stream="shipment",warehouse="WH2",reason="erp-rejected""#: 1,
            #"stream="shipment",warehouse="(unknown)",reason="invalid""#: 1,
        ])
        #expect(exposed.samples(WarehouseMetrics.Name.keysParked) == [#"stream="shipment",warehouse="WH2""#: 1])
    }

    @Test("publish-to-posted latency is a histogram per warehouse in seconds; clock skew counts as 0")
    func publishToPostedHistogram() {
        let exposed = Exposed()
        let metrics = WarehouseMetrics(stream: "receipt", factory: OpsMetrics.makeFactory(registry: exposed.registry))
        metrics.publishToPosted(.milliseconds(40), warehouse: "WH1")
        metrics.publishToPosted(.seconds(120), warehouse: "WH1")
        metrics.publishToPosted(.seconds(-3), warehouse: "WH2")

        let buckets = exposed.samples(WarehouseMetrics.Name.publishToPosted + "_bucket")
        #expect(buckets[#"stream="receipt",warehouse="WH1",le="0.025""#] == 0)
        #expect(buckets[#"stream="receipt",warehouse="WH1",le="0.05""#] == 1)
        #expect(buckets[#"stream="receipt",warehouse="WH1",le="60.0""#] == 1)
        #expect(buckets[#"stream="receipt",warehouse="WH1",le="300.0""#] == 2)
        #expect(buckets[#"stream="receipt",warehouse="WH2",le="0.01""#] == 1)
        let counts = exposed.samples(WarehouseMetrics.Name.publishToPosted + "_count")
        #expect(counts == [#"stream="receipt",warehouse="WH1""#: 2, #"stream="receipt",warehouse="WH2""#: 1])
        // Every configured bucket is there (15 and +Inf).
        #expect(buckets.keys.filter { $0.contains(#"warehouse="WH1""#) }.count == OpsMetrics.publishToPostedBuckets.count + 1)
    }

    @Test("the gauges show what waits, and go to 0 for a warehouse with nothing left")
    func gauges() {
        let exposed = Exposed()
        let metrics = WarehouseMetrics(stream: "inventory", factory: OpsMetrics.makeFactory(registry: exposed.registry))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        metrics.setGauges(
            [
                "WH1": WarehouseBacklog(inHand: 3, heldEvents: 5, heldKeys: 2, parkedKeys: 1, oldestUnposted: now - 90),
                "WH2": WarehouseBacklog(inHand: 1, oldestUnposted: now - 2),
            ], now: now)
        #expect(exposed.samples(WarehouseMetrics.Name.unposted) == [
            #"stream="inventory",warehouse="WH1",state="in-hand""#: 3,
            #"stream="inventory",warehouse="WH1",state="held""#: 5,
            #"stream="inventory",warehouse="WH2",state="in-hand""#: 1,
            #"stream="inventory",warehouse="WH2",state="held""#: 0,
        ])
        #expect(exposed.samples(WarehouseMetrics.Name.oldestUnpostedAge) == [
            #"stream="inventory",warehouse="WH1""#: 90, #"stream="inventory",warehouse="WH2""#: 2,
        ])
        #expect(exposed.samples(WarehouseMetrics.Name.heldKeys)[#"stream="inventory",warehouse="WH1""#] == 2)
        #expect(exposed.samples(WarehouseMetrics.Name.parkedKeys)[#"stream="inventory",warehouse="WH1""#] == 1)

        // WH1 drained; the store did not answer for WH2's held part: only in-hand moves.
        metrics.setGauges(["WH2": WarehouseBacklog(inHand: 4)], now: now, storeAnswered: false)
        let unposted = exposed.samples(WarehouseMetrics.Name.unposted)
        #expect(unposted[#"stream="inventory",warehouse="WH1",state="in-hand""#] == 0)
        #expect(unposted[#"stream="inventory",warehouse="WH1",state="held""#] == 5)
        #expect(unposted[#"stream="inventory",warehouse="WH2",state="in-hand""#] == 4)
        metrics.setGauges([:], now: now)
        #expect(Set(exposed.samples(WarehouseMetrics.Name.unposted).values) == [0])
        #expect(Set(exposed.samples(WarehouseMetrics.Name.oldestUnpostedAge).values) == [0])
        #expect(Set(exposed.samples(WarehouseMetrics.Name.parkedKeys).values) == [0])
    }

    @Test("with many warehouses the label stays bounded: the first N keep their name, the rest are (other)")
    func cardinalityIsBounded() {
        let exposed = Exposed()
        let limit = 25
        let metrics = WarehouseMetrics(
            stream: "inventory", warehouseLimit: limit, factory: OpsMetrics.makeFactory(registry: exposed.registry))
        let warehouses = (1...2_000).map { "WH\($0)" }
        for warehouse in warehouses {
            metrics.count(.posted, warehouse: warehouse)
            metrics.deadLettered(reason: "erp-rejected", warehouse: warehouse)
            metrics.publishToPosted(.milliseconds(5), warehouse: warehouse)
            metrics.parked(warehouse: warehouse)
        }
        metrics.setGauges(
            Dictionary(uniqueKeysWithValues: warehouses.map { ($0, WarehouseBacklog(inHand: 1, oldestUnposted: Date())) }), now: Date())
        metrics.count(.posted, warehouse: "")  // no warehouse at all

        let admitted = Set(warehouses.prefix(limit))
        let expected = admitted.union([WarehouseLabels.other, WarehouseLabels.unknown])
        #expect(exposed.values(of: "warehouse", in: WarehouseMetrics.Name.events) == expected)
        for name in [
            WarehouseMetrics.Name.deadLetters, WarehouseMetrics.Name.keysParked, WarehouseMetrics.Name.publishToPosted + "_count",
            WarehouseMetrics.Name.unposted, WarehouseMetrics.Name.oldestUnpostedAge,
        ] {
            #expect(exposed.values(of: "warehouse", in: name) == admitted.union([WarehouseLabels.other]), "\(name)")
        }
        // Nothing is lost: the overflow is counted in (other), and how often is exposed.
        let posted = exposed.samples(WarehouseMetrics.Name.events)
        #expect(posted[#"stream="inventory",warehouse="(other)",outcome="posted""#] == Double(warehouses.count - limit))
        #expect(posted.values.reduce(0, +) == Double(warehouses.count + warehouses.count + 1))  // posted + dead-lettered + (unknown)
        #expect(exposed.samples(WarehouseMetrics.Name.unposted)[#"stream="inventory",warehouse="(other)",state="in-hand""#]
            == Double(warehouses.count - limit))
        #expect((exposed.samples(WarehouseMetrics.Name.labelOverflow)[#"stream="inventory""#] ?? 0) > 0)
        // The whole exposition of this worker stays small: a bound, not a count of warehouses.
        let series = exposed.text.split(separator: "\n").filter { !$0.hasPrefix("#") }.count
        #expect(series < (limit + 2) * 40, "\(series) series")
    }

    @Test(
        "warehouse names follow DESIGN §2; keys and routing keys yield theirs",
        arguments: [
            ("WH1", true), ("wh_north-2", true), (String(repeating: "a", count: 64), true), ("", false),
            (String(repeating: "a", count: 65), false), ("WH 1", false), ("(other)", false), ("WH/1", false), ("WHö", false),
        ])
    func warehouseNames(name: String, valid: Bool) {
        #expect(WarehouseLabels.isWarehouseName(name) == valid)
        #expect(WarehouseLabels(limit: 10).label(for: name) == (valid ? name : WarehouseLabels.unknown))
    }

    @Test func warehouseOfKeysAndRoutingKeys() {
        #expect(WarehouseMetrics.warehouse(ofKey: "WH1/SKU-0001") == "WH1")
        #expect(WarehouseMetrics.warehouse(ofKey: "WH1/SHP/7") == "WH1")
        #expect(WarehouseMetrics.warehouse(ofRoutingKey: "inventory.WH1") == "WH1")
        #expect(WarehouseMetrics.warehouse(ofRoutingKey: "garbage") == "")
        #expect(WarehouseMetrics.warehouse(ofRoutingKey: "inventory.WH 1") == "")
    }
}
