import Foundation
import Metrics
import Synchronization
import WarehouseSyncCore

/// The metrics with business dimensions (docs/operations-endpoints.md, "Per warehouse"): what
/// happened to the events of each warehouse, how long they took from publish to posting, and
/// what still waits. Every series carries `stream` and a `warehouse` label bounded by
/// ``WarehouseLabels``; the other labels (`outcome`, `reason`, `state`) take a fixed set of
/// values.
///
/// The pipeline records through ``WorkerMetrics`` (one call per outcome, which also counts the
/// per-stream totals); the gauges are set by ``WarehouseGaugeSampler`` from the store and from
/// the events in hand.
public final class WarehouseMetrics: Sendable {
    /// Metric names, all prefixed `whsync_`.
    public enum Name {
        /// Counter `{stream, warehouse, outcome}`: what became of each event (``Outcome``).
        public static let events = "whsync_events_total"
        /// Counter `{stream, warehouse, reason}`: events dead-lettered, by reason.
        public static let deadLetters = "whsync_events_dead_lettered_total"
        /// Counter `{stream, warehouse}`: keys parked on a gap older than `GAP_TIMEOUT`.
        public static let keysParked = "whsync_keys_parked_total"
        /// Histogram `{stream, warehouse}`: `whsync-published-at` to the ERP's answer, seconds.
        public static let publishToPosted = "whsync_publish_to_posted_seconds"
        /// Gauge `{stream, warehouse, state}`: events known to this worker and not posted yet;
        /// `state` is `in-hand` (delivered, being worked on) or `held` (waiting in the store for
        /// a predecessor, parked keys included).
        public static let unposted = "whsync_unposted_events"
        /// Gauge `{stream, warehouse}`: how long the oldest of those events has waited since it
        /// was published (in hand) or held (in the store), seconds (0: none).
        public static let oldestUnpostedAge = "whsync_oldest_unposted_age_seconds"
        /// Gauge `{stream, warehouse}`: keys holding events for a missing predecessor.
        public static let heldKeys = "whsync_held_keys"
        /// Gauge `{stream, warehouse}`: keys parked, waiting for an operator (`whsync gaps`).
        public static let parkedKeys = "whsync_parked_keys"
        /// Counter `{stream}`: observations counted under `warehouse="(other)"` because the
        /// label limit was reached.
        public static let labelOverflow = "whsync_warehouse_label_overflow_total"
    }

    /// Label names.
    public enum Label {
        public static let stream = "stream"
        public static let warehouse = "warehouse"
        public static let outcome = "outcome"
        public static let reason = "reason"
        public static let state = "state"
    }

    /// What became of an event (`outcome` of ``Name/events``).
    public enum Outcome: String, Sendable, CaseIterable {
        case posted
        case held
        case duplicate
        case stale
        case retried
        case deadLettered = "dead-lettered"
    }

    /// `state` of ``Name/unposted``.
    public enum UnpostedState: String, Sendable, CaseIterable {
        case inHand = "in-hand"
        case held
    }

    public let stream: String
    public let labels: WarehouseLabels
    /// The events delivered to this worker and not settled yet.
    let inHand = InHandEvents()
    private let factory: any MetricsFactory
    private let counters = Mutex<[String: Counter]>([:])
    private let timers = Mutex<[String: Metrics.Timer]>([:])
    /// Warehouses whose gauges were set, so that a pass with nothing for one sets them to 0.
    private let gauged = Mutex<Set<String>>([])

    public init(
        stream: String, warehouseLimit: Int = WarehouseLabels.defaultLimit, factory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.stream = stream
        self.factory = factory
        let overflow = Counter(label: Name.labelOverflow, dimensions: [(Label.stream, stream)], factory: factory)
        labels = WarehouseLabels(limit: warehouseLimit) { overflow.increment() }
    }

    // MARK: Recording

