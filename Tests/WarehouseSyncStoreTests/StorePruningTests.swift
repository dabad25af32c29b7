import Testing
import WarehouseSyncStore

@Suite("StorePruning")
struct StorePruningTests {
    /// Deletes from `rows` at most `limit` at a time, counting the calls.
    actor Table {
        var rows: Int
        var calls = 0
        init(rows: Int) { self.rows = rows }
        func delete(limit: Int) -> Int {
            calls += 1
            let deleted = min(rows, limit)
            rows -= deleted
            return deleted
        }
    }

    @Test("deletes batch after batch until one comes back short, and returns the total", arguments: [0, 999, 1000, 2345])
    func inBatches(rows: Int) async throws {
        let table = Table(rows: rows)
        let pruned = try await StorePruning.inBatches { limit in
            #expect(limit == StorePruning.batchSize)
            return await table.delete(limit: limit)
        }
        #expect(pruned == rows)
        #expect(await table.rows == 0)
        #expect(await table.calls == rows / StorePruning.batchSize + 1)
    }
}
