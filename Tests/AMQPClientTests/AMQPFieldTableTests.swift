import AMQPClient
import Testing

@Suite struct AMQPFieldTableTests {
    @Test func quorumQueueArgumentsSurviveTheWireFormat() throws {
        let arguments: AMQPTable = [
            "x-queue-type": "quorum",
            "x-delivery-limit": 20,
            "x-dead-letter-exchange": "whsync.dead",
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-single-active-consumer": true,
        ]
        #expect(try amqpTableRoundTrip(arguments) == arguments)
    }

    @Test func nestedTablesArraysAndScalars() throws {
        let headers: AMQPTable = [
            "whsync-attempt": .int(3),
            "negative": .int(-9_000_000_000),
            "ratio": .double(0.25),
            "flag": .bool(false),
            "at": .timestamp(1_763_000_000),
            "raw": .bytes([0, 1, 2, 255]),
            "x-death": .array([.table(["count": 2, "queue": "erp.inventory", "routing-keys": .array(["inventory.WH1"])])]),
            "empty-table": .table([:]),
            "empty-array": .array([]),
            "nothing": .void,
        ]
        #expect(try amqpTableRoundTrip(headers) == headers)
    }

    @Test func consistentHashBindingWeightIsAString() throws {
        // The x-consistent-hash exchange reads the binding key ("1") as the weight; the exchange
        // argument names the header to hash.
        let arguments: AMQPTable = ["hash-header": "partition-key"]
        #expect(try amqpTableRoundTrip(arguments)["hash-header"]?.stringValue == "partition-key")
    }

    @Test func nestingBeyondTheLimitReadsAsVoid() throws {
        // A table `depth` levels deep: {"n": {"n": ... "leaf" ...}}.
        func nested(_ depth: Int) -> AMQPFieldValue {
            depth == 0 ? .string("leaf") : .table(["n": nested(depth - 1)])
        }
        let limit = AMQPFieldValue.maxNestingDepth
        #expect(try amqpTableRoundTrip(["h": nested(limit)]) == ["h": nested(limit)])
        // One level more: the innermost table is cut off.
        var cut: AMQPFieldValue = .void
        for _ in 0..<limit { cut = .table(["n": cut]) }
        #expect(try amqpTableRoundTrip(["h": nested(limit + 1)]) == ["h": cut])
        // Arrays count as levels too, and a deep header does not take its siblings with it.
        var deepArray: AMQPFieldValue = .string("leaf")
        for _ in 0..<50 { deepArray = .array([deepArray]) }
        let read = try amqpTableRoundTrip(["deep": deepArray, "plain": "x"])
        #expect(read["plain"] == "x")
        var depth = 0
        var value = read["deep"]
        while case .array(let items)? = value { depth += 1; value = items.first }
        #expect(depth == limit && value == .void)
    }

    @Test func emptyTable() throws {
        #expect(try amqpTableRoundTrip([:]).isEmpty)
    }
}