    /// Counts one event of `warehouse` with `outcome`.
    public func count(_ outcome: Outcome, warehouse: String) {
        counter(Name.events, labels.label(for: warehouse), (Label.outcome, outcome.rawValue)).increment()
    }

    /// Counts one event dead-lettered for `reason`; `warehouse` as the routing key names it
    /// (``warehouse(ofRoutingKey:)``): an invalid message has no other.
    public func deadLettered(reason: String, warehouse: String) {
        let label = labels.label(for: warehouse)
        counter(Name.events, label, (Label.outcome, Outcome.deadLettered.rawValue)).increment()
        counter(Name.deadLetters, label, (Label.reason, reason)).increment()
    }

    /// Counts one key of `warehouse` parked.
    public func parked(warehouse: String) {
        counter(Name.keysParked, labels.label(for: warehouse), nil).increment()
    }

    /// Records one posting's publish-to-posted latency (negative ones, clock skew between the
    /// publisher's machine and this one, as 0).
    public func publishToPosted(_ latency: Duration, warehouse: String) {
        let label = labels.label(for: warehouse)
        let timer = timers.withLock { timers in
            if let timer = timers[label] { return timer }
            let timer = Metrics.Timer(
                label: Name.publishToPosted, dimensions: [(Label.stream, stream), (Label.warehouse, label)], factory: factory)
            timers[label] = timer
            return timer
        }
        timer.recordNanoseconds(max(.zero, latency).nanosecondsClamped)
    }

    /// Sets the gauges from one look at what waits (``WarehouseGaugeSampler``): warehouses
    /// gauged before and absent from `backlog` go to 0. Without `storeAnswered` only the
    /// `in-hand` gauge is set: the others need the store's part.
    public func setGauges(_ backlog: [String: WarehouseBacklog], now: Date, storeAnswered: Bool = true) {
        var byLabel: [String: WarehouseBacklog] = [:]
        for (warehouse, entry) in backlog {
            byLabel[labels.label(for: warehouse), default: WarehouseBacklog()].merge(entry)
        }
        let all = gauged.withLock { gauged in
            gauged.formUnion(byLabel.keys)
            return gauged
        }
        for label in all {
            let entry = byLabel[label] ?? WarehouseBacklog()
            gauge(Name.unposted, label, (Label.state, UnpostedState.inHand.rawValue)).record(entry.inHand)
            guard storeAnswered else { continue }
            gauge(Name.unposted, label, (Label.state, UnpostedState.held.rawValue)).record(entry.heldEvents)
            gauge(Name.heldKeys, label, nil).record(entry.heldKeys)
            gauge(Name.parkedKeys, label, nil).record(entry.parkedKeys)
            let age = entry.oldestUnposted.map { max(0, now.timeIntervalSince($0)) } ?? 0
            gauge(Name.oldestUnpostedAge, label, nil).record(age)
        }
    }

    private func counter(_ name: String, _ warehouse: String, _ extra: (String, String)?) -> Counter {
        let cacheKey = "\(name)\u{0}\(warehouse)\u{0}\(extra?.1 ?? "")"
        return counters.withLock { counters in
            if let counter = counters[cacheKey] { return counter }
            var dimensions = [(Label.stream, stream), (Label.warehouse, warehouse)]
            if let extra { dimensions.append(extra) }
            let counter = Counter(label: name, dimensions: dimensions, factory: factory)
            counters[cacheKey] = counter
            return counter
        }
    }

    private func gauge(_ name: String, _ warehouse: String, _ extra: (String, String)?) -> Gauge {
        var dimensions = [(Label.stream, stream), (Label.warehouse, warehouse)]
        if let extra { dimensions.append(extra) }
        return Gauge(label: name, dimensions: dimensions, factory: factory)
    }

    // MARK: Where an event belongs

    /// The warehouse of a sequencing key (`warehouse/sku`, `warehouse/shipmentId`, …).
    public static func warehouse(ofKey key: String) -> Substring {
        key.prefix { $0 != "/" }
    }

