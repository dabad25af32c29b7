@testable import AMQPClient
import Logging
import Testing

@Suite struct AMQPDeliveriesTests {
    /// Deliveries still waiting in the stream when their channel closed are skipped: the broker
    /// requeued them and delivers them again on the new channel, where their acks can go.
    @Test func deliveriesOfAClosedChannelWaitingInTheStreamAreSkipped() async throws {
        let engine = ConnectionEngine(
            configuration: try AMQPConfiguration(url: "amqp://127.0.0.1/"),
            options: .init(publisherConfirms: false), logger: Logger(label: "test"))
        func delivery(_ id: String, tag: UInt64, generation: UInt64) -> AMQPDelivery {
            AMQPDelivery(
                body: [], properties: AMQPProperties(messageId: id), exchange: "", routingKey: "q", redelivered: generation > 1,
                deliveryTag: tag, consumerTag: "c", channelGeneration: generation, engine: engine)
        }
        let (stream, continuation) = AsyncStream<[AMQPDelivery]>.makeStream()
        var deliveries = AMQPDeliveries(batches: stream).makeAsyncIterator()
        engine.currentGeneration.store(1, ordering: .releasing)
        continuation.yield([delivery("a", tag: 1, generation: 1), delivery("b", tag: 2, generation: 1), delivery("c", tag: 3, generation: 1)])
        #expect(await deliveries.next()?.properties.messageId == "a")
        // The channel closes while "b" and "c" wait; the new channel delivers them again.
        engine.currentGeneration.store(2, ordering: .releasing)
        continuation.yield([delivery("b", tag: 1, generation: 2), delivery("c", tag: 2, generation: 2)])
        continuation.finish()
        var rest: [String] = []
        while let next = await deliveries.next() {
            #expect(next.redelivered)
            rest.append(next.properties.messageId ?? "?")
        }
        #expect(rest == ["b", "c"])
    }
}
