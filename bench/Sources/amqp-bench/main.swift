// Publish-with-confirms and consume-with-ack rates of the AMQPClient library on a quorum queue,
// printed in the same form as bench/c/amqp_loop.c so bench/amqp-throughput can set them side by side.
import AMQPClient
import Foundation
import Logging

struct Arguments {
    var url = "amqp://guest:guest@127.0.0.1:5672/"
    var queue = "bench.swift"
    var count = 200_000
    var size = 300
    var window = 1000
    var prefetch: UInt16 = 1000

    init() {
        var iterator = CommandLine.arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            guard let value = iterator.next() else { fatalError("\(flag) needs a value") }
            switch flag {
            case "--url": url = value
            case "--queue": queue = value
            case "--count": count = Int(value)!
            case "--size": size = Int(value)!
            case "--window": window = Int(value)!
            case "--prefetch": prefetch = UInt16(value)!
            default: fatalError("unknown flag \(flag)")
            }
        }
    }
}

let arguments = Arguments()
let logger = Logger(label: "amqp-bench")
let configuration = try AMQPConfiguration(url: arguments.url, connectionName: "amqp-bench")

let admin = try await AMQPConnection.connect(configuration, options: .init(reconnect: nil), logger: logger)
let queue = arguments.queue
try await admin.withChannel { channel in
    try channel.deleteQueue(queue)
    try channel.declareQueue(queue, arguments: ["x-queue-type": "quorum"])
}

// Publish: a window of messages in flight, refilled batch by batch as confirms arrive.
let publisher = try await AMQPConnection.connect(
    configuration, options: .init(publisherConfirms: true, reconnect: nil), logger: logger)
let body = [UInt8](repeating: UInt8(ascii: "x"), count: arguments.size)
let message = OutboundMessage(
    exchange: "", routingKey: queue, body: body, properties: AMQPProperties(deliveryMode: .persistent))
let batchSize = max(arguments.window / 4, 1)
let publishStart = ContinuousClock.now
let failures = await withTaskGroup(of: Int.self) { group in
    var sent = 0
    var failures = 0
    func addBatch() {
        let n = min(batchSize, arguments.count - sent)
        sent += n
        group.addTask {
            await publisher.publish(Array(repeating: message, count: n)).filter { (try? $0.get()) == nil }.count
        }
    }
    for _ in 0..<4 where sent < arguments.count { addBatch() }
    for await failed in group {
        failures += failed
        if sent < arguments.count { addBatch() }
    }
    return failures
}
let publishElapsed = publishStart.duration(to: .now)
guard failures == 0 else { fatalError("\(failures) publishes failed") }
let publishRate = Double(arguments.count) / publishElapsed.secondsDouble
print("swift publish-confirm msgs/s: \(Int(publishRate))")
await publisher.close()

// Consume with one ack per message.
let consumerConnection = try await AMQPConnection.connect(configuration, options: .init(reconnect: nil), logger: logger)
let consumeStart = ContinuousClock.now
let consumer = try await consumerConnection.consume(queue: queue, prefetch: arguments.prefetch)
let received = await consumeAll(consumer, count: arguments.count)
let consumeElapsed = consumeStart.duration(to: .now)
print("swift consume-ack msgs/s: \(Int(Double(received) / consumeElapsed.secondsDouble))")
await consumer.cancel()
await consumerConnection.close()
try await admin.withChannel { channel in try channel.deleteQueue(queue) }
await admin.close()

/// Top-level code runs on the main actor; a worker's consumer loop runs in a task of its own,
/// so the benchmark does too (otherwise every delivery pays a hop to the main thread).
@concurrent
func consumeAll(_ consumer: AMQPConsumer, count: Int) async -> Int {
    var received = 0
    for await delivery in consumer.deliveries {
        delivery.ack()
        received += 1
        if received == count { break }
    }
    return received
}

extension Duration {
    var secondsDouble: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
