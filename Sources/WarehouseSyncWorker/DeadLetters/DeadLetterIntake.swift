import AMQPClient
import Foundation
import WarehouseSyncCore
import WarehouseSyncStore

/// Reads a message of the dead-letter queue into the row the store keeps (DESIGN §6).
///
/// A letter a worker sent carries the `whsync-*` headers (``DeadLetterHeaders``). A letter the
/// broker dead-lettered by itself (past the queue's `x-delivery-limit`, after workers crashed on
/// it again and again) carries only `x-death`: its reason is `delivery-limit`, its origin and
/// time come from the first `x-death` entry. Pure: no I/O.
public enum DeadLetterIntake {
    /// Headers that describe one failure, not the event: dropped from the stored headers (they are
    /// in the row's columns) and never replayed.
    static let failureHeaders = DeadLetterHeaders.names.union([WireHeader.stream, WireHeader.retryTier])

    public static func letter(
        body: [UInt8], properties: AMQPProperties, routingKey: String, receivedAt: Date, topology: Topology,
        decoder: EventDecoder = EventDecoder()
    ) -> NewDeadLetter {
        let headers = properties.headers
        let death = firstDeath(headers)
        let reason: DeadLetterReason
        let error: String
        if let text = headers[WireHeader.reason]?.stringValue, let known = DeadLetterReason(rawValue: text) {
            reason = known
            error = headers[WireHeader.error]?.stringValue ?? ""
        } else if let text = headers[WireHeader.reason]?.stringValue {
            // A reason from a newer worker: keep the letter, say what it claimed.
            reason = .invalid
            error = "unknown whsync-reason '\(text.prefix(64))': \(headers[WireHeader.error]?.stringValue ?? "")"
        } else {
            let brokerReason = death?["reason"]?.stringValue ?? "unknown"
            reason = .deliveryLimit
            error = "dead-lettered by the broker (x-death reason \(brokerReason), queue \(death?["queue"]?.stringValue ?? "?"))"
        }
        var originalExchange = headers[WireHeader.originalExchange]?.stringValue
            ?? death?["exchange"]?.stringValue ?? topology.eventsExchange
        // A message that came back from a retry tier was last published by the requeue exchange.
        if originalExchange == topology.retry.requeueExchange || originalExchange.isEmpty {
            originalExchange = topology.eventsExchange
        }
        let originalRoutingKey = headers[WireHeader.originalRoutingKey]?.stringValue
            ?? death.flatMap(firstRoutingKey) ?? routingKey

        var failedAt = receivedAt
        if let text = headers[WireHeader.failedAt]?.stringValue, let stamp = Timestamp(parsing: text) {
            failedAt = Date(timeIntervalSince1970: Double(stamp.secondsSince1970) + Double(stamp.nanosecond) / 1e9)
        } else if case .timestamp(let seconds)? = death?["time"] {
            failedAt = Date(timeIntervalSince1970: TimeInterval(seconds))
        }

        var letter = NewDeadLetter(
            stream: nil, reason: reason, error: error, originalExchange: originalExchange,
            originalRoutingKey: originalRoutingKey,
            headers: headers.filter { !failureHeaders.contains($0.key) && !$0.key.hasPrefix(WireHeader.brokerPrefix) }.compactMapValues(\.stringValue),
            body: body, failedAt: failedAt)
        // What the body says, as far as it can be read: an invalid letter may still name its event.
        if let event = try? decoder.decode(body) {
            letter.stream = event.stream
            letter.eventId = event.eventId
            letter.key = event.sequencingKey
            letter.sequence = event.sequence
        } else {
            letter.stream = RoutingKey(parsing: originalRoutingKey)?.stream
                ?? EventStream(rawValue: String(originalRoutingKey.prefix { $0 != "." }))
            // An invalid event still names itself when its body is JSON; else the message id may.
            let named = (try? JSONValue(parsing: body))?["eventId"]?.stringValue ?? properties.messageId
            letter.eventId = named.flatMap { $0.isEmpty ? nil : String($0.prefix(EventDecoder.maxEventIdLength)) }
        }
        return letter
    }

    private static func firstDeath(_ headers: AMQPTable) -> AMQPTable? {
        guard case .array(let deaths)? = headers[WireHeader.death], case .table(let first)? = deaths.first else { return nil }
        return first
    }

    private static func firstRoutingKey(_ death: AMQPTable) -> String? {
        guard case .array(let keys)? = death["routing-keys"] else { return nil }
        return keys.first?.stringValue
    }
}
