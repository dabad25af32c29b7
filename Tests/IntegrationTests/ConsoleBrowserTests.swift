import Foundation
import Testing
import WarehouseSyncConsole
import WarehouseSyncCore
import WarehouseSyncSimulation
import WarehouseSyncSQLiteStore
import WarehouseSyncStore

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The dead-letter console (docs/console.md) end to end: the `replay-worker` executable with
/// `CONSOLE_PORT`, a real inventory worker, the test broker, the `reference-erp` executable and one
/// SQLite store, driven by headless Chromium (Debian's `chromium`, which ./scripts/test installs)
/// through `scripts/console_browser.py`. The script clicks and types; this test makes the dead
/// letters, acts between the script's steps, and checks the store, the ERP and the audit trail.
@Suite(.serialized) struct ConsoleBrowserTests {
    static let readToken = "console-read-token-0123456789"
    static let writeToken = "console-write-token-0123456789"

    @Test func anOperatorReplaysOneThenTheRestAsShownAndEditsAndReplaysALetterInABrowser() async throws {
        let chromium = "/usr/bin/chromium"
        try #require(
            FileManager.default.isExecutableFile(atPath: chromium),
            "no \(chromium): ./scripts/test installs Debian's chromium package")
        let catalogue = Catalogue(warehouses: 1, skus: 5)
        try await WorkerSystem.with(masterData: catalogue) { system in
            let files = try Self.tokenFiles(in: system.directory)
            // Events run out of their one attempt while the ERP is down: retries-exhausted letters
            // that wait for a person (no automatic replays here).
            try await postJSON(system.erpURL + "/admin/faults", #"{"outage": true}"#)
            try await system.startWorker(.inventory, environment: ["RETRY_MAX_ATTEMPTS": "1"])
            let console = [
                "AUTO_REPLAY": "false", "CONSOLE_PORT": "0", "CONSOLE_TOKEN_FILE": files.read,
                "CONSOLE_WRITE_TOKEN_FILE": files.write,
            ]
            try await system.withReplayWorker(environment: console) { replay in
                let url = "http://" + (try await replay.awaitLog(#"console\.address=([0-9.]+:[0-9]+)"#))
                let store = try await system.openStore()
                do {
                    try await Self.scenario(system: system, replay: replay, store: store, url: url, catalogue: catalogue, files: files)
                } catch {
                    await store.close()
                    throw error
                }
                await store.close()
            }
        }
    }

    static func scenario(
        system: WorkerSystem, replay: ChildProcess, store: SQLiteWorkerStore, url: String, catalogue: Catalogue,
        files: (read: String, write: String)
    ) async throws {
        func message(_ index: Int, quantity: String = "5") -> RawMessage {
            inventoryMessage(
                eventId: "cx-\(index)", warehouse: "WH1", sku: catalogue.skus[index].sku, uom: catalogue.skus[index].uom,
                sequence: 1, quantity: quantity)
        }
        // Three letters of one group, and an invalid one (quantity 0) on a key of its own.
        try await system.publish([message(0), message(1), message(2), message(3, quantity: "0")])
        try await system.waitForReplay(replay, "the four letters to be stored", timeout: .seconds(60)) {
            try await store.deadLetters(matching: .all, limit: 100).count == 4
        }
        let group = try await store.deadLetters(matching: .init(reason: .retriesExhausted), limit: 100)
        #expect(Set(group.map(\.error)).count == 1, "the outage's letters differ in their error: \(group.map(\.error))")
        try await deleteRequest(system.erpURL + "/admin/faults")

        try await checkAccessWithoutABrowser(url: url)

        let steps = system.directory.appendingPathComponent("browser-steps")
        try FileManager.default.createDirectory(at: steps, withIntermediateDirectories: true)
        let started = ContinuousClock.now
        let browser = try ChildProcess(
            name: "console_browser.py", executable: "/usr/bin/python3",
            arguments: [
                TestBroker.repoRoot().appendingPathComponent("scripts/console_browser.py").path, "--url", url,
                "--steps", steps.path, "--read-token-file", files.read, "--write-token-file", files.write,
                "--screenshot", system.directory.appendingPathComponent("console.png").path,
            ],
            environment: ["PATH": "/usr/bin:/bin", "HOME": system.directory.path],
            logFile: system.directory.appendingPathComponent("console-browser.log"))
        do {
            // The first letter replayed from its group page: booked by the ERP, marked replayed by
            // the person who logged in.
            let first = try await Self.step("first-replayed", steps, browser, replay)["id"] as? Int
            let firstId = Int64(try #require(first))
            try await system.waitForReplay(replay, "the ERP to book the first replay", timeout: .seconds(30)) {
                try await system.erpDocumentCount() == 1
            }
            let firstLetter = try #require(try await store.deadLetter(id: firstId))
            #expect(firstLetter.status == .replayed && firstLetter.replayCount == 1)
            #expect(firstLetter.lastReplayedBy?.hasPrefix("alice (console on replay-worker@") == true, "\(firstLetter.lastReplayedBy ?? "-")")
            try Self.go("first-replayed", steps)

            // With the rest on screen, another letter joins the group: it must not be replayed.
            let rest = (try await Self.step("rest-shown", steps, browser, replay)["ids"] as? [Int] ?? []).map(Int64.init)
            #expect(rest.count == 2)
            try await postJSON(system.erpURL + "/admin/faults", #"{"outage": true}"#)
            try await system.publish([message(4)])
            try await system.waitForReplay(replay, "a fifth letter to join the group", timeout: .seconds(60)) {
                try await store.deadLetters(matching: .init(reason: .retriesExhausted, status: .pending), limit: 100).count == 3
            }
            let joined = try #require(try await store.deadLetters(matching: .init(eventId: "cx-4"), limit: 1).first)
            #expect(joined.error == group[0].error, "the new letter is in another group: \(joined.error)")
            try await deleteRequest(system.erpURL + "/admin/faults")
            try Self.go("rest-shown", steps)

            _ = try await Self.step("rest-replayed", steps, browser, replay)
            try await system.waitForReplay(replay, "the ERP to book the rest", timeout: .seconds(30)) {
                try await system.erpDocumentCount() == 3
            }
            let late = try #require(try await store.deadLetter(id: joined.id))
            #expect(late.status == .pending && late.replayCount == 0, "the letter that joined later was replayed")
            try Self.go("rest-replayed", steps)

            // The invalid letter, edited and replayed: the ERP books the mended event.
            let edited = try await Self.step("edited-replayed", steps, browser, replay)["id"] as? Int
            let editedId = Int64(try #require(edited))
            #expect(await browser.waitForExit(timeout: .seconds(30)) == 0, "console_browser.py failed:\n\(browser.log.suffix(4000))")
            try await system.waitForReplay(replay, "the ERP to book the edited letter", timeout: .seconds(30)) {
                try await system.erpDocumentCount() == 4
            }
            let booked = try await system.erpDocuments().compactMap { $0["eventId"] as? String }.sorted()
            #expect(booked == ["cx-0", "cx-1", "cx-2", "cx-3"])

            // Every action in the audit trail, under the name given at login; none by the reader.
            let trail = try await store.auditTrail(deadLetterId: nil, limit: 100)
            let actions = trail.map { "\($0.entry.action) \($0.entry.deadLetterId ?? 0)" }.sorted()
            let replayedIds = [firstId] + rest + [editedId]
            #expect(actions == (replayedIds.map { "replay \($0)" } + ["edit \(editedId)"]).sorted(), "\(actions)")
            for entry in trail {
                #expect(entry.entry.actor.hasPrefix("alice (console on replay-worker@"), "\(entry.entry.actor)")
            }
            #expect(replay.log.contains("console: replay") && replay.log.contains("console: body edited"))
            #expect(!replay.log.contains(writeToken) && !replay.log.contains(readToken))
            print("console browser scenario: \(started.duration(to: .now))")
        } catch {
            await browser.stop(grace: .seconds(5))
            throw TestBroker.ProcessFailure(description: "\(error)\n--- console_browser.py:\n\(browser.log.suffix(4000))")
        }
    }

    /// What a browser would not try: requests without a session, with the read session, without
    /// the form token, from another site; and a script's bearer token.
    static func checkAccessWithoutABrowser(url: String) async throws {
        let access = ConsoleAccess(readToken: Array(readToken.utf8), writeToken: Array(writeToken.utf8))
        let formToken = try #require(access.formToken())
        let cases: [(cookie: String?, headers: [String: String], body: String, status: Int)] = [
            (nil, [:], "id=1&form-token=\(formToken)", 401),
            (access.session(for: .read), [:], "id=1&form-token=\(formToken)", 403),
            (access.session(for: .write), [:], "id=1", 403),
            (access.session(for: .write), [:], "id=1&form-token=\(access.session(for: .write))", 403),
            (access.session(for: .write), ["Origin": "http://evil.example"], "id=1&form-token=\(formToken)", 403),
            (nil, ["Authorization": "Bearer \(readToken)"], "id=1", 403),
            // A script with the write token needs no form token; an unknown id is skipped.
            (nil, ["Authorization": "Bearer \(writeToken)"], "id=999999", 200),
        ]
        for (cookie, headers, body, status) in cases {
            var request = URLRequest(url: URL(string: url + "/replay")!)
            request.httpMethod = "POST"
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
            if let cookie { request.setValue("\(ConsoleAccess.sessionCookie)=\(cookie)", forHTTPHeaderField: "Cookie") }
            for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
            request.httpBody = Data(body.utf8)
            let (data, response) = try await URLSession.shared.data(for: request)
            let answer = try #require(response as? HTTPURLResponse)
            #expect(answer.statusCode == status, "POST /replay with \(cookie == nil ? "no session" : "a session"), \(headers.keys.sorted()), \(body.prefix(20)): \(answer.statusCode)")
            if status == 200 { #expect(String(decoding: data, as: UTF8.self).contains("no such letter")) }
            #expect(answer.value(forHTTPHeaderField: "Content-Security-Policy")?.contains("default-src 'none'") == true)
        }
        // Pages need a session: without one, the login page.
        let (_, anonymous) = try await URLSession.shared.data(from: URL(string: url + "/letters/1")!)
        #expect(anonymous.url?.path == "/login")
    }

    /// Waits for the browser script to reach `name` and returns what it wrote there.
    static func step(_ name: String, _ steps: URL, _ browser: ChildProcess, _ replay: ChildProcess) async throws -> [String: Any] {
        let file = steps.appendingPathComponent(name + ".json")
        let deadline = ContinuousClock.now.advanced(by: .seconds(90))
        while !FileManager.default.fileExists(atPath: file.path) {
            guard browser.isRunning else {
                throw TestBroker.ProcessFailure(description: "console_browser.py ended before step \(name)\n--- replay-worker:\n\(replay.log.suffix(3000))")
            }
            guard ContinuousClock.now < deadline else { throw TestBroker.ProcessFailure(description: "console_browser.py did not reach step \(name)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any] ?? [:]
    }

    static func go(_ name: String, _ steps: URL) throws {
        try Data().write(to: steps.appendingPathComponent(name + ".go"))
    }

    static func tokenFiles(in directory: URL) throws -> (read: String, write: String) {
        let read = directory.appendingPathComponent("console-read.token")
        let write = directory.appendingPathComponent("console-write.token")
        try Data((readToken + "\n").utf8).write(to: read)
        try Data((writeToken + "\n").utf8).write(to: write)
        for file in [read, write] { try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path) }
        return (read.path, write.path)
    }
}
