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

    @Test func emptyTable() throws {
        #expect(try amqpTableRoundTrip([:]).isEmpty)
    }
}
