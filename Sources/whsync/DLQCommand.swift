import AMQPClient
import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

/// `whsync dlq`: the dead letters the replay worker stored (DESIGN §6, §9).
struct DLQCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect, edit, replay, purge and export dead letters (the replay worker stores them).",
        subcommands: [List.self, Show.self, Replay.self, Edit.self, Purge.self, Export.self])

    /// The conditions every filtering subcommand accepts.
    struct FilterOptions: ParsableArguments {
        @Option(help: "inventory, shipment or receipt.")
        var stream: EventStream?
        @Option(help: "invalid, conflict, erp-rejected, retries-exhausted, gap-timeout or delivery-limit.")
        var reason: DeadLetterReason?
        @Option(help: "Warehouse code, as in the routing key.")
        var warehouse: String?
        @Option(help: "Sequencing key, e.g. WH1/SKU-0001.")
        var key: String?
        @Option(help: "Failed at or after: an RFC 3339 time or a duration back from now (2h).")
        var since: String?
        @Option(help: "Failed before: an RFC 3339 time or a duration back from now.")
        var until: String?
        @Option(help: "pending, replayed or purged (default: any).")
        var status: DeadLetterStatus?

        func filter(defaultStatus: DeadLetterStatus? = nil) throws -> DeadLetterFilter {
            DeadLetterFilter(
                stream: stream, reason: reason, warehouse: warehouse, key: key,
                failedFrom: try since.map(parseSince), failedBefore: try until.map(parseSince),
                status: status ?? defaultStatus)
        }

        var isEmpty: Bool {
            stream == nil && reason == nil && warehouse == nil && key == nil && since == nil && until == nil && status == nil
        }
    }

    /// Every letter matching `filter`, page by page.
    static func all(_ store: any WorkerStore, _ filter: DeadLetterFilter, limit: Int? = nil) async throws -> [DeadLetterRecord] {
        try await DeadLetterDesk.all(store, filter, limit: limit)
    }

    static func letters(_ store: any WorkerStore, ids: [Int64]) async throws -> [DeadLetterRecord] {
        try await DeadLetterDesk.letters(store, ids: ids)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters, oldest first.")
        @OptionGroup var filter: FilterOptions
        @Option(help: "At most this many.") var limit = 1000
        @Flag(help: "One JSON array on stdout.") var json = false
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
            // One more than shown, to say when the list is cut short.
            var letters = try await store.withStore(logger: broker.logger()) { store in
                try await DLQCommand.all(store, filter.filter(), limit: limit + 1)
            }
            let more = letters.count > limit
            if more {
                letters.removeLast()
                printError(
                    "more than \(limit) letter\(limit == 1 ? "" : "s") match; these are the oldest \(limit): narrow the list "
                        + "(--status pending, --since 2h, --reason ...) or raise --limit")
            }
            if json { return try printJSON(letters.map(DeadLetterSummary.init)) }
            print("id      status    reason             stream     failed at                 replays  eventId / error")
            for letter in letters {
                let stream = letter.stream?.rawValue ?? "-"
                print(
                    "\(pad(letter.id, 7)) \(pad(letter.status, 9)) \(pad(letter.reason, 18)) \(pad(stream, 10)) "
                        + "\(pad(formatTime(letter.lastFailedAt), 25)) \(pad(letter.replayCount, 8)) \(letter.eventId ?? "(none)")")
                print("        \(letter.originalRoutingKey): \(letter.error)")
            }
            printError("\(letters.count) dead letter\(letters.count == 1 ? "" : "s")")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one dead letter with its headers and body.")
        @Argument(help: "The dead letter's id.") var id: Int64
        @Flag(help: "One JSON object on stdout.") var json = false
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let (letter, trail) = try await store.withStore(logger: broker.logger()) { store in
                (try await DLQCommand.letters(store, ids: [id])[0], try await store.auditTrail(deadLetterId: id, limit: 1000))
            }
            var detail = DeadLetterDetail(letter)
            detail.history = trail.map(AuditView.init)
            if json { return try printJSON(detail) }
            for (name, value) in DeadLetterDesk.fields(of: letter) { print("\(pad(name, 16)) \(value)") }
            print("headers")
            for (name, value) in letter.headers.sorted(by: { $0.key < $1.key }) { print("  \(name): \(value)") }
            print("history")
            print("  \(formatTime(letter.firstFailedAt))  failed (\(letter.failureCount) time\(letter.failureCount == 1 ? "" : "s"), last \(formatTime(letter.lastFailedAt)))")
            for entry in detail.history ?? [] {
                print("  \(entry.at)  \(entry.action) by \(entry.actor): \(entry.detail)")
            }
            print("body (\(letter.body.count) bytes\(detail.bodyEncoding == "base64" ? ", base64" : ""))")
            print(detail.prettyBody)
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish dead letters again to their original exchange and routing key.",
            discussion: """
                Give ids, or a filter (--reason, --stream, ...), or --all; a filter takes pending letters only \
                unless --status says otherwise. The eventId is kept, so an event the ERP already has is a \
                duplicate; the message carries whsync-replay-of: <id> and gets fresh posting attempts.
                """)
        @Argument(help: "Dead letter ids.") var ids: [Int64] = []
        @OptionGroup var filter: FilterOptions
        @Flag(help: "Every pending letter.") var all = false
        @Flag(help: "Show what would be replayed; publish nothing.") var dryRun = false
        @Option(help: "At most this many letters a second.") var rate: Double?
        @Flag(help: "One JSON array of outcomes on stdout.") var json = false
        @OptionGroup var actor: ActorOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func validate() throws {
            let ways = [!ids.isEmpty, !filter.isEmpty, all].filter { $0 }.count
            guard ways == 1 else { throw ValidationError("give dead letter ids, a filter (--reason, --stream, …) or --all: exactly one") }
            if let rate, rate <= 0 { throw ValidationError("--rate must be more than 0") }
        }

        func run() async throws {
            let logger = try broker.logger()
            let outcomes = try await store.withStore(logger: logger) { store in
                let letters = ids.isEmpty
                    ? try await DLQCommand.all(store, try filter.filter(defaultStatus: .pending))
                    : try await DLQCommand.letters(store, ids: ids)
                let actor = self.actor.name
                if dryRun {
                    return try await DeadLetterReplayer(store: store, publisher: nil, actor: actor).replay(letters, dryRun: true)
                }
                return try await broker.withConnection(name: "whsync dlq replay", confirms: true) { connection in
                    try await DeadLetterReplayer(store: store, publisher: connection, actor: actor).replay(
                        letters, perSecond: rate
                    ) { outcome in
                        if !json { printError(ReplayOutcome(outcome).line) }
                    }
                }
            }
            let views = outcomes.map(ReplayOutcome.init)
            if json {
                try printJSON(views)
            } else if dryRun {
                for view in views { print(view.line) }
            }
            let replayed = views.filter { $0.outcome == "replayed" }.count
            let skipped = views.filter { $0.outcome == "skipped" }.count
            printError(dryRun ? "would replay \(views.count - skipped), skip \(skipped)" : "replayed \(replayed), skipped \(skipped)")
            if skipped > 0 && !dryRun { throw ExitCode(1) }
        }
    }

    struct Edit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace a dead letter's body (then replay it).",
            discussion: "The new body is checked as the workers check events; --force stores a body that fails the check.")
        @Argument(help: "The dead letter's id.") var id: Int64
        @Option(name: .customLong("body-file"), help: "File with the new body, or - for stdin. Default: open $VISUAL or $EDITOR.")
        var bodyFile: String?
        @Flag(help: "Store the body even if it is not a valid event.") var force = false
        @OptionGroup var actor: ActorOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let data: Data
            switch bodyFile {
            case "-": data = FileHandle.standardInput.readDataToEndOfFile()
            case let path?: data = try Data(contentsOf: URL(fileURLWithPath: path))
            case nil: data = try await editInEditor()
            }
            // Pretty-printed JSON from the editor is stored compact again: one event, one line, like the wire.
            let body = DeadLetterDesk.editedBody(Array(data), compact: bodyFile == nil)
            try await store.withStore(logger: broker.logger()) { store in
                let letter = try await DLQCommand.letters(store, ids: [id])[0]
                if let problem = DeadLetterDesk.problem(with: body, for: letter) {
                    guard force else { throw ValidationError("the new body is not a valid event under \(letter.originalRoutingKey): \(problem) (--force stores it anyway)") }
                    printError("warning: storing a body that is not a valid event: \(problem)")
                }
                let updated = try await store.updateDeadLetterBody(id: id, body: body, by: actor.name, at: Date())
                printError("dead letter \(updated.id): body replaced (\(body.count) bytes; the original is in its history); replay it with `whsync dlq replay \(updated.id)`")
            }
        }

        /// Opens the letter's body in the operator's editor and returns what was saved.
        private func editInEditor() async throws -> Data {
            let environment = ProcessInfo.processInfo.environment
            guard let editor = [environment["VISUAL"], environment["EDITOR"]].compactMap({ $0 }).first(where: { !$0.isEmpty }),
                isatty(STDIN_FILENO) != 0
            else {
                throw ValidationError("no --body-file, and no $VISUAL or $EDITOR on a terminal to edit in")
            }
            let letter = try await store.withStore(logger: broker.logger()) { try await DLQCommand.letters($0, ids: [id])[0] }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("whsync-dlq-\(id)-\(UUID().uuidString.prefix(8)).json")
            try Data(DeadLetterDetail(letter).prettyBody.utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // Through the shell: EDITOR may carry arguments ("code --wait").
            process.arguments = ["-c", "\(editor) \"$1\"", "editor", file.path]
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw ValidationError("the editor exited with \(process.terminationStatus); nothing changed") }
            return try Data(contentsOf: file)
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark dead letters purged: never replayed, pruned after the retention.",
            discussion: "Give ids, or a filter, or --all (which purges every pending letter).")
        @Argument(help: "Dead letter ids.") var ids: [Int64] = []
        @OptionGroup var filter: FilterOptions
        @Flag(help: "Every pending letter.") var all = false
        @Flag(help: "Do not ask for confirmation (required without a terminal).") var yes = false
        @OptionGroup var actor: ActorOptions
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func validate() throws {
            let ways = [!ids.isEmpty, !filter.isEmpty, all].filter { $0 }.count
            guard ways == 1 else { throw ValidationError("give dead letter ids, a filter (--reason, --stream, …) or --all: exactly one") }
        }

        func run() async throws {
            if !yes {
                guard isatty(STDIN_FILENO) != 0 else { throw ValidationError("purging needs --yes when not run from a terminal") }
                FileHandle.standardError.write(Data("Purge the selected dead letters? They will never be replayed. [y/N] ".utf8))
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    printError("nothing purged")
                    return
                }
            }
            let purged = try await store.withStore(logger: broker.logger()) { store in
                ids.isEmpty
                    ? try await store.purgeDeadLetters(matching: try filter.filter(defaultStatus: .pending), by: actor.name, at: Date())
                    : try await store.purgeDeadLetters(ids: ids, by: actor.name, at: Date())
            }
            printError("purged \(purged) dead letter\(purged == 1 ? "" : "s")")
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write dead letters, bodies and headers included, as JSON lines (one letter per line).")
        @OptionGroup var filter: FilterOptions
        @Option(name: .shortAndLong, help: "Output file (default: stdout).") var output: String?
        @OptionGroup var store: StoreOptions
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let letters = try await store.withStore(logger: broker.logger()) { store in
                try await DLQCommand.all(store, filter.filter())
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var data = Data()
            for letter in letters {
                data += try encoder.encode(DeadLetterDetail(letter))
                data += Data("\n".utf8)
            }
            if let output {
                try data.write(to: URL(fileURLWithPath: output))
            } else {
                FileHandle.standardOutput.write(data)
            }
            printError("exported \(letters.count) dead letter\(letters.count == 1 ? "" : "s")")
        }
    }
}

