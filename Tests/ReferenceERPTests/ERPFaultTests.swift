import Foundation
import HummingbirdTesting
import Testing
import WarehouseSyncCore

@testable import ReferenceERP

@Suite("Reference ERP: fault injection")
struct ERPFaultTests {
    @Test("error rate 1.0 answers every posting 503 without touching the ledger")
    func errorRate() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration(faults: FaultSettings(errorRate: 1, retryAfterSeconds: 2))) { erp in
                for index in 0..<5 {
                    let response = try await erp.post(.inventoryMovement, inventoryMovement("e-\(index)"))
                    #expect(response.status == 503)
                    #expect(response.header("Retry-After") == "2")
                    #expect(response.header("X-Injected-Fault") == "error")
                }
                // Only postings meet injected errors: queries and probes answer.
                #expect(try await erp.get("/health").status == 200)
                #expect(try await erp.documents().isEmpty)
                #expect(try await erp.get("/balances").json["balances"]?.arrayValue?.isEmpty == true)
                let stats = try await erp.get("/stats").json
                #expect(stats["endpoints"]?["/inventory-movements"]?["injectedFaults"] == 5)

                #expect(try await erp.setFaults(["errorRate": 0]).status == 200)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-0")).status == 201)
            }
        }
    }

    @Test("injected errors pick from the configured statuses; 500 carries no Retry-After")
    func errorStatuses() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let set = try await erp.setFaults(["errorRate": 1, "errorStatuses": [500], "retryAfterSeconds": 5])
                #expect(set.status == 200)
                #expect(set.json["errorStatuses"] == [500])
                let response = try await erp.post(.goodsIssue, shipment("e-1"))
                #expect(response.status == 500)
                #expect(response.header("Retry-After") == nil)
                #expect(try await erp.setFaults(["errorStatuses": [429]]).status == 200)
                let throttled = try await erp.post(.goodsIssue, shipment("e-1"))
                #expect(throttled.status == 429)
                #expect(throttled.header("Retry-After") == "5")
            }
        }
    }

    @Test("an outage answers 503 to everything, /health included, then recovers")
    func outage() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                #expect(try await erp.get("/health").status == 200)
                // Long enough that the checks below run inside it however loaded the machine is.
                let set = try await erp.setFaults(["outage": ["seconds": 120]])
                #expect(set.json["outageActive"] == .bool(true))

                let health = try await erp.get("/health")
                #expect(health.status == 503)
                #expect(health.header("X-Injected-Fault") == "outage")
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1")).status == 503)
                #expect(try await erp.get("/balances").status == 503)
                // The admin endpoint stays reachable to end it.
                #expect(try await erp.get("/admin/faults").status == 200)

                // A window ends by itself: replace the long one with a short one and wait it out.
                #expect(try await erp.setFaults(["outage": false]).status == 200)
                #expect(try await erp.setFaults(["outage": ["seconds": 1]]).json["outageActive"] == .bool(true))
                let deadline = ContinuousClock.now.advanced(by: .seconds(30))
                while try await erp.get("/health").status != 200, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(try await erp.get("/health").status == 200)
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1")).status == 201)
            }
        }
    }

    @Test("an outage until cleared ends with outage: false")
    func outageUntilCleared() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                #expect(try await erp.setFaults(["outage": true, "retryAfterSeconds": 1]).status == 200)
                let down = try await erp.get("/health")
                #expect(down.status == 503)
                #expect(down.header("Retry-After") == "1")
                #expect(try await erp.documents().isEmpty == true)  // answered 503, no documents member
                #expect(try await erp.setFaults(["outage": false]).json["outageActive"] == .bool(false))
                #expect(try await erp.get("/health").status == 200)
            }
        }
    }

    @Test("outage windows from the start configuration open and close by themselves")
    func configuredWindow() async throws {
        let faults = FaultSettings(outageWindows: [.init(startSeconds: 1, durationSeconds: 1)])
        // The window counts from the ERP's start. On a loaded machine (the whole suite doing
        // SQLite fsyncs at once) a start can take longer than the window, which then closes
        // before the first look: try again with a fresh ERP, a few times, before failing.
        var seen: [Int] = []
        for _ in 1...3 {
            seen = try await withTestDirectory { directory in
                try await withERP(directory.configuration(faults: faults)) { erp in
                    // Polls /health every 50 ms (at most 10 s) and keeps the changes it sees.
                    var seen: [Int] = []
                    let deadline = ContinuousClock.now + .seconds(10)
                    while ContinuousClock.now < deadline, !(seen.contains(503) && seen.last == 200) {
                        let status = try await erp.get("/health").status
                        if seen.last != status { seen.append(status) }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    return seen
                }
            }
            if seen.contains(503) { break }
        }
        // A slow start may miss the first healthy second; the outage and the recovery are seen.
        #expect(seen == [200, 503, 200] || seen == [503, 200])
    }

    @Test("a lost response commits the posting: the retry is answered 409")
    func lostResponse() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration(faults: FaultSettings(lostResponseRate: 1))) { erp in
                let first = try await erp.post(.goodsReceipt, receipt("e-1"))
                #expect(first.status == 503)
                #expect(first.header("X-Injected-Fault") == "lost-response")
                #expect(try await erp.documents().count == 1)
                let retry = try await erp.post(.goodsReceipt, receipt("e-1"))
                #expect(retry.status == 409)
                #expect(try await erp.balance("WH1", "SKU-0001") == "10")
            }
        }
    }

    @Test("fixed latency delays the answer")
    func latency() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                #expect(try await erp.setFaults(["latencyMs": 250]).status == 200)
                let started = ContinuousClock.now
                let response = try await erp.post(.inventoryMovement, inventoryMovement("e-1"))
                #expect(response.status == 201)
                #expect(ContinuousClock.now - started >= .milliseconds(250))
                let range = try await erp.setFaults(["latencyMs": ["min": 10, "max": 20]])
                #expect(range.json["latencyMs"] == ["min": 10, "max": 20])
                #expect(try await erp.setFaults(["latencyMs": nil]).json["latencyMs"] == .null)
            }
        }
    }

    @Test("a seeded run meets the same faults every time")
    func seeded() async throws {
        let faults = FaultSettings(errorRate: 0.5, errorStatuses: [503, 500], seed: 42)
        @Sendable func run() async throws -> [Int] {
            try await withTestDirectory { directory in
                try await withERP(directory.configuration(faults: faults)) { erp in
                    var statuses: [Int] = []
                    for index in 0..<24 {
                        statuses.append(try await erp.post(.inventoryMovement, inventoryMovement("e-\(index)")).status)
                    }
                    return statuses
                }
            }
        }
        let first = try await run()
        let second = try await run()
        #expect(first == second)
        #expect(Set(first) == [201, 500, 503])
    }

    @Test(
        "bad fault documents are answered 400 and change nothing",
        arguments: [
            #"{"errorRate": 1.5}"#, #"{"errorRate": "0.5"}"#, #"{"errorStatuses": [404]}"#, #"{"errorStatuses": []}"#,
            #"{"latencyMs": -1}"#, #"{"latencyMs": {"min": 5, "max": 1}}"#, #"{"outage": {"seconds": 0}}"#,
            #"{"outage": "yes"}"#, #"{"outageWindows": [{"durationSeconds": 1}]}"#, #"{"seed": -1}"#,
            #"{"errorRate": 1, "bogus": true}"#, "[]", "{",
        ]
    )
    func badFaults(body: String) async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration()) { erp in
                let response = try await erp.request(.post, "/admin/faults", body: body)
                #expect(response.status == 400)
                let settings = try await erp.get("/admin/faults").json
                #expect(settings["errorRate"] == .number("0.0"))
                #expect(settings["outageActive"] == .bool(false))
            }
        }
    }

    @Test("DELETE /admin/faults and reset clear everything")
    func reset() async throws {
        try await withTestDirectory { directory in
            try await withERP(directory.configuration(faults: FaultSettings(errorRate: 1))) { erp in
                #expect(try await erp.setFaults(["outage": true, "latencyMs": 5]).status == 200)
                let cleared = try await erp.request(.delete, "/admin/faults")
                #expect(cleared.json["errorRate"] == .number("0.0"))
                #expect(cleared.json["latencyMs"] == .null)
                #expect(cleared.json["outageActive"] == .bool(false))
                #expect(try await erp.post(.inventoryMovement, inventoryMovement("e-1")).status == 201)
                #expect(try await erp.setFaults(["errorRate": 1]).status == 200)
                #expect(try await erp.setFaults(["reset": true]).json["errorRate"] == .number("0.0"))
            }
        }
    }
}

