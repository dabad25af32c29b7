import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncStore

/// The dead-letter cases of the suite (DESIGN §6, docs/store.md "Dead letters").
extension WorkerStoreConformance {
    static func deadLetterRoundTrip(_ fixture: some WorkerStoreFixture) async throws {
        let full = deadLetter(eventId: "e1", failedAt: t0.addingTimeInterval(0.25))
        // Undecodable: no stream, eventId, key or sequence, and a routing key that names nothing.
        let undecodable = NewDeadLetter(
            stream: nil, reason: .invalid, error: "body is not JSON", originalExchange: "wms.events",
            originalRoutingKey: "bogus", body: [0xff, 0xfe, 0x00], failedAt: t0
        )
        var stored: [DeadLetterRecord] = []
        try await withStore(fixture) { store in
            let first = try await store.recordDeadLetter(full)
            #expect(first.id > 0)
            #expect(first.identity == full.identity && first.identity.utf8.count == 64)
            #expect(first.stream == .inventory && first.reason == .erpRejected && first.error == full.error)
            #expect(first.eventId == "e1" && first.key == "WH1/SKU-1" && first.sequence == 4)
            #expect(first.warehouse == "WH1")
            #expect(first.originalExchange == "wms.events" && first.originalRoutingKey == "inventory.WH1")
            #expect(first.headers == full.headers)
            #expect(first.body == full.body)
            #expect(first.firstFailedAt == StoreTime.stored(full.failedAt) && first.lastFailedAt == first.firstFailedAt)
            #expect(first.failureCount == 1 && first.replayCount == 0)
            #expect(first.lastReplayedAt == nil && first.lastReplayedBy == nil && first.bodyEditedAt == nil)
            #expect(first.status == .pending && first.statusChangedAt == first.firstFailedAt)
            #expect(try await store.deadLetter(id: first.id) == first)

            let second = try await store.recordDeadLetter(undecodable)
            #expect(second.id > first.id)
            #expect(second.stream == nil && second.eventId == nil && second.key == nil && second.sequence == nil)
            #expect(second.warehouse == nil && second.headers == [:] && second.body == [0xff, 0xfe, 0x00])
            #expect(try await store.deadLetter(id: second.id) == second)
            #expect(try await store.deadLetter(id: second.id + 1000) == nil)

            // Empty strings are caller bugs ("unknown" is nil).
            var emptyEventId = full
            emptyEventId.eventId = ""
            await expectStoreError(.invalidChange) { _ = try await store.recordDeadLetter(emptyEventId) }
            stored = [first, second]
        }
        try await withStore(fixture) { (store: any WorkerStore) async throws in
            for record in stored {
                #expect(try await store.deadLetter(id: record.id) == record)
            }
        }
    }

