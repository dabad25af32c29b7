import Foundation
import WarehouseSyncCore
import WarehouseSyncStore
import WarehouseSyncWorker

/// `whsync status --warehouse W`: the business view of one warehouse (or several, or `all` that
/// have something waiting), per stream: how long its oldest held event waits, what is held and
/// parked, its dead letters by reason, and what was posted last. From the store; the broker's
/// queue depths are per stream, not per warehouse (the broker does not look into messages).
extension StatusCommand {
    struct LastPosted: Encodable {
        let eventId: String
        let key: String
        let sequence: Int64
        let documentId: String?
        let postedAt: String

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(eventId, forKey: .eventId)
            try container.encode(key, forKey: .key)
            try container.encode(sequence, forKey: .sequence)
            try container.encode(documentId, forKey: .documentId)
            try container.encode(postedAt, forKey: .postedAt)
        }

        enum CodingKeys: String, CodingKey { case eventId, key, sequence, documentId, postedAt }
    }

    struct WarehouseStream: Encodable {
        let stream: String
        /// Events held for a missing predecessor, and their keys.
        let heldEvents: Int
        let heldKeys: Int
        let parkedKeys: [String]
        /// When the oldest held event was held, and how long ago: the warehouse's delay as the
        /// store sees it.
        let oldestHeldSince: String?
        let delaySeconds: Double?
        let pendingDeadLetters: Int
        let deadLettersByReason: [String: Int]
        /// `nil`: nothing posted within DEDUP_RETENTION.
        let lastPosted: LastPosted?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(stream, forKey: .stream)
            try container.encode(heldEvents, forKey: .heldEvents)
            try container.encode(heldKeys, forKey: .heldKeys)
            try container.encode(parkedKeys, forKey: .parkedKeys)
            try container.encode(oldestHeldSince, forKey: .oldestHeldSince)
            try container.encode(delaySeconds, forKey: .delaySeconds)
            try container.encode(pendingDeadLetters, forKey: .pendingDeadLetters)
            try container.encode(deadLettersByReason, forKey: .deadLettersByReason)
            try container.encode(lastPosted, forKey: .lastPosted)
        }

        enum CodingKeys: String, CodingKey {
            case stream, heldEvents, heldKeys, parkedKeys, oldestHeldSince, delaySeconds, pendingDeadLetters, deadLettersByReason,
                lastPosted
        }
    }

    struct WarehouseStatus: Encodable {
        let warehouse: String
        let streams: [WarehouseStream]
    }

    /// Per stream, over all warehouses: the broker cannot tell warehouses apart.
    struct StreamQueues: Encodable {
        let stream: String
        let waiting: Int
        let inRetry: Int
    }

    struct WarehouseReport: Encodable {
        let warehouses: [WarehouseStatus]
        let queues: [StreamQueues]
        let erp: String?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(warehouses, forKey: .warehouses)
            try container.encode(queues, forKey: .queues)
            try container.encode(erp, forKey: .erp)
        }

        enum CodingKeys: String, CodingKey { case warehouses, queues, erp }
    }

    /// The per-warehouse view of `requested` (`all`: every warehouse with held or parked keys or
    /// pending dead letters), read from `store`: per stream two aggregate reads (held, parked),
    /// the pending letters once, and the last posted record per warehouse.
    static func warehouses(
        _ requested: [String], store: any WorkerStore, streams: [EventStream], now: Date = Date()
    ) async throws -> [WarehouseStatus] {
        var held: [EventStream: [HeldKeySummary]] = [:]
        var parked: [EventStream: [String]] = [:]
        for stream in streams {
            held[stream] = try await store.heldSummary(stream: stream)
            parked[stream] = try await store.parkedKeys(stream: stream)
        }
        let pending = try await DLQCommand.all(store, DeadLetterFilter(status: .pending))
        var names = requested.filter { $0 != "all" }
        if requested.contains("all") {
            let keys = held.values.joined().map(\.key) + parked.values.joined()
            names += keys.map { String(WarehouseMetrics.warehouse(ofKey: $0)) } + pending.compactMap(\.warehouse)
        }
        var seen = Set<String>()
        names = names.filter { seen.insert($0).inserted }.sorted()
        func ofWarehouse(_ key: String, _ warehouse: String) -> Bool { WarehouseMetrics.warehouse(ofKey: key) == warehouse }
        var result: [WarehouseStatus] = []
        for warehouse in names {
            var perStream: [WarehouseStream] = []
            for stream in streams {
                let heldKeys = (held[stream] ?? []).filter { ofWarehouse($0.key, warehouse) }
                let letters = pending.filter { $0.stream == stream && $0.warehouse == warehouse }
                let oldest = heldKeys.map(\.oldestHeldAt).min()
                let posted = try await store.lastPosted(stream: stream, warehouse: warehouse)
                perStream.append(WarehouseStream(
                    stream: stream.rawValue,
                    heldEvents: heldKeys.reduce(0) { $0 + $1.heldEvents },
                    heldKeys: heldKeys.count,
                    parkedKeys: (parked[stream] ?? []).filter { ofWarehouse($0, warehouse) },
                    oldestHeldSince: oldest.map(formatTime),
                    delaySeconds: oldest.map { max(0, (now.timeIntervalSince($0) * 1000).rounded() / 1000) },
                    pendingDeadLetters: letters.count,
                    deadLettersByReason: Dictionary(grouping: letters, by: \.reason.rawValue).mapValues(\.count),
                    lastPosted: posted.map {
                        LastPosted(
                            eventId: $0.eventId, key: $0.key, sequence: $0.sequence, documentId: $0.documentId,
                            postedAt: formatTime($0.postedAt))
                    }))
            }
            result.append(WarehouseStatus(warehouse: warehouse, streams: perStream))
        }
        return result
    }

    /// The report as text: business terms first, a paragraph per warehouse.
    static func printWarehouses(_ report: WarehouseReport) {
        if report.warehouses.isEmpty {
            print("no warehouse has anything held, parked or dead-lettered")
        }
        for warehouse in report.warehouses {
            print("warehouse \(warehouse.warehouse)")
            for stream in warehouse.streams {
                var parts: [String] = []
                if let posted = stream.lastPosted {
                    let document = posted.documentId.map { ", document \($0)" } ?? ""
                    parts.append("last posted \(posted.postedAt) (\(posted.key) #\(posted.sequence)\(document))")
                } else {
                    parts.append("nothing posted within DEDUP_RETENTION")
                }
                if stream.heldEvents > 0, let since = stream.oldestHeldSince, let delay = stream.delaySeconds {
                    parts.append(
                        "\(stream.heldEvents) event\(stream.heldEvents == 1 ? "" : "s") held on \(stream.heldKeys) "
                            + "key\(stream.heldKeys == 1 ? "" : "s"), the oldest since \(since) (\(humanDuration(delay)))")
                }
                if !stream.parkedKeys.isEmpty {
                    let shown = stream.parkedKeys.prefix(5).joined(separator: ", ")
                    let more = stream.parkedKeys.count > 5 ? ", …" : ""
                    parts.append("\(stream.parkedKeys.count) key\(stream.parkedKeys.count == 1 ? "" : "s") parked: \(shown)\(more)")
                }
                if stream.pendingDeadLetters > 0 {
                    let reasons = stream.deadLettersByReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                    parts.append(
                        "\(stream.pendingDeadLetters) dead letter\(stream.pendingDeadLetters == 1 ? "" : "s") to look at "
                            + "(\(reasons.joined(separator: ", ")))")
                }
                if stream.heldEvents == 0 && stream.parkedKeys.isEmpty && stream.pendingDeadLetters == 0 {
                    parts.append("nothing waiting")
                }
                print("  \(pad(stream.stream + ":", 10)) \(parts.joined(separator: "; "))")
            }
        }
        if let erp = report.erp { print("ERP: \(erp)") }
        let queues = report.queues.map { "\($0.stream) \($0.waiting) waiting, \($0.inRetry) in retry" }
        print("queues (per stream, all warehouses: the broker does not tell them apart): \(queues.joined(separator: "; "))")
    }

    private static func humanDuration(_ seconds: Double) -> String {
        let whole = Int(seconds)
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }
}