/// `dlq list --json`: the fields DESIGN §9 promises, and a few more.
struct DeadLetterSummary: Encodable {
    let id: Int64
    let stream: String?
    let reason: String
    let eventId: String?
    let routingKey: String
    let error: String
    let failedAt: String
    let replayCount: Int64
    let status: String
    let key: String?
    let warehouse: String?
    let firstFailedAt: String
    let failureCount: Int64
    let lastReplayedAt: String?
    let lastReplayedBy: String?

    init(_ letter: DeadLetterRecord) {
        id = letter.id
        stream = letter.stream?.rawValue
        reason = letter.reason.rawValue
        eventId = letter.eventId
        routingKey = letter.originalRoutingKey
        error = letter.error
        failedAt = formatTime(letter.lastFailedAt)
        replayCount = letter.replayCount
        status = letter.status.rawValue
        key = letter.key
        warehouse = letter.warehouse
        firstFailedAt = formatTime(letter.firstFailedAt)
        failureCount = letter.failureCount
        lastReplayedAt = letter.lastReplayedAt.map(formatTime)
        lastReplayedBy = letter.lastReplayedBy
    }

    // Absent values are written as null: scripts can rely on every key being there.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(stream, forKey: .stream)
        try container.encode(reason, forKey: .reason)
        try container.encode(eventId, forKey: .eventId)
        try container.encode(routingKey, forKey: .routingKey)
        try container.encode(error, forKey: .error)
        try container.encode(failedAt, forKey: .failedAt)
        try container.encode(replayCount, forKey: .replayCount)
        try container.encode(status, forKey: .status)
        try container.encode(key, forKey: .key)
        try container.encode(warehouse, forKey: .warehouse)
        try container.encode(firstFailedAt, forKey: .firstFailedAt)
        try container.encode(failureCount, forKey: .failureCount)
        try container.encode(lastReplayedAt, forKey: .lastReplayedAt)
        try container.encode(lastReplayedBy, forKey: .lastReplayedBy)
    }

    enum CodingKeys: String, CodingKey {
        case id, stream, reason, eventId, routingKey, error, failedAt, replayCount, status, key, warehouse, firstFailedAt,
            failureCount, lastReplayedAt, lastReplayedBy
    }
}

