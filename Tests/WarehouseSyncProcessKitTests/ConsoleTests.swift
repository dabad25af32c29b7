import Foundation
import Testing
@testable import WarehouseSyncConsole
import WarehouseSyncCore
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncTesting

private let readToken = "read-token-0123456789abcdef"
private let writeToken = "write-token-0123456789abcdef"
private let access = ConsoleAccess(readToken: Array(readToken.utf8), writeToken: Array(writeToken.utf8))

/// A pending letter as the store returns it.
func consoleLetter(
    id: Int64, stream: EventStream? = .inventory, reason: DeadLetterReason = .erpRejected, error: String = "unknown SKU",
    firstFailedAt: Date = Date(timeIntervalSince1970: 1_800_000_000), lastFailedAt: Date? = nil,
    body: [UInt8] = Array(#"{"eventId":"e1"}"#.utf8), headers: [String: String] = [:]
) -> DeadLetterRecord {
    DeadLetterRecord(
        id: id, identity: "identity-\(id)", stream: stream, reason: reason, error: error, eventId: "e\(id)", key: "WH1/SKU-\(id)",
        sequence: 1, warehouse: "WH1", originalExchange: "wms.events", originalRoutingKey: "inventory.WH1", headers: headers,
        body: body, firstFailedAt: firstFailedAt, lastFailedAt: lastFailedAt ?? firstFailedAt, failureCount: 1, replayCount: 0,
        lastReplayedAt: nil, lastReplayedBy: nil, bodyEditedAt: nil, status: .pending, statusChangedAt: firstFailedAt)
}

@Suite("Dead-letter console: settings and access")
struct ConsoleSettingsTests {
    /// Token files in a temp dir: `read`, `write`, `short`.
    func withTokenFiles(_ body: ([String: String]) throws -> Void) throws {
        let directory = try TestDirectory.make("console-tokens")
        defer { try? FileManager.default.removeItem(at: directory) }
        var paths: [String: String] = [:]
        for (name, content) in [("read", readToken + "\n"), ("write", writeToken), ("short", "abc"), ("same", readToken)] {
            let path = directory.appendingPathComponent(name).path
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            paths[name] = path
        }
        try body(paths)
    }

    @Test func theConsoleIsOffWithoutAPort() throws {
        #expect(try ConsoleConfiguration.read(environment: [:]) == nil)
    }

    @Test func aPortWithReadAndWriteTokensStartsTheConsoleOnLoopback() throws {
        try withTokenFiles { files in
            let configuration = try #require(try ConsoleConfiguration.read(
                environment: ["CONSOLE_PORT": "0", "CONSOLE_TOKEN_FILE": files["read"]!],
                overrides: ["CONSOLE_WRITE_TOKEN_FILE": files["write"]!]))
            #expect(configuration.host == "127.0.0.1")
            #expect(configuration.port == 0)
            #expect(configuration.access.allowsWriting)
            #expect(configuration.access.role(token: Array(readToken.utf8)) == .read)
            #expect(configuration.access.role(token: Array(writeToken.utf8)) == .write)
            #expect(!"\(configuration)".contains(readToken) && !"\(configuration)".contains(writeToken))
        }
    }

    static let refusals: [([String: String], String)] = [
        (["CONSOLE_PORT": "8088"], "CONSOLE_TOKEN_FILE: not set"),
        (["CONSOLE_PORT": "http", "CONSOLE_TOKEN_FILE": "read"], "CONSOLE_PORT: "),
        (["CONSOLE_PORT": "0", "CONSOLE_TOKEN_FILE": "short"], "CONSOLE_TOKEN_FILE: "),
        (["CONSOLE_PORT": "0", "CONSOLE_TOKEN_FILE": "read", "CONSOLE_WRITE_TOKEN_FILE": "same"], "CONSOLE_WRITE_TOKEN_FILE: holds the same token"),
        (["CONSOLE_PORT": "0", "CONSOLE_TOKEN_FILE": "/nonexistent/token"], "cannot read '/nonexistent/token'"),
        (["CONSOLE_TOKEN_FILE": "read"], "CONSOLE_TOKEN_FILE: is set, but CONSOLE_PORT is not"),
    ]

    @Test("an unusable console setting stops the start, named", arguments: refusals)
    func refused(environment: [String: String], problem: String) throws {
        try withTokenFiles { files in
            let resolved = environment.mapValues { files[$0] ?? $0 }
            #expect {
                _ = try ConsoleConfiguration.read(environment: resolved)
            } throws: { error in
                "\(error)".contains(problem) && !"\(error)".contains(readToken)
            }
        }
    }

    @Test func sessionsAndFormTokensStandForTheirTokensWithoutShowingThem() {
        let readSession = access.session(for: .read)
        let writeSession = access.session(for: .write)
        #expect(readSession != writeSession && readSession.count == 64)
        #expect(!readSession.contains(readToken) && !writeSession.contains(writeToken))
        #expect(access.role(authorization: nil, session: readSession) == .read)
        #expect(access.role(authorization: nil, session: writeSession) == .write)
        let altered = String(writeSession.dropLast()) + (writeSession.hasSuffix("0") ? "1" : "0")
        #expect(access.role(authorization: nil, session: altered) == nil)
        #expect(access.role(authorization: nil, session: readToken) == nil, "a token is not a session")
        #expect(access.role(authorization: "Bearer \(writeToken)", session: nil) == .write)
        #expect(access.role(authorization: "Bearer wrong", session: readSession) == nil, "a wrong bearer token is not rescued by a cookie")
        let formToken = try! #require(access.formToken())
        #expect(access.acceptsFormToken(formToken))
        #expect(!access.acceptsFormToken(writeSession) && !access.acceptsFormToken(nil) && !access.acceptsFormToken(""))
        let readOnly = ConsoleAccess(readToken: Array(readToken.utf8), writeToken: nil)
        #expect(readOnly.formToken() == nil && !readOnly.acceptsFormToken(formToken))
        #expect(readOnly.role(token: Array(writeToken.utf8)) == nil)
    }

    @Test func formsKeepRepeatedFieldsInOrderAndDecodeThem() {
        let form = ConsoleForm("id=4&id=7&body=%7B%22a%22%3A+1%7D&empty=&flag&return=%2Fgroup%3Fstream%3Dinventory")
        #expect(form.all("id") == ["4", "7"])
        #expect(form["body"] == #"{"a": 1}"#)
        #expect(form["empty"] == "" && form["flag"] == "" && form["missing"] == nil)
        #expect(form["return"] == "/group?stream=inventory")
        #expect(ConsoleForm(Substring("error=" + ConsoleForm.encode("a+b & c=d/é")))["error"] == "a+b & c=d/é")
    }

    @Test func formsComeBackOnlyToThisSiteAndOnlyFromIt() {
        #expect(ConsoleServer.localPath("/group?stream=inventory") == "/group?stream=inventory")
        #expect(ConsoleServer.localPath("//evil.example/") == nil)
        #expect(ConsoleServer.localPath("https://evil.example/") == nil)
        #expect(ConsoleServer.localPath("/\\evil.example") == nil)
        #expect(ConsoleServer.sameOrigin("http://127.0.0.1:8088", host: "127.0.0.1:8088"))
        #expect(!ConsoleServer.sameOrigin("http://evil.example", host: "127.0.0.1:8088"))
        #expect(!ConsoleServer.sameOrigin("null", host: "127.0.0.1:8088"))
        #expect(ConsoleServer.validName("alice.o-brien@ops") != nil)
        #expect(ConsoleServer.validName("<script>") == nil && ConsoleServer.validName("") == nil)
    }
}