    static func deadLetterDedup(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let letter = deadLetter(eventId: "d1", reason: .retriesExhausted, failedAt: t0)
            let first = try await store.recordDeadLetter(letter)

            // A redelivery (same failure, the broker's x-death grew): nothing changes.
            var redelivered = letter
            redelivered.headers["x-death-count"] = "2"
            #expect(try await store.recordDeadLetter(redelivered) == first)

            // A later failure of the same letter: counted; the first letter's content is kept.
            var later = letter
            later.failedAt = t0.addingTimeInterval(60)
            later.error = "503 again"
            later.headers = ["other": "headers"]
            let bumped = try await store.recordDeadLetter(later)
            #expect(bumped.id == first.id)
            #expect(bumped.failureCount == 2)
            #expect(bumped.firstFailedAt == first.firstFailedAt && bumped.lastFailedAt == StoreTime.stored(later.failedAt))
            #expect(bumped.error == "503 again")
            #expect(bumped.headers == letter.headers && bumped.body == letter.body)

            // An earlier failure arriving late changes nothing either.
            var older = letter
            older.failedAt = t0.addingTimeInterval(30)
            #expect(try await store.recordDeadLetter(older) == bumped)

            // Another reason, or another body under the same eventId (a conflict), is another letter.
            var otherReason = letter
            otherReason.reason = .erpRejected
            let otherReasonRecord = try await store.recordDeadLetter(otherReason)
            var otherBody = letter
            otherBody.body += Array(" ".utf8)
            let otherBodyRecord = try await store.recordDeadLetter(otherBody)
            #expect(Set([first.id, otherReasonRecord.id, otherBodyRecord.id]).count == 3)

            // Without an eventId the body tells letters apart.
            let blob = NewDeadLetter(
                stream: nil, reason: .invalid, error: "not JSON", originalExchange: "wms.events", originalRoutingKey: "x",
                body: [1, 2, 3], failedAt: t0
            )
            let blobRecord = try await store.recordDeadLetter(blob)
            #expect(try await store.recordDeadLetter(blob).id == blobRecord.id)
            var otherBlob = blob
            otherBlob.body = [1, 2, 4]
            #expect(try await store.recordDeadLetter(otherBlob).id != blobRecord.id)

            // Drained concurrently (two replay workers): still one row.
            let racing = deadLetter(eventId: "d-race", failedAt: t0)
            let ids = try await withThrowingTaskGroup(of: Int64.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await store.recordDeadLetter(racing).id }
                }
                return try await group.reduce(into: Set<Int64>()) { $0.insert($1) }
            }
            #expect(ids.count == 1)
            #expect(try await store.deadLetters(matching: DeadLetterFilter(eventId: "d-race"), limit: 10).count == 1)

            // Failing again after a replay makes it pending again; the replays stay counted.
            try await store.markReplayed(id: first.id, by: "replay-worker", at: t0.addingTimeInterval(100))
            var afterReplay = letter
            afterReplay.failedAt = t0.addingTimeInterval(200)
            let again = try await store.recordDeadLetter(afterReplay)
            #expect(again.id == first.id)
            #expect(again.status == .pending && again.statusChangedAt == StoreTime.stored(afterReplay.failedAt))
            #expect(again.failureCount == 3 && again.replayCount == 1 && again.lastReplayedBy == "replay-worker")
        }
    }

    static func deadLetterFilters(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let letters = [
                deadLetter(eventId: "f1", reason: .erpRejected, failedAt: t0),
                deadLetter(
                    stream: .inventory, eventId: "f2", reason: .retriesExhausted, routingKey: "inventory.WH2", key: "WH2/SKU-9",
                    failedAt: t0.addingTimeInterval(10)
                ),
                deadLetter(
                    stream: .shipment, eventId: "f3", reason: .gapTimeout, routingKey: "shipment.WH1", key: "WH1/S-1",
                    failedAt: t0.addingTimeInterval(20)
                ),
                NewDeadLetter(
                    stream: nil, reason: .invalid, error: "not JSON", originalExchange: "wms.events", originalRoutingKey: "bogus",
                    body: [0], failedAt: t0.addingTimeInterval(30)
                ),
                // The routing key names no warehouse: the key's prefix does.
                deadLetter(
                    stream: .receipt, eventId: "f5", reason: .deliveryLimit, routingKey: "not-a-key", key: "WH3/R-1",
                    failedAt: t0.addingTimeInterval(40)
                ),
            ]
            var ids: [Int64] = []
            for letter in letters {
                ids.append(try await store.recordDeadLetter(letter).id)
            }
            func matching(_ filter: DeadLetterFilter, limit: Int = 100) async throws -> [Int64] {
                try await store.deadLetters(matching: filter, limit: limit).map(\.id)
            }
            #expect(try await matching(.all) == ids)
            #expect(try await matching(DeadLetterFilter(stream: .inventory)) == [ids[0], ids[1]])
            #expect(try await matching(DeadLetterFilter(reason: .gapTimeout)) == [ids[2]])
            #expect(try await matching(DeadLetterFilter(warehouse: "WH1")) == [ids[0], ids[2]])
            #expect(try await matching(DeadLetterFilter(warehouse: "WH3")) == [ids[4]])
            #expect(try await matching(DeadLetterFilter(key: "WH2/SKU-9")) == [ids[1]])
            #expect(try await matching(DeadLetterFilter(eventId: "f5")) == [ids[4]])
            #expect(try await matching(DeadLetterFilter(stream: .inventory, warehouse: "WH1")) == [ids[0]])
            #expect(
                try await matching(DeadLetterFilter(failedFrom: t0.addingTimeInterval(10), failedBefore: t0.addingTimeInterval(30)))
                    == [ids[1], ids[2]],
                "failedFrom is inclusive, failedBefore exclusive"
            )
            #expect(try await matching(DeadLetterFilter(status: .pending)) == ids)
            try await store.markReplayed(id: ids[1], by: "alice", at: t0.addingTimeInterval(50))
            #expect(try await matching(DeadLetterFilter(status: .replayed)) == [ids[1]])
            #expect(try await matching(DeadLetterFilter(status: .pending)) == [ids[0], ids[2], ids[3], ids[4]])

            // Paging by id.
            #expect(try await matching(.all, limit: 2) == [ids[0], ids[1]])
            #expect(try await matching(DeadLetterFilter(afterId: ids[1]), limit: 2) == [ids[2], ids[3]])
            #expect(try await matching(DeadLetterFilter(afterId: ids[3]), limit: 2) == [ids[4]])
            #expect(try await matching(DeadLetterFilter(afterId: ids[4]), limit: 2) == [])
            await expectStoreError(.invalidChange) { _ = try await store.deadLetters(matching: .all, limit: 0) }
        }
    }

    static func deadLetterLifecycle(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            let letter = try await store.recordDeadLetter(deadLetter(eventId: "l1", failedAt: t0))
            let id = letter.id

            let replayed = try await store.markReplayed(id: id, by: "replay-worker", at: t0.addingTimeInterval(100))
            #expect(replayed.replayCount == 1 && replayed.status == .replayed)
            #expect(replayed.lastReplayedBy == "replay-worker" && replayed.lastReplayedAt == t0.addingTimeInterval(100))
            #expect(replayed.statusChangedAt == t0.addingTimeInterval(100))
            let twice = try await store.markReplayed(id: id, by: "alice", at: t0.addingTimeInterval(200))
            #expect(twice.replayCount == 2 && twice.lastReplayedBy == "alice" && twice.lastReplayedAt == t0.addingTimeInterval(200))
            #expect(try await store.deadLetter(id: id) == twice)

            // An edit replaces the body; the letter's identity and status stay.
            let edited = try await store.updateDeadLetterBody(id: id, body: Array(#"{"fixed":true}"#.utf8), by: "alice", at: t0.addingTimeInterval(300))
            #expect(edited.body == Array(#"{"fixed":true}"#.utf8) && edited.bodyEditedAt == t0.addingTimeInterval(300))
            #expect(edited.identity == letter.identity && edited.status == .replayed && edited.replayCount == 2)

            let unknown = id + 1000
            await expectStoreError(.notFound) { try await store.markReplayed(id: unknown, by: "alice", at: t0) }
            await expectStoreError(.notFound) { try await store.updateDeadLetterBody(id: unknown, body: [], by: "alice", at: t0) }

            // Purge: soft, once; a purged letter is neither replayed nor edited.
            #expect(try await store.purgeDeadLetters(ids: [id, unknown], by: "bob", at: t0.addingTimeInterval(400)) == 1)
            #expect(try await store.purgeDeadLetters(ids: [id], by: "bob", at: t0.addingTimeInterval(450)) == 0)
            #expect(try await store.purgeDeadLetters(ids: [], by: "bob", at: t0) == 0)
            let purged = try #require(try await store.deadLetter(id: id))
            #expect(purged.status == .purged && purged.statusChangedAt == t0.addingTimeInterval(400))
            await expectStoreError(.invalidChange) { try await store.markReplayed(id: id, by: "alice", at: t0) }
            await expectStoreError(.invalidChange) { try await store.updateDeadLetterBody(id: id, body: [], by: "alice", at: t0) }
            #expect(try await store.deadLetter(id: id) == purged)

            // Purge by filter.
            let shipments = [
                try await store.recordDeadLetter(deadLetter(stream: .shipment, eventId: "p1", routingKey: "shipment.WH1", failedAt: t0)),
                try await store.recordDeadLetter(deadLetter(stream: .shipment, eventId: "p2", routingKey: "shipment.WH1", failedAt: t0)),
            ]
            let receipt = try await store.recordDeadLetter(deadLetter(stream: .receipt, eventId: "p3", routingKey: "receipt.WH1", failedAt: t0))
            #expect(try await store.purgeDeadLetters(matching: DeadLetterFilter(stream: .shipment), by: "bob", at: t0.addingTimeInterval(500)) == 2)
            #expect(try await store.deadLetters(matching: DeadLetterFilter(status: .purged), limit: 10).map(\.id) == [id] + shipments.map(\.id))

            // Prune: replayed and purged letters past retention; pending ones stay whatever their age.
            #expect(try await store.pruneDeadLetters(olderThan: t0.addingTimeInterval(400)) == 0, "a letter exactly at the cutoff is kept")
            #expect(try await store.pruneDeadLetters(olderThan: t0.addingTimeInterval(401)) == 1)
            #expect(try await store.deadLetter(id: id) == nil)
            #expect(try await store.pruneDeadLetters(olderThan: t0.addingTimeInterval(10_000)) == 2)
            #expect(try await store.deadLetters(matching: .all, limit: 10).map(\.id) == [receipt.id])

            // Ids are not reused after pruning: replays name them.
            let next = try await store.recordDeadLetter(deadLetter(eventId: "l-next", failedAt: t0))
            #expect(next.id > receipt.id)

            // The audit trail: every replay, edit and purge, with who and when, the edited body
            // kept; it outlives the pruned letter.
            let trail = try await store.auditTrail(deadLetterId: id, limit: 100).map(\.entry)
            #expect(trail.map(\.action) == [.replay, .replay, .edit, .purge])
            #expect(trail.map(\.actor) == ["replay-worker", "alice", "alice", "bob"])
            #expect(trail.map(\.at) == [100, 200, 300, 400].map { t0.addingTimeInterval($0) })
            #expect(trail[2].previousBody == letter.body)
            #expect(trail[0].previousBody == nil)
            try await store.recordAudit(NewAuditEntry(
                at: t0.addingTimeInterval(600), actor: "carol", action: .gapSkip, stream: .inventory, key: "WH1/SKU-1",
                detail: "skipped 2–3"))
            let all = try await store.auditTrail(deadLetterId: nil, limit: 100)
            #expect(all.count == 4 + 2 + 1, "the shipment purges and the skip are in it")
            #expect(all.last?.entry.action == .gapSkip && all.last?.entry.key == "WH1/SKU-1")
            #expect(try await store.auditTrail(deadLetterId: nil, limit: 2).map(\.id) == all.suffix(2).map(\.id))
            await expectStoreError(.invalidChange) {
                try await store.recordAudit(NewAuditEntry(at: t0, actor: "", action: .gapSkip, detail: "x"))
            }
        }
    }

    /// Pruning deletes in batches: more than two batches of replayed letters go, a pending one stays.
    static func pruneBacklog(_ fixture: some WorkerStoreFixture) async throws {
        try await withStore(fixture) { store in
            // More than two of the stores' pruning batches, plus one pending letter.
            let count = 2 * StorePruning.batchSize + 345
            var ids: [Int64] = []
            for index in 0..<count {
                ids.append(try await store.recordDeadLetter(deadLetter(eventId: "b\(index)", failedAt: t0)).id)
            }
            let pending = try await store.recordDeadLetter(deadLetter(eventId: "still-pending", failedAt: t0))
            #expect(try await store.purgeDeadLetters(ids: ids, by: "bob", at: t0.addingTimeInterval(10)) == count)
            #expect(try await store.pruneDeadLetters(olderThan: t0.addingTimeInterval(11)) == count)
            #expect(try await store.deadLetters(matching: .all, limit: 10).map(\.id) == [pending.id])
            #expect(try await store.pruneDeadLetters(olderThan: t0.addingTimeInterval(11)) == 0)
        }
    }

    // MARK: Helpers

    /// A decodable letter with every field set.
    static func deadLetter(
        stream: EventStream = .inventory,
        eventId: String,
        reason: DeadLetterReason = .erpRejected,
        routingKey: String = "inventory.WH1",
        key: String = "WH1/SKU-1",
        failedAt: Date
    ) -> NewDeadLetter {
        NewDeadLetter(
            stream: stream, reason: reason, error: "422 quantity below zero", eventId: eventId, key: key, sequence: 4,
            originalExchange: "wms.events", originalRoutingKey: routingKey,
            headers: ["whsync-reason": reason.rawValue, "whsync-stream": stream.rawValue, "x-note": "ünïcødé \"quoted\""],
            body: [0x00, 0xff] + Array("{\"eventId\":\"\(eventId)\"}".utf8), failedAt: failedAt
        )
    }
}