/// `dlq show --json` and `dlq export`: the summary plus origin, headers and body.
struct DeadLetterDetail: Encodable {
    let summary: DeadLetterSummary
    let originalExchange: String
    let sequence: Int64?
    let headers: [String: String]
    let body: String
    /// `utf8` when the body is text, else `base64`.
    let bodyEncoding: String
    /// The audit trail (`dlq show`); `nil` in exports.
    var history: [AuditView]?

    /// The body indented when it is JSON (numbers exactly as written), as it is otherwise.
    let prettyBody: String

    init(_ letter: DeadLetterRecord) {
        summary = DeadLetterSummary(letter)
        originalExchange = letter.originalExchange
        sequence = letter.sequence
        headers = letter.headers
        let (text, isBase64) = DeadLetterDesk.text(of: letter.body)
        (body, bodyEncoding) = (text, isBase64 ? "base64" : "utf8")
        prettyBody = DeadLetterDesk.prettyText(of: letter.body)
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(originalExchange, forKey: .originalExchange)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(headers, forKey: .headers)
        try container.encode(body, forKey: .body)
        try container.encode(bodyEncoding, forKey: .bodyEncoding)
        if let history { try container.encode(history, forKey: .history) }
    }

    enum CodingKeys: String, CodingKey {
        case originalExchange, sequence, headers, body, bodyEncoding, history
    }
}