    /// The warehouse of a routing key `<stream>.<warehouse>` (DESIGN §2); empty when it is not one.
    public static func warehouse(ofRoutingKey routingKey: String) -> String {
        RoutingKey(parsing: routingKey)?.warehouse ?? ""
    }
}

/// What waits in one warehouse, as one worker sees it (``WarehouseGaugeSampler``).
public struct WarehouseBacklog: Sendable, Hashable {
    public var inHand = 0
    public var heldEvents = 0
    public var heldKeys = 0
    public var parkedKeys = 0
    /// Since when the oldest unposted event waits: its publish (in hand) or its hold (in the store).
    public var oldestUnposted: Date?

    public init(inHand: Int = 0, heldEvents: Int = 0, heldKeys: Int = 0, parkedKeys: Int = 0, oldestUnposted: Date? = nil) {
        self.inHand = inHand
        self.heldEvents = heldEvents
        self.heldKeys = heldKeys
        self.parkedKeys = parkedKeys
        self.oldestUnposted = oldestUnposted
    }

    mutating func merge(_ other: WarehouseBacklog) {
        inHand += other.inHand
        heldEvents += other.heldEvents
        heldKeys += other.heldKeys
        parkedKeys += other.parkedKeys
        noteUnposted(since: other.oldestUnposted)
    }

    mutating func noteUnposted(since date: Date?) {
        guard let date else { return }
        oldestUnposted = oldestUnposted.map { min($0, date) } ?? date
    }
}

/// Keeps the `warehouse` label bounded (docs/operations-endpoints.md, "Cardinality"): the first
/// ``limit`` distinct warehouses seen get a value of their own; later ones are counted as
/// ``other``, and anything that is not a warehouse name (DESIGN §2, `[A-Za-z0-9_-]{1,64}`: the
/// routing key of a malformed message) as ``unknown``. Neither can collide with a real
/// warehouse: parentheses are not allowed in its name.
public final class WarehouseLabels: Sendable {
    /// The label of warehouses beyond the limit.
    public static let other = "(other)"
    /// The label of values that are not warehouse names.
    public static let unknown = "(unknown)"
    /// Distinct warehouses per stream worker before ``other``: enough for a large estate; each
    /// costs about 40 series.
    public static let defaultLimit = 200

    public let limit: Int
    private let admitted = Mutex<Set<String>>([])
    private let onOverflow: @Sendable () -> Void

    public init(limit: Int = defaultLimit, onOverflow: @escaping @Sendable () -> Void = {}) {
        self.limit = max(0, limit)
        self.onOverflow = onOverflow
    }

    /// The label value for `warehouse`.
    public func label(for warehouse: some StringProtocol) -> String {
        guard Self.isWarehouseName(warehouse) else { return Self.unknown }
        let name = String(warehouse)
        let admitted = admitted.withLock { admitted in
            if admitted.contains(name) { return true }
            guard admitted.count < limit else { return false }
            admitted.insert(name)
            return true
        }
        guard admitted else {
            onOverflow()
            return Self.other
        }
        return name
    }

    /// How many warehouses have a label value of their own.
    public var admittedCount: Int { admitted.withLock { $0.count } }

    /// `[A-Za-z0-9_-]{1,64}` (``RoutingKey/isValidWarehouse(_:)``).
    public static func isWarehouseName(_ text: some StringProtocol) -> Bool {
        RoutingKey.isValidWarehouse(String(text))
    }
}

/// The events delivered to a worker and not settled yet (posted, held, dead-lettered, dropped,
/// sent to a retry tier or handed back), by warehouse and occurrence: the in-hand part of
/// ``WarehouseMetrics/Name/unposted``.
final class InHandEvents: Sendable {
    private struct Entry {
        let warehouse: Substring
        let since: Date
    }

    private struct State {
        var next: UInt64 = 0
        var entries: [UInt64: Entry] = [:]
    }

