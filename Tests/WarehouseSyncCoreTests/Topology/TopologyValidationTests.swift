import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSettings

@Suite("Topology validation")
struct TopologyValidationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let json: String
        let code: TopologyError.Code
        let keyPath: String
        /// A phrase the message must contain.
        let says: String

        var testDescription: String { name }
    }

    typealias F = TopologyFixtures

    static let cases: [Case] = [
        Case(
            name: "unknown top-level key",
            json: F.document(top: #""eventsExchange": "wms.events", "deliveryLimt": 20"#),
            code: .unknownKey, keyPath: "deliveryLimt", says: "allowed here: eventsExchange, deliveryLimit"
        ),
        Case(
            name: "unknown key in a stream",
            json: F.document(inventory: #"{ "partition": 4 }"#),
            code: .unknownKey, keyPath: "streams.inventory.partition", says: "unknown key \"partition\""
        ),
        Case(
            name: "unknown key in retry",
            json: F.document(retryExtra: #", "tier": ["5s"]"#),
            code: .unknownKey, keyPath: "retry.tier", says: "allowed here: exchange, requeueExchange, tiers, description"
        ),
        Case(
            name: "description that is not a string",
            json: F.document(shipment: #"{ "description": 3 }"#),
            code: .wrongType, keyPath: "streams.shipment.description", says: "a string (a comment)"
        ),
        Case(
            name: "unknown stream",
            json: F.document(extraStreams: #", "returns": {}"#),
            code: .unknownStream, keyPath: "streams.returns", says: "the streams are inventory, shipment, receipt"
        ),
        Case(
            name: "missing stream",
            json: #"""
                { "eventsExchange": "wms.events",
                  "streams": { "inventory": {}, "shipment": {} },
                  "retry": { "exchange": "whsync.retry", "requeueExchange": "whsync.requeue", "tiers": ["5s"] },
                  "deadLetter": { "exchange": "whsync.dead", "queue": "whsync.dead-letters" } }
                """#,
            code: .missingKey, keyPath: "streams.receipt", says: "every stream needs an entry"
        ),
        Case(
            name: "missing events exchange",
            json: F.document(top: #""deliveryLimit": 20"#),
            code: .missingKey, keyPath: "eventsExchange", says: "missing"
        ),
        Case(
            name: "missing dead-letter section",
            json: F.document(deadLetter: "null"),
            code: .missingKey, keyPath: "deadLetter", says: "expected an object"
        ),
        Case(
            name: "bad duration",
            json: F.document(tiers: #"["5s", "30 s"]"#),
            code: .invalidDuration, keyPath: "retry.tiers[1]",
            says: "invalid duration \"30 s\": expected a whole number followed by ms, s, m or h"
        ),
        Case(
            name: "duration that is not a string",
            json: F.document(tiers: #"["5s", 30]"#),
            code: .wrongType, keyPath: "retry.tiers[1]", says: "expected a duration string, found a number"
        ),
        Case(
            name: "non-increasing tiers",
            json: F.document(tiers: #"["5s", "1m", "60s"]"#),
            code: .invalidTiers, keyPath: "retry.tiers[2]", says: "tiers must strictly increase"
        ),
        Case(
            name: "decreasing tiers",
            json: F.document(tiers: #"["30s", "5s"]"#),
            code: .invalidTiers, keyPath: "retry.tiers[1]", says: "not longer than the tier before it (30s)"
        ),
        Case(
            name: "no tiers",
            json: F.document(tiers: "[]"),
            code: .invalidTiers, keyPath: "retry.tiers", says: "0 tiers; expected 1…10"
        ),
        Case(
            name: "eleven tiers",
            json: F.document(tiers: #"["1s","2s","3s","4s","5s","6s","7s","8s","9s","10s","11s"]"#),
            code: .invalidTiers, keyPath: "retry.tiers", says: "11 tiers"
        ),
        Case(
            name: "tier below 100ms",
            json: F.document(tiers: #"["50ms", "5s"]"#),
            code: .invalidTiers, keyPath: "retry.tiers[0]", says: "minimum retry delay of 100ms"
        ),
        Case(
            name: "one partition",
            json: F.document(receipt: #"{ "partitions": 1 }"#),
            code: .invalidPartitions, keyPath: "streams.receipt.partitions", says: "1 is not a partition count; expected 0 (one queue) or 2…64 (one partition is the same single queue behind an extra exchange: use 0)"
        ),
        Case(
            name: "too many partitions",
            json: F.document(receipt: #"{ "partitions": 65 }"#),
            code: .invalidPartitions, keyPath: "streams.receipt.partitions", says: "expected 0 (one queue) or 2…64"
        ),
        Case(
            name: "fractional partitions",
            json: F.document(receipt: #"{ "partitions": 2.5 }"#),
            code: .wrongType, keyPath: "streams.receipt.partitions", says: "expected a whole number, found 2.5"
        ),
        Case(
            name: "partitions as a string",
            json: F.document(receipt: #"{ "partitions": "2" }"#),
            code: .wrongType, keyPath: "streams.receipt.partitions", says: "found a string"
        ),
        Case(
            name: "delivery limit zero",
            json: F.document(top: #""eventsExchange": "wms.events", "deliveryLimit": 0"#),
            code: .invalidValue, keyPath: "deliveryLimit", says: "expected a whole number ≥ 1"
        ),
        Case(
            name: "delivery limit as a boolean",
            json: F.document(inventory: #"{ "deliveryLimit": true }"#),
            code: .wrongType, keyPath: "streams.inventory.deliveryLimit", says: "found a boolean"
        ),
        Case(
            name: "empty queue name",
            json: F.document(shipment: #"{ "queue": "" }"#),
            code: .invalidName, keyPath: "streams.shipment.queue", says: "must not be empty"
        ),
        Case(
            name: "reserved exchange name",
            json: F.document(top: #""eventsExchange": "amq.topic""#),
            code: .invalidName, keyPath: "eventsExchange", says: "RabbitMQ reserves those names"
        ),
        Case(
            name: "name with a space",
            json: F.document(deadLetter: #"{ "exchange": "whsync dead", "queue": "q" }"#),
            code: .invalidName, keyPath: "deadLetter.exchange", says: "may contain only"
        ),
        Case(
            name: "two streams on one queue",
            json: F.document(shipment: #"{ "queue": "erp.inventory" }"#),
            code: .duplicateName, keyPath: "streams.shipment.queue", says: "also the queue of streams.inventory.queue"
        ),
        Case(
            name: "requeue exchange equal to the events exchange",
            json: F.document(retryExtra: "").replacingOccurrences(of: #""requeueExchange": "whsync.requeue""#, with: #""requeueExchange": "wms.events""#),
            code: .duplicateName, keyPath: "retry.requeueExchange", says: "also the exchange of eventsExchange"
        ),
        Case(
            name: "stream that is not an object",
            json: F.document(inventory: "[]"),
            code: .wrongType, keyPath: "streams.inventory", says: "expected an object, found an array"
        ),
        Case(
            name: "not JSON",
            json: "{\n  \"eventsExchange\": \"wms.events\"\n  \"deliveryLimit\": 20\n}",
            code: .invalidJSON, keyPath: "", says: "not valid JSON: Invalid value at line 3, column 3"
        ),
        Case(
            name: "top level not an object",
            json: "[1, 2]",
            code: .invalidJSON, keyPath: "", says: "must be a JSON object"
        ),
    ]

    @Test("an invalid document names the key path and what is wrong", arguments: cases)
    func invalid(_ testCase: Case) {
        #expect {
            try TopologyFixtures.topology(testCase.json)
        } throws: { error in
            guard let error = error as? TopologyError else { return false }
            #expect(error.code == testCase.code, "\(error)")
            #expect(error.keyPath == testCase.keyPath, "\(error)")
            #expect(error.message.contains(testCase.says), "\(error)")
            #expect(error.file == nil)
            return true
        }
    }

    @Test("every valid fixture part parses (the cases above change one thing each)")
    func baseDocumentIsValid() throws {
        let topology = try TopologyFixtures.topology(TopologyFixtures.document())
        #expect(topology.plan.queues.count == 3 + 9 + 1)
    }

    @Test("an error from a file names the file, then the key path")
    func fileInError() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("topology-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("topology.json")
        try Data(TopologyFixtures.document(receipt: #"{ "partitions": 1 }"#).utf8).write(to: url)

        #expect {
            try Topology.load(contentsOf: url)
        } throws: { error in
            guard let error = error as? TopologyError else { return false }
            #expect(error.file == url.path)
            #expect(error.description.hasPrefix("\(url.path): streams.receipt.partitions: 1 is not a partition count;"))
            return error.code == .invalidPartitions
        }

        let missing = directory.appendingPathComponent("absent.json")
        #expect {
            try Topology.load(contentsOf: missing)
        } throws: { error in
            guard let error = error as? TopologyError else { return false }
            #expect(error.description.hasPrefix("\(missing.path): cannot read the file"))
            return error.code == .unreadableFile
        }
    }
}
