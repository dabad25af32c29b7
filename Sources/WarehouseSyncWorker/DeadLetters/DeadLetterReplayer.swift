import AMQPClient
import Foundation
import WarehouseSyncCore
import WarehouseSyncPublisher
import WarehouseSyncStore

/// Replays stored dead letters (DESIGN §6): the one replay path of `whsync dlq replay` and the
/// replay worker's automatic replays.
///
/// A replay republishes the letter's body (as edited, if it was) to its original exchange and
/// routing key with publisher confirms and `mandatory`, provided that exchange is the events
/// exchange and the key an event routing key (a letter's headers come from whoever published it
/// to the dead-letter exchange: they must not steer a replay anywhere else), keeps the `eventId` (`message_id`, so
/// dedup still holds), drops the failure's headers (so it gets fresh attempts), adds
/// `whsync-replay-of: <id>`, and records who replayed it and when, after the broker confirmed.
public struct DeadLetterReplayer: Sendable {
    public enum Outcome: Sendable, Hashable {
        case replayed(DeadLetterRecord)
        /// `--dry-run`: what would be published.
        case wouldReplay(DeadLetterRecord)
        /// Not replayed, and why (purged, not bound for the events exchange, or the broker refused it).
        case skipped(id: Int64, reason: String)
    }

    private let store: any WorkerStore
    private let publisher: AMQPConnection?
    /// Who replays: `whsync dlq replay` (user@host) or `replay-worker@host`.
    public let actor: String
    /// The only exchange replays go to: the topology's events exchange.
    public let eventsExchange: String

    /// `publisher` must be in confirm mode; `nil` allows dry runs only.
    public init(
        store: any WorkerStore, publisher: AMQPConnection?, actor: String, eventsExchange: String = RoutingKey.contractExchange
    ) {
        self.store = store
        self.publisher = publisher
        self.actor = actor
        self.eventsExchange = eventsExchange
    }

    /// Why `letter` must not be replayed, if it must not: its origin is not an event published to
    /// the events exchange.
    public func refusal(of letter: DeadLetterRecord) -> String? {
        if letter.status == .purged { return "purged" }
        guard letter.originalExchange == eventsExchange else {
            return "its original exchange '\(letter.originalExchange.prefix(64))' is not the events exchange '\(eventsExchange)'"
        }
        guard RoutingKey(parsing: letter.originalRoutingKey) != nil else {
            return "its original routing key '\(letter.originalRoutingKey.prefix(64))' is not <stream>.<warehouse>"
        }
        return nil
    }

    /// The message a replay of `letter` publishes.
    public static func message(for letter: DeadLetterRecord) -> OutboundMessage {
        var headers: AMQPTable = [:]
        for (name, value) in letter.headers where !DeadLetterIntake.failureHeaders.contains(name) && !name.hasPrefix(WireHeader.brokerPrefix) {
            headers[name] = .string(value)
        }
        headers[WireHeader.replayOf] = .string(String(letter.id))
        // The body is the truth (it may have been edited): take the partition key, the eventId and
        // the correlation id from it when it reads as an event.
        let event = try? EventDecoder().decode(letter.body)
        if let event { headers[WireHeader.partitionKey] = .string(event.sequencingKey) }
        return OutboundMessage(
            exchange: letter.originalExchange, routingKey: letter.originalRoutingKey, body: letter.body,
            properties: AMQPProperties(
                contentType: "application/json", headers: headers, deliveryMode: .persistent,
                correlationId: event?.header.correlationId, messageId: event?.eventId ?? letter.eventId,
                type: event?.schema ?? letter.stream?.schema),
            mandatory: true)
    }

    /// Replays `letters` one after the other, at most `perSecond` a second (`nil`: unbounded).
    /// `progress` sees every outcome as it happens.
    public func replay(
        _ letters: [DeadLetterRecord], dryRun: Bool = false, perSecond: Double? = nil,
        progress: @Sendable (Outcome) -> Void = { _ in }
    ) async throws -> [Outcome] {
        let clock = ContinuousClock()
        let interval = perSecond.map { Duration.seconds(1 / max($0, 0.001)) }
        var next = clock.now
        var outcomes: [Outcome] = []
        for letter in letters {
            let outcome: Outcome
            if let refusal = refusal(of: letter) {
                outcome = .skipped(id: letter.id, reason: refusal)
            } else if dryRun {
                outcome = .wouldReplay(letter)
            } else {
                guard let publisher else { throw ReplayError("no broker connection to replay through") }
                if let interval {
                    try await clock.sleep(until: next)
                    next = max(next, clock.now).advanced(by: interval)
                }
                let published: Result<Void, AMQPError>
                do {
                    try await publisher.publish(Self.message(for: letter).stampedPublished())
                    published = .success(())
                } catch {
                    published = .failure(error)
                }
                switch published {
                case .failure(let error):
                    outcome = .skipped(id: letter.id, reason: "not published: \(error)")
                case .success:
                    do {
                        outcome = .replayed(try await store.markReplayed(id: letter.id, by: actor, at: Date()))
                    } catch {
                        // Published, not recorded (purged meanwhile, or the store is down): say so
                        // and go on; a later replay of it is a duplicate, harmless by its eventId.
                        outcome = .skipped(id: letter.id, reason: "published, but the replay was not recorded: \(error)")
                    }
                }
            }
            progress(outcome)
            outcomes.append(outcome)
        }
        return outcomes
    }
}

public struct ReplayError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