/// One audit entry of a letter, for `dlq show`.
struct AuditView: Encodable {
    let at: String
    let actor: String
    let action: String
    let detail: String
    /// For an edit: the body it replaced.
    let previousBody: String?

    init(_ entry: AuditEntry) {
        at = formatTime(entry.entry.at)
        actor = entry.entry.actor
        action = entry.entry.action.rawValue
        detail = entry.entry.detail
        previousBody = entry.entry.previousBody.map { String(decoding: $0, as: UTF8.self) }
    }
}

/// One replay's outcome, for the terminal and `--json`.
struct ReplayOutcome: Encodable {
    let id: Int64
    let outcome: String
    let eventId: String?
    let routingKey: String?
    let detail: String?

    init(_ outcome: DeadLetterReplayer.Outcome) {
        switch outcome {
        case .replayed(let letter):
            (id, self.outcome, eventId, routingKey, detail) = (letter.id, "replayed", letter.eventId, letter.originalRoutingKey, nil)
        case .wouldReplay(let letter):
            (id, self.outcome, eventId, routingKey, detail) = (letter.id, "would-replay", letter.eventId, letter.originalRoutingKey, nil)
        case .skipped(let id, let reason):
            (self.id, self.outcome, eventId, routingKey, detail) = (id, "skipped", nil, nil, reason)
        }
    }

    var line: String {
        "\(outcome) \(id)" + (routingKey.map { " → \($0)" } ?? "") + (eventId.map { " (eventId \($0))" } ?? "") + (detail.map { ": \($0)" } ?? "")
    }
}

/// Left-aligned in `width` columns.
func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
    let text = value.description
    return text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
