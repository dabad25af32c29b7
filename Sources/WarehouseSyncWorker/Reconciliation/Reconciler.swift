import AMQPClient
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncStore

/// One reconciliation (docs/reconciliation.md): the WMS's snapshot against the ERP's balances and
/// documents, read through the ERP port, and, with a ``Corrector``, the balance differences
/// corrected. The one engine of `whsync reconcile` and the replay worker's schedule.
public struct Reconciler: Sendable {
    /// What corrections need: the store (earlier corrections, the keys' positions, the letters
    /// that carry corrections, the audit trail) and a publisher in confirm mode.
    public struct Corrector: Sendable {
        public var store: any WorkerStore
        public var publisher: AMQPConnection
        /// Who corrects: `alice@ops-host`, `replay-worker@pod-7`.
        public var actor: String
        /// The topology's events exchange.
        public var eventsExchange: String

        public init(store: any WorkerStore, publisher: AMQPConnection, actor: String, eventsExchange: String = RoutingKey.contractExchange) {
            self.store = store
            self.publisher = publisher
            self.actor = actor
            self.eventsExchange = eventsExchange
        }
    }

    /// What became of one balance difference under `--correct`.
    public struct Correction: Sendable, Hashable {
        public enum Outcome: Sendable, Hashable {
            /// Stored, published with the broker's confirm, audited.
            case published(eventId: String, letterId: Int64)
            /// A correction a stopped run had stored, published now.
            case resumed(eventId: String, letterId: Int64)
            /// Left alone, and why (``BalanceCorrection/Refusal``).
            case refused(String)
            /// Tried and failed (the broker refused, the store failed): run again.
            case failed(String)
        }

        public var key: StockBalance.Key
        /// WMS minus ERP: what the correction books; `nil` beyond the range of a quantity.
        public var quantity: Quantity?
        public var outcome: Outcome

        public init(key: StockBalance.Key, quantity: Quantity?, outcome: Outcome) {
            self.key = key
            self.quantity = quantity
            self.outcome = outcome
        }
    }

    public struct Report: Sendable, Hashable {
        public var warehouses: [String]
        public var balances: BalanceReconciliation.Outcome
        /// `nil` when the snapshot names no shipment or receipt.
        public var documents: DocumentReconciliation.Outcome?
        /// One per balance difference when correcting; empty otherwise.
        public var corrections: [Correction]

        public init(
            warehouses: [String], balances: BalanceReconciliation.Outcome, documents: DocumentReconciliation.Outcome?,
            corrections: [Correction] = []
        ) {
            self.warehouses = warehouses
            self.balances = balances
            self.documents = documents
            self.corrections = corrections
        }

        public var differenceCount: Int { balances.differences.count + (documents?.differences.count ?? 0) }
    }