    private let state = Mutex(State())

    /// Notes an event in hand; ``InHandToken/end()`` when it is settled.
    func begin(warehouse: Substring, since: Date) -> InHandToken {
        let id = state.withLock { state in
            state.next += 1
            state.entries[state.next] = Entry(warehouse: warehouse, since: since)
            return state.next
        }
        return InHandToken(events: self, id: id)
    }

    fileprivate func end(_ id: UInt64) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Per warehouse: how many are in hand and since when the oldest of them waits.
    func summary() -> [String: WarehouseBacklog] {
        state.withLock { state in
            var result: [String: WarehouseBacklog] = [:]
            for entry in state.entries.values {
                result[String(entry.warehouse), default: WarehouseBacklog()].inHand += 1
                result[String(entry.warehouse)]!.noteUnposted(since: entry.since)
            }
            return result
        }
    }
}

/// One event in hand (``WorkerMetrics/inHand(_:)``).
struct InHandToken: Sendable {
    fileprivate let events: InHandEvents
    fileprivate let id: UInt64

    /// The event is settled: it no longer counts as in hand.
    func end() { events.end(id) }
}

// MARK: - What the pipeline calls

extension WorkerMetrics {
    /// The event is in hand until the returned token's `end()`; it waits since it was published
    /// (else since it occurred: a WMS that stamps neither header nor timestamp).
    func inHand(_ event: WarehouseEvent, publishedAt: Date?) -> InHandToken {
        business.inHand.begin(warehouse: Self.warehouse(of: event), since: publishedAt ?? event.header.occurredAt.date)
    }

    /// Posted: counts it per stream and warehouse, its age since occurrence and, when its
    /// publisher stamped it, its publish-to-posted latency.
    func recordPosted(_ event: WarehouseEvent, publishedAt: Date?, now: Date = Date()) {
        posted.increment()
        let warehouse = String(Self.warehouse(of: event))
        business.count(.posted, warehouse: warehouse)
        recordEventAge(.seconds(now.timeIntervalSince(event.header.occurredAt.date)))
        if let publishedAt {
            business.publishToPosted(.seconds(now.timeIntervalSince(publishedAt)), warehouse: warehouse)
        }
    }

    func recordHeld(_ event: WarehouseEvent) {
        held.increment()
        business.count(.held, warehouse: String(Self.warehouse(of: event)))
    }

    func recordDuplicate(_ event: WarehouseEvent) {
        duplicates.increment()
        business.count(.duplicate, warehouse: String(Self.warehouse(of: event)))
    }

    func recordStale(_ event: WarehouseEvent) {
        stale.increment()
        business.count(.stale, warehouse: String(Self.warehouse(of: event)))
    }

    func recordRetry(_ event: WarehouseEvent) {
        retries.increment()
        business.count(.retried, warehouse: String(Self.warehouse(of: event)))
    }

    /// Dead-lettered for `reason`: the warehouse is the routing key's (a malformed message has
    /// no event to take it from).
    func deadLettered(reason: String, routingKey: String) {
        deadLettered(reason: reason)
        business.deadLettered(reason: reason, warehouse: WarehouseMetrics.warehouse(ofRoutingKey: routingKey))
    }

    /// The key `key` parked.
    func recordParked(key: String) {
        parked.increment()
        business.parked(warehouse: String(WarehouseMetrics.warehouse(ofKey: key)))
    }

    private static func warehouse(of event: WarehouseEvent) -> Substring {
        Substring(event.header.warehouse)
    }
}

extension PipelineMessage {
    /// When the event was published (``WireHeader/publishedAt``, else the AMQP `timestamp`
    /// property, whole seconds); `nil` when its publisher said neither.
    var publishedAt: Date? {
        if let text = headers[WireHeader.publishedAt], let stamp = Timestamp(parsing: text) { return stamp.date }
        return properties.timestamp.map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }
}