@Suite("Dead-letter console: pages")
struct ConsolePageTests {
    @Test func lettersAreGroupedByStreamReasonAndErrorWithCountsAndAges() {
        let base = Date(timeIntervalSince1970: 1_800_000_000)
        let letters = [
            consoleLetter(id: 1, error: "unknown SKU", firstFailedAt: base),
            consoleLetter(id: 2, error: "unknown SKU", firstFailedAt: base.addingTimeInterval(60), lastFailedAt: base.addingTimeInterval(600)),
            consoleLetter(id: 3, error: "unknown UOM", firstFailedAt: base),
            consoleLetter(id: 4, reason: .invalid, error: "quantity: must not be zero", firstFailedAt: base),
            consoleLetter(id: 5, stream: .shipment, error: "unknown SKU", firstFailedAt: base),
            consoleLetter(id: 6, stream: nil, reason: .invalid, error: "not JSON", firstFailedAt: base),
        ]
        let groups = DeadLetterGroup.groups(of: letters)
        #expect(groups.map { "\($0.stream?.rawValue ?? "-") \($0.reason) \($0.error) \($0.count)" } == [
            "inventory erp-rejected unknown SKU 2", "inventory erp-rejected unknown UOM 1",
            "inventory invalid quantity: must not be zero 1", "shipment erp-rejected unknown SKU 1", "- invalid not JSON 1",
        ])
        #expect(groups[0].oldestFailure == base && groups[0].newestFailure == base.addingTimeInterval(600))
        #expect(groups[0].contains(letters[1]) && !groups[0].contains(letters[2]) && !groups[0].contains(letters[4]))
        let row = GroupRow(groups[0], now: base.addingTimeInterval(3 * 3600 + 120))
        #expect(row.oldestAge == "3 h 2 min" && row.newestAge == "2 h 52 min")
        #expect(row.path == "/group?stream=inventory&reason=erp-rejected&error=unknown%20SKU")
        #expect(ageText(since: base, now: base.addingTimeInterval(42)) == "42 s")
        #expect(ageText(since: base, now: base.addingTimeInterval(2 * 86_400 + 3600)) == "2 d 1 h")
    }

    func frame(canWrite: Bool) -> PageFrame {
        PageFrame(
            title: "Letter 7", person: "alice", role: canWrite ? "write" : "read", canWrite: canWrite,
            formToken: canWrite ? access.formToken() : nil, notice: nil, problem: nil)
    }

    /// A letter's body, headers and error come from whoever published it: every one is escaped.
    @Test func whatALetterCarriesIsEscapedAndOnlyAWriteSessionGetsForms() throws {
        let hostile = #"<script>alert("x")</script>"#
        let letter = consoleLetter(
            id: 7, error: hostile, body: Array(#"{"eventId":"<img src=x onerror=alert(1)>","n":1.50}"#.utf8),
            headers: ["x-evil": hostile, "whsync-worker": "inventory-worker@host"])
        let trail = [AuditEntry(id: 1, entry: NewAuditEntry(at: Date(), actor: "alice (console)", action: .edit, deadLetterId: 7, detail: hostile))]
        let library = try ConsoleTemplates.library()
        let write = try #require(library.render(
            LetterPage(frame: frame(canWrite: true), letter: letter, trail: trail, refusal: nil, editText: nil, now: Date()),
            withTemplate: "letter"))
        #expect(!write.contains("<script>") && !write.contains("<img"))
        #expect(write.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"))
        #expect(write.contains("1.50"), "numbers are shown exactly as written")
        #expect(write.contains(#"id="edit-body""#) && write.contains(#"id="replay-letter""#))
        #expect(write.contains(#"name="form-token" value="\#(access.formToken()!)""#))
        let read = try #require(library.render(
            LetterPage(frame: frame(canWrite: false), letter: letter, trail: trail, refusal: nil, editText: nil, now: Date()),
            withTemplate: "letter"))
        #expect(!read.contains("<form method=\"post\" action=\"/replay\"") && !read.contains("edit-body") && !read.contains("form-token"))
        #expect(read.contains(#"<pre id="body">"#))
    }

    @Test func aGroupPageCarriesExactlyTheIdsItShows() throws {
        let now = Date()
        let rows = [consoleLetter(id: 11), consoleLetter(id: 12), consoleLetter(id: 15)].map { LetterRow($0, now: now) }
        let page = GroupPage(
            frame: frame(canWrite: true), stream: "inventory", reason: "erp-rejected", error: "unknown SKU", letters: rows,
            shownIds: rows.map { ShownId(id: $0.id) }, shown: rows.count, truncated: false, first: rows.first,
            path: "/group?stream=inventory&reason=erp-rejected&error=unknown%20SKU", empty: false)
        let html = try #require(try ConsoleTemplates.library().render(page, withTemplate: "group"))
        let shownForm = try #require(html.range(of: #"id="replay-shown-form""#))
        let shownIds = String(html[shownForm.upperBound...]).components(separatedBy: "</form>")[0]
            .components(separatedBy: #"name="id" value=""#).dropFirst().map { $0.prefix { $0 != "\"" } }
        #expect(shownIds == ["11", "12", "15"])
        #expect(html.contains("Replay the first one (#11)"))
        #expect(html.contains(#"name="return" value="/group?stream=inventory&amp;reason=erp-rejected&amp;error=unknown%20SKU""#))
    }
}