    /// A `Report` could not be made.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public enum Kind: Sendable, Hashable {
            /// The ERP could not be asked, or its answer not read.
            case erp
            /// The snapshot cannot be compared (a row listed twice).
            case snapshot
        }

        public var kind: Kind
        public var description: String
    }

    let erp: any ERPAdapter
    let corrector: Corrector?
    let logger: Logger

    public init(erp: any ERPAdapter, corrector: Corrector? = nil, logger: Logger) {
        self.erp = erp
        self.corrector = corrector
        self.logger = logger
    }

    /// Compares `snapshot` with the ERP for `warehouses` (default: every warehouse the snapshot
    /// names), and corrects the balance differences when made with a ``Corrector``.
    public func run(_ snapshot: WMSSnapshot, warehouses: [String]? = nil, now: Date = Date()) async throws(Failure) -> Report {
        let asked = warehouses ?? snapshot.warehouses
        let scope = Set(asked)
        let lines = snapshot.balances.filter { scope.contains($0.balance.warehouse) }
        let expectedDocuments = snapshot.documents.filter { scope.contains($0.warehouse) }
        let kinds = snapshot.documentKinds
        var actual: [StockBalance] = []
        var actualDocuments: [DocumentStatus] = []
        do {
            for warehouse in asked {
                // Only the warehouse asked for: an ERP that ignores the filter adds no noise.
                actual += try await erp.balances(warehouse: warehouse).filter { $0.warehouse == warehouse }
                if !kinds.isEmpty {
                    actualDocuments += try await erp.documentStatuses(warehouse: warehouse, kinds: kinds)
                        .filter { $0.warehouse == warehouse }
                }
            }
        } catch {
            throw Failure(kind: .erp, description: "\(error)")
        }
        var report: Report
        do {
            let balances = try BalanceReconciliation.compare(expected: lines.map(\.balance), actual: actual)
            let documents = kinds.isEmpty ? nil : try DocumentReconciliation.compare(
                kinds: kinds, expected: expectedDocuments, actual: actualDocuments
            ) { [erp] kind, wms, erpStatus in erp.documentStatusesAgree(kind, wms: wms, erp: erpStatus) }
            report = Report(warehouses: asked, balances: balances, documents: documents, corrections: [])
        } catch {
            throw Failure(kind: .snapshot, description: "\(error)")
        }
        if let corrector {
            var byKey: [StockBalance.Key: WMSSnapshot.BalanceLine] = [:]
            for line in lines { byKey[line.balance.key] = line }
            for difference in report.balances.differences {
                report.corrections.append(await correct(difference, line: byKey[difference.key], corrector, now: now))
            }
        }
        return report
    }

    // MARK: Corrections

    private func correct(
        _ difference: BalanceReconciliation.Difference, line: WMSSnapshot.BalanceLine?, _ corrector: Corrector, now: Date
    ) async -> Correction {
        let row = difference.key
        let quantity = difference.expected.subtracting(difference.actual)
        let key = row.warehouse + "/" + row.sku
        let store = corrector.store
        do {
            let previous = try await previousCorrections(of: row, key: key, store: store, now: now)
            let state = try await store.snapshot(stream: .inventory, key: key, eventId: "").state
            let decision = BalanceCorrection.decide(
                difference, uom: line?.uom, wmsSequence: line?.sequence, key: state, previous: previous)
            let letter: DeadLetterRecord
            let resumed: Bool
            switch decision {
            case .refuse(let refusal):
                logger.notice("difference not corrected", metadata: ["key": "\(key)", "status": "\(row.status)", "why": "\(refusal)"])
                return Correction(key: row, quantity: quantity, outcome: .refused(refusal.description))
            case .resume(let letterId, _):
                guard let stored = try await store.deadLetter(id: letterId) else {
                    return Correction(key: row, quantity: quantity, outcome: .failed("dead letter \(letterId) is gone"))
                }
                letter = stored
                resumed = true
            case .publish(let eventId, let sequence, let amount):
                guard let uom = line?.uom, let event = BalanceCorrection.event(
                    for: row, quantity: amount, uom: uom, eventId: eventId, sequence: sequence,
                    occurredAt: Timestamp(now), correlationId: eventId)
                else {
                    return Correction(key: row, quantity: quantity, outcome: .refused(BalanceCorrection.Refusal.noUnit.description))
                }
                let error = "correction by \(corrector.actor): WMS \(difference.expected), ERP \(difference.actual) (\(row.status))"
                letter = try await store.recordDeadLetter(NewDeadLetter(
                    stream: .inventory, reason: .reconciliation, error: error, eventId: eventId, key: key, sequence: sequence,
                    originalExchange: corrector.eventsExchange, originalRoutingKey: event.routingKey,
                    body: event.jsonValue.serializedBytes(), failedAt: now))
                resumed = false
            }
            let replayer = DeadLetterReplayer(
                store: store, publisher: corrector.publisher, actor: corrector.actor, eventsExchange: corrector.eventsExchange)
            let outcome = try await replayer.replay([letter]).first
            guard case .replayed? = outcome else {
                let reason: String
                if case .skipped(_, let why)? = outcome { reason = why } else { reason = "not published" }
                return Correction(key: row, quantity: quantity, outcome: .failed(reason))
            }
            let eventId = letter.eventId ?? ""
            try await store.recordAudit(NewAuditEntry(
                at: now, actor: corrector.actor, action: .reconcileCorrection, deadLetterId: letter.id, stream: .inventory,
                key: key,
                detail: "\(row.status): WMS \(difference.expected), ERP \(difference.actual); \(eventId)\(resumed ? " (resumed)" : "")"))
            logger.notice(
                "correction published",
                metadata: ["key": "\(key)", "status": "\(row.status)", "eventId": "\(eventId)", "deadLetterId": "\(letter.id)"])
            return Correction(
                key: row, quantity: quantity,
                outcome: resumed ? .resumed(eventId: eventId, letterId: letter.id) : .published(eventId: eventId, letterId: letter.id))
        } catch {
            logger.warning("correction failed", metadata: ["key": "\(key)", "error": "\(error)"])
            return Correction(key: row, quantity: quantity, outcome: .failed("\(error)"))
        }
    }

    /// How long a published correction the workers have no record of counts as in flight (in
    /// the queue): the default `DEDUP_RETENTION`, after which its record may have been pruned.
    /// A correction lost on the way blocks its row until then, or until its letter is purged.
    static let unrecordedInFlight: TimeInterval = 336 * 3600

    /// The earlier corrections of `row` (letters of reason `reconciliation` for its key and
    /// status) and where each stands.
    private func previousCorrections(
        of row: StockBalance.Key, key: String, store: any WorkerStore, now: Date
    ) async throws -> [BalanceCorrection.Previous] {
        var previous: [BalanceCorrection.Previous] = []
        var filter = DeadLetterFilter(reason: .reconciliation, key: key)
        while true {
            let page = try await store.deadLetters(matching: filter, limit: 500)
            for letter in page where letter.status != .purged {
                guard let eventId = letter.eventId, case .inventory(let delta)? = try? EventDecoder().decode(letter.body),
                      delta.status.rawValue == row.status
                else { continue }
                let state: BalanceCorrection.Previous.State
                switch try await store.eventRecord(eventId: eventId)?.record {
                case .posted?: state = .posted
                case .deadLettered?: state = .deadLettered
                case .posting?, .held?: state = .inFlight
                case .notSeen?, nil:
                    if letter.replayCount == 0 {
                        state = .unpublished
                    } else if let replayed = letter.lastReplayedAt, now.timeIntervalSince(replayed) > Self.unrecordedInFlight {
                        state = .posted
                    } else {
                        state = .inFlight
                    }
                }
                previous.append(.init(eventId: eventId, letterId: letter.id, quantity: delta.quantity, state: state))
            }
            guard page.count == 500, let last = page.last else { break }
            filter.afterId = last.id
        }
        return previous
    }
}
