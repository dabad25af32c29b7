import AMQPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import ServiceLifecycle
import WarehouseSyncCore
import WarehouseSyncOps
import WarehouseSyncStore
import WarehouseSyncWorker

/// The dead-letter console (docs/console.md): server-rendered pages over the dead-letter store,
/// served by the replay worker on `CONSOLE_PORT`. Reading needs the read (or write) token;
/// editing and replaying need the write token, and go through the same code as `whsync dlq`
/// (``DeadLetterDesk``, ``DeadLetterReplayer``), so the store writes the same audit entries.
public final class ConsoleServer: Service, Sendable {
    public let configuration: ConsoleConfiguration
    private let store: any WorkerStore
    private let publisher: AMQPConnection
    private let eventsExchange: String
    /// `replay-worker@host`: the audit trail names a person as `alice (console on replay-worker@host)`.
    private let site: String
    private let library: MustacheLibrary
    private let logger: Logger
    private let bound = BoundPort()

    /// The overview reads at most this many pending letters; a group page shows at most ``maxShown``.
    static let maxRead = 10_000
    static let maxShown = 500
    /// The most letters one replay request takes (a group page shows fewer).
    static let maxReplayIds = 1000

    /// `publisher` must be in confirm mode (the replay worker's publisher connection).
    public init(
        configuration: ConsoleConfiguration, store: any WorkerStore, publisher: AMQPConnection,
        eventsExchange: String = RoutingKey.contractExchange, site: String, logger: Logger
    ) throws {
        self.configuration = configuration
        self.store = store
        self.publisher = publisher
        self.eventsExchange = eventsExchange
        self.site = site
        self.library = try ConsoleTemplates.library()
        self.logger = logger
    }

    /// The port the console listens on, once it does (with `CONSOLE_PORT=0`).
    public func boundPort() async -> Int? {
        await bound.value()
    }

    public func run() async throws {
        try await runHTTPServer(
            router: makeRouter(), host: configuration.host, port: configuration.port, serverName: "whsync-console",
            bound: bound, logger: logger, announcement: "dead-letter console listening", addressKey: "console.address")
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("login") { [self] _, _ in page("login", LoginPage(frame: frame("Log in", nil))) }
        router.post("login") { [self] request, _ in try await logIn(request) }
        router.post("logout") { [self] _, _ in logOut() }
        router.get("/") { [self] request, _ in
            try await reading(request) { visitor in try await overview(visitor, query: query(request)) }
        }
        router.get("group") { [self] request, _ in
            try await reading(request) { visitor in try await groupPage(visitor, query: query(request)) }
        }
        router.get("letters/:id") { [self] request, context in
            try await reading(request) { visitor in
                guard let id = context.parameters.get("id", as: Int64.self) else { return notFound(visitor) }
                return try await letterPage(visitor, id: id, query: query(request))
            }
        }
        router.post("replay") { [self] request, _ in
            try await writing(request) { visitor, form in try await replay(visitor, form: form) }
        }
        router.post("letters/:id/edit") { [self] request, context in
            try await writing(request) { visitor, form in
                guard let id = context.parameters.get("id", as: Int64.self) else { return notFound(visitor) }
                return try await edit(visitor, id: id, form: form)
            }
        }
        return router
    }

    // MARK: Access

    /// Who is asking: their role, and the name they gave at login.
    struct Visitor {
        let role: ConsoleAccess.Role
        let name: String
    }

    private func visitor(_ request: Request) -> Visitor? {
        let cookies = request.cookies
        let role = configuration.access.role(
            authorization: request.headers[.authorization], session: cookies[ConsoleAccess.sessionCookie]?.value)
        guard let role else { return nil }
        let name = cookies[ConsoleAccess.nameCookie]?.value.removingPercentEncoding.flatMap(Self.validName) ?? "token-holder"
        return Visitor(role: role, name: name)
    }

    /// A page that only reads: any token; without one, the login page.
    private func reading(_ request: Request, _ body: (Visitor) async throws -> Response) async throws -> Response {
        guard let visitor = visitor(request) else { return redirect("/login") }
        return try await failingSoftly(visitor) { try await body(visitor) }
    }

