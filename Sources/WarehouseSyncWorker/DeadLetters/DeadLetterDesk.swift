import Foundation
import WarehouseSyncCore
import WarehouseSyncStore

/// What a person's tools do with stored dead letters beside replaying them
/// (``DeadLetterReplayer``): read them page by page or by id, show a body, check and store an
/// edited one. One copy for `whsync dlq` and the dead-letter console (docs/console.md).
public enum DeadLetterDesk {
    /// Every letter matching `filter` (at most `limit`), oldest id first, read 1000 at a time.
    public static func all(_ store: any WorkerStore, _ filter: DeadLetterFilter, limit: Int? = nil) async throws -> [DeadLetterRecord] {
        var letters: [DeadLetterRecord] = []
        var page = filter
        while true {
            let want = min(1000, limit.map { $0 - letters.count } ?? 1000)
            guard want > 0 else { break }
            let batch = try await store.deadLetters(matching: page, limit: want)
            letters += batch
            guard batch.count == want, let last = batch.last else { break }
            page.afterId = last.id
        }
        return letters
    }

    /// The letters `ids` names, in that order; throws ``NotFound`` for the first unknown id.
    public static func letters(_ store: any WorkerStore, ids: [Int64]) async throws -> [DeadLetterRecord] {
        var letters: [DeadLetterRecord] = []
        for id in ids {
            guard let letter = try await store.deadLetter(id: id) else { throw NotFound(id: id) }
            letters.append(letter)
        }
        return letters
    }

    public struct NotFound: Error, Sendable, CustomStringConvertible {
        public let id: Int64
        public var description: String { "no dead letter \(id)" }
    }

    /// A letter's fields, named, as `whsync dlq show` and the console list them (times in RFC 3339, UTC).
    public static func fields(of letter: DeadLetterRecord) -> [(name: String, value: String)] {
        func time(_ date: Date) -> String { Timestamp(date).text }
        return [
            ("id", "\(letter.id)"), ("status", letter.status.rawValue), ("reason", letter.reason.rawValue), ("error", letter.error),
            ("stream", letter.stream?.rawValue ?? "-"), ("eventId", letter.eventId ?? "(none)"), ("key", letter.key ?? "-"),
            ("sequence", letter.sequence.map(String.init) ?? "-"), ("exchange", letter.originalExchange),
            ("routing key", letter.originalRoutingKey), ("first failed", time(letter.firstFailedAt)),
            ("last failed", time(letter.lastFailedAt)), ("failures", "\(letter.failureCount)"), ("replays", "\(letter.replayCount)"),
            ("last replayed", letter.lastReplayedAt.map { "\(time($0)) by \(letter.lastReplayedBy ?? "?")" } ?? "never"),
            ("body edited", letter.bodyEditedAt.map(time) ?? "never"),
        ]
    }

    // MARK: Bodies

    /// A body for a person to read: its text when it is UTF-8 (`isBase64` false), else base64.
    public static func text(of body: [UInt8]) -> (text: String, isBase64: Bool) {
        if let text = String(validating: body, as: UTF8.self) { return (text, false) }
        return (Data(body).base64EncodedString(), true)
    }

    /// The body indented when it is JSON (numbers exactly as written), else as ``text(of:)`` shows it.
    public static func prettyText(of body: [UInt8]) -> String {
        let (text, isBase64) = text(of: body)
        guard !isBase64, let value = try? JSONValue(parsing: body) else { return text }
        return value.serialized(pretty: true)
    }

    /// An edited body as it is stored: trailing line breaks dropped, and, when `compact`, JSON
    /// written on one line again (numbers exactly as written), like the wire: a person edits it
    /// indented (`whsync dlq edit` in an editor, the console in a text box).
    public static func editedBody(_ bytes: [UInt8], compact: Bool) -> [UInt8] {
        if compact, let value = try? JSONValue(parsing: bytes) { return value.serializedBytes() }
        var body = bytes
        while let last = body.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { body.removeLast() }
        return body
    }

    /// Why `body` is not a valid event under `letter`'s routing key (as the workers check
    /// events); `nil` when it is one.
    public static func problem(with body: [UInt8], for letter: DeadLetterRecord) -> String? {
        do {
            _ = try EventDecoder().decode(body, routingKey: letter.originalRoutingKey)
            return nil
        } catch {
            return "\(error)"
        }
    }
}
