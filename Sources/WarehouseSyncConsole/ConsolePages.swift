import Foundation
import WarehouseSyncCore
import WarehouseSyncStore
import WarehouseSyncWorker

/// Pending dead letters that failed the same way: one stream, one reason, one error text.
public struct DeadLetterGroup: Sendable, Hashable {
    public var stream: EventStream?
    public var reason: DeadLetterReason
    public var error: String
    public var count: Int
    /// The earliest first failure and the latest last failure of its letters.
    public var oldestFailure: Date
    public var newestFailure: Date

    /// Groups `letters` by stream, reason and error: by stream, then reason, then the largest
    /// group first.
    public static func groups(of letters: [DeadLetterRecord]) -> [DeadLetterGroup] {
        var groups: [GroupKey: DeadLetterGroup] = [:]
        for letter in letters {
            let key = GroupKey(stream: letter.stream, reason: letter.reason, error: letter.error)
            if var group = groups[key] {
                group.count += 1
                group.oldestFailure = min(group.oldestFailure, letter.firstFailedAt)
                group.newestFailure = max(group.newestFailure, letter.lastFailedAt)
                groups[key] = group
            } else {
                groups[key] = DeadLetterGroup(
                    stream: letter.stream, reason: letter.reason, error: letter.error, count: 1,
                    oldestFailure: letter.firstFailedAt, newestFailure: letter.lastFailedAt)
            }
        }
        return groups.values.sorted {
            ($0.stream?.rawValue ?? "~", $0.reason.rawValue, -$0.count, $0.error)
                < ($1.stream?.rawValue ?? "~", $1.reason.rawValue, -$1.count, $1.error)
        }
    }

    /// Whether `letter` belongs to the group.
    public func contains(_ letter: DeadLetterRecord) -> Bool {
        letter.stream == stream && letter.reason == reason && letter.error == error
    }

    /// The group's page: `/group?stream=…&reason=…&error=…` (no stream: letters that are not events).
    var path: String {
        "/group?stream=\(stream?.rawValue ?? "")&reason=\(reason.rawValue)&error=\(ConsoleForm.encode(error))"
    }

    private struct GroupKey: Hashable {
        let stream: EventStream?
        let reason: DeadLetterReason
        let error: String
    }
}

/// How long ago, for a person: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
func ageText(since date: Date, now: Date) -> String {
    let seconds = max(0, Int(now.timeIntervalSince(date)))
    switch seconds {
    case ..<60: return "\(seconds) s"
    case ..<3600: return "\(seconds / 60) min"
    case ..<86_400: return "\(seconds / 3600) h \(seconds % 3600 / 60) min"
    default: return "\(seconds / 86_400) d \(seconds % 86_400 / 3600) h"
    }
}

func formatTime(_ date: Date) -> String { Timestamp(date).text }

// MARK: What the templates see (stored properties only: Mustache reads them by reflection)

/// What every page shows in its header, and what its forms carry.
struct PageFrame {
    let title: String
    /// The name given at login and the role, when logged in.
    let person: String?
    let role: String?
    let canWrite: Bool
    /// The `form-token` field of every writing form.
    let formToken: String?
    /// A message at the top: what the last action did.
    let notice: String?
    let problem: String?
}

struct GroupRow {
    let stream: String
    let reason: String
    let error: String
    let count: Int
    let oldestAge: String
    let newestAge: String
    let path: String

    init(_ group: DeadLetterGroup, now: Date) {
        stream = group.stream?.rawValue ?? "(not an event)"
        reason = group.reason.rawValue
        error = group.error
        count = group.count
        oldestAge = ageText(since: group.oldestFailure, now: now)
        newestAge = ageText(since: group.newestFailure, now: now)
        path = group.path
    }
}

struct OverviewPage {
    let frame: PageFrame
    let groups: [GroupRow]
    let hasGroups: Bool
    let pending: Int
    /// More pending letters than were read: the groups cover the oldest ``pending``.
    let truncated: Bool
}

struct LetterRow {
    let id: Int64
    let eventId: String
    let key: String
    let routingKey: String
    let lastFailed: String
    let age: String
    let failures: Int64
    let replays: Int64
    let edited: Bool

    init(_ letter: DeadLetterRecord, now: Date) {
        id = letter.id
        eventId = letter.eventId ?? "(none)"
        key = letter.key ?? "-"
        routingKey = letter.originalRoutingKey
        lastFailed = formatTime(letter.lastFailedAt)
        age = ageText(since: letter.lastFailedAt, now: now)
        failures = letter.failureCount
        replays = letter.replayCount
        edited = letter.bodyEditedAt != nil
    }
}

/// One id of the set on screen, as a hidden form field.
struct ShownId {
    let id: Int64
}

struct GroupPage {
    let frame: PageFrame
    let stream: String
    let reason: String
    let error: String
    let letters: [LetterRow]
    /// Every letter shown, for "replay these": exactly the set on screen.
    let shownIds: [ShownId]
    let shown: Int
    /// More letters in the group than are shown.
    let truncated: Bool
    /// The first letter shown, for "replay one, then the rest".
    let first: LetterRow?
    /// The page's own path, where the forms come back to.
    let path: String
    let empty: Bool
}

struct Field {
    let name: String
    let value: String
}

struct HistoryRow {
    let at: String
    let what: String
    let actor: String
    let detail: String
}

struct LetterPage {
    let frame: PageFrame
    let id: Int64
    let fields: [Field]
    let headers: [Field]
    let hasHeaders: Bool
    let history: [HistoryRow]
    let body: String
    let bodyIsBase64: Bool
    /// The text box's content: the body as indented JSON, or what a refused edit sent.
    let editText: String
    let replayable: Bool
    let refusal: String?
    let groupPath: String
    let path: String

    init(frame: PageFrame, letter: DeadLetterRecord, trail: [AuditEntry], refusal: String?, editText: String?, now: Date) {
        self.frame = frame
        id = letter.id
        fields = DeadLetterDesk.fields(of: letter).map { Field(name: $0.name, value: $0.value) }
        headers = letter.headers.sorted { $0.key < $1.key }.map { Field(name: $0.key, value: $0.value) }
        hasHeaders = !headers.isEmpty
        let failures = HistoryRow(
            at: formatTime(letter.firstFailedAt), what: "failed", actor: letter.headers["whsync-worker"] ?? "-",
            detail: "\(letter.failureCount) time\(letter.failureCount == 1 ? "" : "s"), last \(formatTime(letter.lastFailedAt))")
        history = [failures] + trail.map {
            HistoryRow(at: formatTime($0.entry.at), what: $0.entry.action.rawValue, actor: $0.entry.actor, detail: $0.entry.detail)
        }
        let (text, isBase64) = DeadLetterDesk.text(of: letter.body)
        body = isBase64 ? text : DeadLetterDesk.prettyText(of: letter.body)
        bodyIsBase64 = isBase64
        self.editText = editText ?? body
        self.refusal = refusal
        replayable = refusal == nil
        groupPath = DeadLetterGroup(
            stream: letter.stream, reason: letter.reason, error: letter.error, count: 0, oldestFailure: now, newestFailure: now
        ).path
        path = "/letters/\(letter.id)"
    }
}

struct OutcomeRow {
    let id: Int64
    let outcome: String
    let detail: String
    let replayed: Bool
}

struct ReplayResultPage {
    let frame: PageFrame
    let outcomes: [OutcomeRow]
    let replayed: Int
    let skipped: Int
    let back: String
}

struct LoginPage {
    let frame: PageFrame
}