@Suite("Fault injector")
struct FaultInjectorTests {
    @Test("outage windows are relative to when they are set")
    func windows() throws {
        let start = ContinuousClock.now
        let injector = FaultInjector(
            settings: FaultSettings(outageWindows: [.init(startSeconds: 10, durationSeconds: 5), .init(startSeconds: 60, durationSeconds: nil)]),
            now: start)
        #expect(!injector.outageActive(at: start))
        #expect(injector.outageActive(at: start + .seconds(10)))
        #expect(injector.outageActive(at: start + .seconds(14.9)))
        #expect(!injector.outageActive(at: start + .seconds(15)))
        #expect(injector.outageActive(at: start + .seconds(3600)))
        #expect(injector.decide(for: .other, at: start + .seconds(12)) == .init(failure: 503, outage: true))
        #expect(injector.decide(for: .posting, at: start + .seconds(20)) == .init())
    }

    @Test("the same seed draws the same decisions")
    func determinism() {
        let settings = FaultSettings(latencyMilliseconds: 1...100, errorRate: 0.3, errorStatuses: [500, 503], seed: 7)
        let now = ContinuousClock.now
        let first = FaultInjector(settings: settings, now: now)
        let second = FaultInjector(settings: settings, now: now)
        let a = (0..<100).map { _ in first.decide(for: .posting, at: now) }
        let b = (0..<100).map { _ in second.decide(for: .posting, at: now) }
        #expect(a == b)
        #expect(a.contains { $0.failure == 500 } && a.contains { $0.failure == 503 } && a.contains { $0.failure == nil })
        #expect(a.allSatisfy { ($0.latency ?? .zero) >= .milliseconds(1) && ($0.latency ?? .zero) <= .milliseconds(100) })
    }

    @Test(
        "text forms of the settings",
        arguments: [
            ("50", 50...50 as ClosedRange<Int>?), ("10-200", 10...200), ("0", 0...0), ("5-1", nil), ("-5", nil), ("x", nil),
        ]
    )
    func latencyText(text: String, expected: ClosedRange<Int>?) {
        #expect(FaultSettings.parseLatency(text) == expected)
    }

    @Test("outage windows, rates and statuses parse or refuse")
    func otherTexts() {
        #expect(FaultSettings.parseOutageWindows("10+5,60+30") == [
            .init(startSeconds: 10, durationSeconds: 5), .init(startSeconds: 60, durationSeconds: 30),
        ])
        #expect(FaultSettings.parseOutageWindows("30+") == [.init(startSeconds: 30, durationSeconds: nil)])
        #expect(FaultSettings.parseOutageWindows("30") == nil)
        #expect(FaultSettings.parseOutageWindows("10+0") == nil)
        #expect(FaultSettings.parseRate("0.25") == 0.25)
        #expect(FaultSettings.parseRate("1.01") == nil)
        #expect(FaultSettings.parseStatuses("503, 500,429") == [503, 500, 429])
        #expect(FaultSettings.parseStatuses("404") == nil)
    }
}
