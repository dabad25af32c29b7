extension Topology {
    /// Derives the concrete objects. Pure: the same topology always gives the same plan, in the
    /// same order (see ``TopologyPlan``). The reasons behind each argument are in `topology/README.md`.
    static func makePlan(
        eventsExchange: String,
        streams: [Stream],
        retry: Retry,
        deadLetter: DeadLetter
    ) -> TopologyPlan {
        var exchanges: [ExchangeSpec] = [
            ExchangeSpec(name: eventsExchange, type: "topic"),
            ExchangeSpec(name: retry.exchange, type: "headers"),
            ExchangeSpec(name: retry.requeueExchange, type: "topic"),
            ExchangeSpec(name: deadLetter.exchange, type: "topic"),
        ]
        var queues: [QueueSpec] = []
        var bindings: [BindingSpec] = []

        for stream in streams {
            let workArguments = workQueueArguments(stream: stream, deadLetterExchange: deadLetter.exchange)
            // Where both the events exchange and the requeue exchange deliver this stream.
            let entry: (name: String, type: BindingSpec.DestinationType)
            if let partitionExchange = stream.partitionExchange {
                exchanges.append(
                    ExchangeSpec(
                        name: partitionExchange,
                        type: "x-consistent-hash",
                        internal: true,
                        arguments: ["hash-header": .string(WireHeader.partitionKey)]
                    )
                )
                var partitionArguments = workArguments
                partitionArguments["x-single-active-consumer"] = true
                for queue in stream.workQueues {
                    queues.append(QueueSpec(name: queue, arguments: partitionArguments))
                }
                entry = (partitionExchange, .exchange)
            } else {
                queues.append(QueueSpec(name: stream.queue, arguments: workArguments))
                entry = (stream.queue, .queue)
            }
            for source in [eventsExchange, retry.requeueExchange] {
                bindings.append(
                    BindingSpec(
                        source: source,
                        destination: entry.name,
                        destinationType: entry.type,
                        routingKey: stream.routingKeyPattern
                    )
                )
            }
            if let partitionExchange = stream.partitionExchange {
                for queue in stream.workQueues {
                    // For x-consistent-hash the routing key is the weight: equal shares.
                    bindings.append(
                        BindingSpec(source: partitionExchange, destination: queue, destinationType: .queue, routingKey: "1")
                    )
                }
            }
        }

        for stream in streams {
            for tier in retry.tiers {
                let queue = retryQueueName(retryExchange: retry.exchange, stream: stream.name, tier: tier)
                queues.append(
                    QueueSpec(
                        name: queue,
                        arguments: [
                            "x-queue-type": "quorum",
                            "x-message-ttl": .int(tier.milliseconds),
                            "x-dead-letter-exchange": .string(retry.requeueExchange),
                            "x-dead-letter-strategy": "at-least-once",
                            "x-overflow": "reject-publish",
                        ]
                    )
                )
                bindings.append(
                    BindingSpec(
                        source: retry.exchange,
                        destination: queue,
                        destinationType: .queue,
                        routingKey: "",
                        arguments: [
                            "x-match": "all",
                            WireHeader.stream: .string(stream.name),
                            WireHeader.retryTier: .string(tier.name),
                        ]
                    )
                )
            }
        }

        queues.append(QueueSpec(name: deadLetter.queue, arguments: ["x-queue-type": "quorum"]))
        bindings.append(
            BindingSpec(source: deadLetter.exchange, destination: deadLetter.queue, destinationType: .queue, routingKey: "#")
        )

        return TopologyPlan(exchanges: exchanges, queues: queues, bindings: bindings)
    }

    static func retryQueueName(retryExchange: String, stream: String, tier: RetryTier) -> String {
        "\(retryExchange).\(stream).\(tier.name)"
    }

    private static func workQueueArguments(stream: Stream, deadLetterExchange: String) -> [String: TopologyValue] {
        [
            "x-queue-type": "quorum",
            "x-delivery-limit": .int(Int64(stream.deliveryLimit)),
            "x-dead-letter-exchange": .string(deadLetterExchange),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        ]
    }
}