    /// An action that changes something: the write token, as a bearer header (scripts) or as a
    /// write session whose form carries the form token (browsers), and no foreign `Origin`.
    private func writing(_ request: Request, _ body: (Visitor, ConsoleForm) async throws -> Response) async throws -> Response {
        guard let visitor = visitor(request) else {
            return page("login", LoginPage(frame: frame("Log in", nil, problem: "Log in first.")), status: .unauthorized)
        }
        guard visitor.role == .write else {
            return message(visitor, "Not allowed", "This session can read only: log in with the write token to edit or replay.", status: .forbidden)
        }
        if let origin = request.headers[.origin], !Self.sameOrigin(origin, host: request.head.authority) {
            return message(visitor, "Not allowed", "The form came from another site (\(origin.prefix(100))).", status: .forbidden)
        }
        var request = request
        let form = ConsoleForm(bytes: Array(try await request.collectBody(upTo: 1 << 20).readableBytesView))
        let bearer = request.headers[.authorization] != nil
        guard bearer || configuration.access.acceptsFormToken(form["form-token"]) else {
            return message(visitor, "Not allowed", "The form's token is missing or stale: reload the page and try again.", status: .forbidden)
        }
        return try await failingSoftly(visitor) { try await body(visitor, form) }
    }

    /// A store that fails shows a page saying so (and is logged), not a bare 500.
    private func failingSoftly(_ visitor: Visitor, _ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            logger.error("console: the store failed", metadata: ["error": "\(error)"])
            return message(visitor, "Store error", "The store failed: \(error). Nothing more was done; try again.", status: .serviceUnavailable)
        }
    }

    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, let schemeEnd = origin.range(of: "://") else { return false }
        return origin[schemeEnd.upperBound...] == host[...]
    }

    /// A name for the audit trail: 1-64 of letters, digits and `._@-`.
    static func validName(_ text: String) -> String? {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")
        guard (1...64).contains(text.count), text.allSatisfy(allowed.contains) else { return nil }
        return text
    }

    /// Who did it, for the audit trail.
    private func actor(_ visitor: Visitor) -> String {
        "\(visitor.name) (console on \(site))"
    }

    private func logIn(_ request: Request) async throws -> Response {
        var request = request
        let form = ConsoleForm(bytes: Array(try await request.collectBody(upTo: 64 << 10).readableBytesView))
        guard let name = form["name"].flatMap(Self.validName) else {
            return page("login", LoginPage(frame: frame("Log in", nil, problem: "Give your name: letters, digits and ._@- only.")), status: .badRequest)
        }
        guard let role = configuration.access.role(token: Array((form["token"] ?? "").utf8)) else {
            logger.notice("console: login refused", metadata: ["console.name": "\(name)"])
            return page("login", LoginPage(frame: frame("Log in", nil, problem: "Wrong token.")), status: .unauthorized)
        }
        logger.notice("console: login", metadata: ["console.name": "\(name)", "console.role": "\(role)"])
        var response = redirect("/")
        response.headers.append(HTTPField(name: .setCookie, value: Self.cookie(ConsoleAccess.sessionCookie, configuration.access.session(for: role))))
        response.headers.append(HTTPField(name: .setCookie, value: Self.cookie(ConsoleAccess.nameCookie, name)))
        return response
    }

    private func logOut() -> Response {
        var response = redirect("/login")
        for name in [ConsoleAccess.sessionCookie, ConsoleAccess.nameCookie] {
            response.headers.append(HTTPField(name: .setCookie, value: Self.cookie(name, "", maxAge: 0)))
        }
        return response
    }

    /// A session cookie the page's scripts (there are none) cannot read and other sites' requests
    /// do not carry.
    static func cookie(_ name: String, _ value: String, maxAge: Int? = nil) -> String {
        "\(name)=\(value); Path=/; HttpOnly; SameSite=Strict" + (maxAge.map { "; Max-Age=\($0)" } ?? "")
    }

    // MARK: Pages

    private func overview(_ visitor: Visitor, query: ConsoleForm) async throws -> Response {
        let letters = try await DeadLetterDesk.all(store, DeadLetterFilter(status: .pending), limit: Self.maxRead + 1)
        let truncated = letters.count > Self.maxRead
        let read = letters.prefix(Self.maxRead)
        let now = Date()
        let groups = DeadLetterGroup.groups(of: Array(read)).map { GroupRow($0, now: now) }
        return page("overview", OverviewPage(
            frame: frame("Pending dead letters", visitor), groups: groups, hasGroups: !groups.isEmpty, pending: read.count,
            truncated: truncated))
    }

    private func groupPage(_ visitor: Visitor, query: ConsoleForm) async throws -> Response {
        let streamText = query["stream"] ?? ""
        let stream = EventStream(rawValue: streamText)
        guard streamText.isEmpty || stream != nil, let reason = query["reason"].flatMap(DeadLetterReason.init(rawValue:)),
            let error = query["error"]
        else {
            return message(visitor, "No such group", "The link does not name a stream, reason and error.", status: .badRequest)
        }
        let group = DeadLetterGroup(stream: stream, reason: reason, error: error, count: 0, oldestFailure: Date(), newestFailure: Date())
        var members: [DeadLetterRecord] = []
        var filter = DeadLetterFilter(stream: stream, reason: reason, status: .pending)
        // Page through the stream and reason until enough letters of this error are found.
        while members.count <= Self.maxShown {
            let batch = try await store.deadLetters(matching: filter, limit: 1000)
            members += batch.filter(group.contains)
            guard batch.count == 1000, let last = batch.last else { break }
            filter.afterId = last.id
        }
        let now = Date()
        let shown = members.prefix(Self.maxShown).map { LetterRow($0, now: now) }
        return page("group", GroupPage(
            frame: frame("\(stream?.rawValue ?? "not an event") · \(reason.rawValue)", visitor),
            stream: stream?.rawValue ?? "(not an event)", reason: reason.rawValue, error: error, letters: shown,
            shownIds: shown.map { ShownId(id: $0.id) }, shown: shown.count, truncated: members.count > Self.maxShown,
            first: shown.first, path: group.path, empty: shown.isEmpty))
    }

    private func letterPage(
        _ visitor: Visitor, id: Int64, query: ConsoleForm, problem: String? = nil, editText: String? = nil,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        guard let letter = try await store.deadLetter(id: id) else { return notFound(visitor) }
        let trail = try await store.auditTrail(deadLetterId: id, limit: 1000)
        let notice = query["done"] == "edited" ? "Body saved; the old one is in the history. Replay the letter to send it." : nil
        return page("letter", LetterPage(
            frame: frame("Letter \(id)", visitor, notice: notice, problem: problem), letter: letter, trail: trail,
            refusal: replayer(visitor).refusal(of: letter), editText: editText, now: Date()), status: status)
    }

    // MARK: Actions

    private func replayer(_ visitor: Visitor) -> DeadLetterReplayer {
        DeadLetterReplayer(store: store, publisher: publisher, actor: actor(visitor), eventsExchange: eventsExchange)
    }

    /// Replays exactly the letters the form names (the ids on screen); with `pending-only`, those
    /// that are no longer pending (replayed or purged since the page was shown) are skipped.
    private func replay(_ visitor: Visitor, form: ConsoleForm) async throws -> Response {
        var ids: [Int64] = []
        for text in form.all("id") {
            guard let id = Int64(text) else { return message(visitor, "Bad request", "'\(text.prefix(32))' is not a letter id.", status: .badRequest) }
            if !ids.contains(id) { ids.append(id) }
        }
        guard (1...Self.maxReplayIds).contains(ids.count) else {
            return message(visitor, "Bad request", "Give 1 to \(Self.maxReplayIds) letter ids.", status: .badRequest)
        }
        let pendingOnly = form["pending-only"] == "1"
        var early: [Int64: DeadLetterReplayer.Outcome] = [:]
        var letters: [DeadLetterRecord] = []
        for id in ids {
            guard let letter = try await store.deadLetter(id: id) else {
                early[id] = .skipped(id: id, reason: "no such letter")
                continue
            }
            if pendingOnly && letter.status != .pending {
                early[id] = .skipped(id: id, reason: "\(letter.status) since the page was shown: not replayed again from the group")
                continue
            }
            letters.append(letter)
        }
        let replayed = try await replayer(visitor).replay(letters)
        var byId = early
        for outcome in replayed { byId[outcome.id] = outcome }
        let rows = ids.compactMap { byId[$0] }.map(OutcomeRow.init)
        let count = rows.filter(\.replayed).count
        logger.notice(
            "console: replay",
            metadata: [
                "console.actor": "\(actor(visitor))", "console.ids": "\(ids.map(String.init).joined(separator: ","))",
                "console.replayed": "\(count)", "console.skipped": "\(rows.count - count)",
            ])
        let back = form["return"].flatMap(Self.localPath) ?? "/"
        return page("result", ReplayResultPage(
            frame: frame("Replay", visitor), outcomes: rows, replayed: count, skipped: rows.count - count, back: back))
    }

    /// Checks the new body as `whsync dlq edit` does (a valid event under the letter's routing
    /// key, unless forced), stores it with an audit entry keeping the old one, and shows the letter.
    private func edit(_ visitor: Visitor, id: Int64, form: ConsoleForm) async throws -> Response {
        guard let letter = try await store.deadLetter(id: id) else { return notFound(visitor) }
        let text = form["body"] ?? ""
        let body = DeadLetterDesk.editedBody(Array(text.utf8), compact: true)
        if let problem = DeadLetterDesk.problem(with: body, for: letter), form["force"] != "1" {
            return try await letterPage(
                visitor, id: id, query: ConsoleForm(""),
                problem: "Not saved: the new body is not a valid event under \(letter.originalRoutingKey): \(problem). "
                    + "Mend it, or tick 'store it even if it is not a valid event'.",
                editText: text, status: .unprocessableContent)
        }
        _ = try await store.updateDeadLetterBody(id: id, body: body, by: actor(visitor), at: Date())
        logger.notice("console: body edited", metadata: ["console.actor": "\(actor(visitor))", "console.id": "\(id)"])
        return redirect("/letters/\(id)?done=edited")
    }

    // MARK: Responses

    private func query(_ request: Request) -> ConsoleForm {
        ConsoleForm(Substring(request.uri.query ?? ""))
    }

    /// `path` when it is a path on this console (a form's `return`), never another site.
    static func localPath(_ path: String) -> String? {
        path.hasPrefix("/") && !path.hasPrefix("//") && !path.contains("\\") ? path : nil
    }

    private func frame(_ title: String, _ visitor: Visitor?, notice: String? = nil, problem: String? = nil) -> PageFrame {
        let canWrite = visitor?.role == .write
        return PageFrame(
            title: title, person: visitor?.name, role: visitor.map { "\($0.role)" }, canWrite: canWrite,
            formToken: canWrite ? configuration.access.formToken() : nil, notice: notice, problem: problem)
    }

    private func notFound(_ visitor: Visitor) -> Response {
        message(visitor, "Not found", "No such dead letter.", status: .notFound)
    }

    private func message(_ visitor: Visitor, _ title: String, _ text: String, status: HTTPResponse.Status) -> Response {
        page("overview", OverviewPage(frame: frame(title, visitor, problem: text), groups: [], hasGroups: false, pending: 0, truncated: false), status: status, template: "message")
    }

    private func page(_ name: String, _ content: Any, status: HTTPResponse.Status = .ok, template: String? = nil) -> Response {
        let html = library.render(content, withTemplate: template ?? name) ?? "template \(name) missing"
        var headers = Self.securityHeaders
        headers[.contentType] = "text/html; charset=utf-8"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
    }

    private func redirect(_ location: String) -> Response {
        var headers = Self.securityHeaders
        headers[.location] = location
        return Response(status: .seeOther, headers: headers)
    }

    /// No scripts, no frames, forms to this site only, nothing cached, no referrer to other sites.
    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "same-origin",
        .cacheControl: "no-store",
    ]
}

extension DeadLetterReplayer.Outcome {
    var id: Int64 {
        switch self {
        case .replayed(let letter), .wouldReplay(let letter): letter.id
        case .skipped(let id, _): id
        }
    }
}

extension OutcomeRow {
    init(_ outcome: DeadLetterReplayer.Outcome) {
        switch outcome {
        case .replayed(let letter):
            self.init(id: letter.id, outcome: "replayed", detail: "to \(letter.originalRoutingKey), eventId \(letter.eventId ?? "(none)")", replayed: true)
        case .wouldReplay(let letter):
            self.init(id: letter.id, outcome: "would replay", detail: letter.originalRoutingKey, replayed: false)
        case .skipped(let id, let reason):
            self.init(id: id, outcome: "skipped", detail: reason, replayed: false)
        }
    }
}
