import PropertyBased
import Testing
import WarehouseSyncCore

@Suite("CircuitBreaker")
struct CircuitBreakerTests {
    typealias Breaker = CircuitBreaker<TestInstant>
    let configuration = Breaker.Configuration(failureThreshold: 3, probeInterval: .seconds(2), maxProbeInterval: .seconds(10))

    private func opened() -> Breaker {
        var breaker = Breaker(configuration: configuration)
        for _ in 0..<3 { _ = breaker.recordTransientFailure(key: "K", systemic: true, at: .seconds(0)) }
        return breaker
    }

    private func halfOpened() -> Breaker {
        var breaker = opened()
        _ = breaker.recordProbe(healthy: true, at: .seconds(2))
        return breaker
    }

    @Test("systemic failures (no connection, a refused token) in a row open it at the threshold, whatever their keys")
    func opensOnSystemic() {
        var breaker = Breaker(configuration: configuration)
        #expect(breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(0)) == [])
        #expect(breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(1)) == [])
        #expect(breaker.allowsPosting)
        #expect(breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(2)) == [.stopConsuming, .probeHealth(after: .seconds(2))])
        #expect(!breaker.allowsPosting)
        #expect(breaker.state == .open(since: .seconds(2), openings: 1, probeDue: .seconds(4), suspects: ["A"]))
    }

    @Test("answered failures open it only across the threshold of distinct keys")
    func opensOnDistinctKeys() {
        var breaker = Breaker(configuration: configuration)
        for _ in 0..<10 {
            #expect(breaker.recordTransientFailure(key: "A", systemic: false, at: .seconds(0)) == [])
            #expect(breaker.recordTransientFailure(key: "B", systemic: false, at: .seconds(0)) == [])
        }
        #expect(breaker.allowsPosting)
        #expect(breaker.recordTransientFailure(key: "C", systemic: false, at: .seconds(1)) == [.stopConsuming, .probeHealth(after: .seconds(2))])
    }

    @Test("an item failure breaks a run of systemic ones")
    func itemFailureBreaksSystemicRun() {
        var breaker = Breaker(configuration: configuration)
        _ = breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(0))
        _ = breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(0))
        _ = breaker.recordTransientFailure(key: "A", systemic: false, at: .seconds(0))
        _ = breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(0))
        #expect(breaker.state == .closed(.init(systemicInARow: 1, keys: ["A"])))
    }

    @Test("a success in between resets the count")
    func successResets() {
        var breaker = Breaker(configuration: configuration)
        _ = breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(0))
        _ = breaker.recordTransientFailure(key: "B", systemic: true, at: .seconds(0))
        #expect(breaker.recordSuccess() == [])
        _ = breaker.recordTransientFailure(key: "C", systemic: true, at: .seconds(0))
        _ = breaker.recordTransientFailure(key: "D", systemic: true, at: .seconds(0))
        #expect(breaker.state == .closed(.init(systemicInARow: 2, keys: ["C", "D"])))
    }

    @Test("a healthy probe half-opens it and resumes consuming; the first success closes it")
    func probeThenSuccess() {
        var breaker = opened()
        #expect(breaker.recordProbe(healthy: true, at: .seconds(2)) == [.resumeConsuming])
        #expect(breaker.state == .halfOpen(openings: 1, itemFailures: .none, probeDue: nil, suspects: ["K"]))
        #expect(breaker.allowsPosting)
        #expect(breaker.recordSuccess() == [])
        #expect(breaker.state == .closed(.none))
    }

    @Test("a systemic failure while half-open opens it again at once, with a longer interval")
    func halfOpenSystemicReopens() {
        var breaker = halfOpened()
        #expect(breaker.recordTransientFailure(key: "A", systemic: true, at: .seconds(3)) == [.stopConsuming, .probeHealth(after: .seconds(4))])
        #expect(breaker.state == .open(since: .seconds(3), openings: 2, probeDue: .seconds(7), suspects: ["A"]))
    }

    @Test("one key that alone opened the circuit with systemic failures is that item's problem once /health answers")
    func loneSystemicKeySpendsAttempts() {
        var breaker = opened()  // three systemic failures, all of key K
        _ = breaker.recordProbe(healthy: true, at: .seconds(2))
        for round in Int64(0)..<10 {
            // A 403 for this one item, again and again: each spends an attempt in the pipeline.
            #expect(breaker.recordTransientFailure(key: "K", systemic: true, at: .seconds(3 + round)) == [])
            #expect(breaker.allowsPosting)
        }
        // Another key failing the same way is the ERP refusing everyone: open again.
        #expect(breaker.recordTransientFailure(key: "L", systemic: true, at: .seconds(20)) == [.stopConsuming, .probeHealth(after: .seconds(4))])
    }

    @Test("a lone key whose postings get no answer, or a proxy's, still reopens it: that is never the item's problem")
    func loneKeyWithoutERPAnswerReopens() {
        var breaker = opened()
        _ = breaker.recordProbe(healthy: true, at: .seconds(2))
        #expect(breaker.recordTransientFailure(key: "K", systemic: true, erpAnswer: false, at: .seconds(3))
            == [.stopConsuming, .probeHealth(after: .seconds(4))])
        #expect(!breaker.allowsPosting)
    }

    @Test("items the ERP refuses while /health answers are item failures: half-open stays consuming")
    func halfOpenItemFailures() {
        var breaker = halfOpened()
        for round in Int64(0)..<20 {
            // The same two locked items, again and again (each spends an attempt in the pipeline).
            #expect(breaker.recordTransientFailure(key: "A", systemic: false, at: .seconds(3 + round)) == [])
            #expect(breaker.recordTransientFailure(key: "B", systemic: false, at: .seconds(3 + round)) == [])
            #expect(breaker.allowsPosting)
        }
    }

    @Test("item failures across many keys while half-open ask /health again without pausing; only a failed probe opens")
    func halfOpenManyKeysReprobe() {
        var breaker = halfOpened()
        _ = breaker.recordTransientFailure(key: "A", systemic: false, at: .seconds(3))
        _ = breaker.recordTransientFailure(key: "B", systemic: false, at: .seconds(3))
        #expect(breaker.recordTransientFailure(key: "C", systemic: false, at: .seconds(4)) == [.probeHealth(after: .zero)])
        #expect(breaker.allowsPosting)
        // While that probe is under way, more failures ask for nothing more.
        #expect(breaker.recordTransientFailure(key: "D", systemic: false, at: .seconds(4)) == [])
        // Healthy: the items keep failing on their own, still consuming.
        #expect(breaker.recordProbe(healthy: true, at: .seconds(4)) == [])
        #expect(breaker.state == .halfOpen(openings: 1, itemFailures: .none, probeDue: nil, suspects: ["K"]))
        for key in ["E", "F"] { _ = breaker.recordTransientFailure(key: key, systemic: false, at: .seconds(5)) }
        #expect(breaker.recordTransientFailure(key: "G", systemic: false, at: .seconds(5)) == [.probeHealth(after: .zero)])
        // Unhealthy now: the ERP is down after all.
        #expect(breaker.recordProbe(healthy: false, at: .seconds(5)) == [.stopConsuming, .probeHealth(after: .seconds(4))])
        #expect(!breaker.allowsPosting)
    }

    @Test("failed probes back off exponentially up to the cap")
    func probeBackoff() {
        var breaker = opened()
        var now = TestInstant.seconds(2)
        var intervals: [Duration] = []
        for _ in 0..<5 {
            guard case .probeHealth(let interval) = breaker.recordProbe(healthy: false, at: now).first else {
                Issue.record("a failed probe must schedule the next one")
                return
            }
            intervals.append(interval)
            now = now.advanced(by: interval)
        }
        #expect(intervals == [.seconds(4), .seconds(8), .seconds(10), .seconds(10), .seconds(10)])
    }

    @Test("a probe report before it was due, or while no probe is under way, is ignored")
    func staleProbe() {
        var breaker = opened()
        #expect(breaker.recordProbe(healthy: true, at: .seconds(1)) == [])
        #expect(!breaker.allowsPosting)
        var closed = Breaker(configuration: configuration)
        #expect(closed.recordProbe(healthy: false, at: .seconds(100)) == [])
        #expect(closed.state == .closed(.none))
        var halfOpen = halfOpened()
        #expect(halfOpen.recordProbe(healthy: false, at: .seconds(100)) == [])
        #expect(halfOpen.allowsPosting)
    }

    @Test("late answers of postings in flight: a failure changes nothing, a success closes and resumes")
    func lateAnswers() {
        var breaker = opened()
        #expect(breaker.recordTransientFailure(key: "Z", systemic: true, at: .seconds(1)) == [])
        #expect(breaker.recordSuccess() == [.resumeConsuming])
        #expect(breaker.state == .closed(.none))
    }

    @Test("property: stop and resume alternate, posting is allowed exactly while consuming, and a closed circuit is below the threshold")
    func propertyAlternation() async {
        // 0: success, 1: systemic failure, 2: item failure, 3: healthy probe, 4: unhealthy probe.
        await propertyCheck(
            input: Gen.int(in: 0...4).array(of: 0...80), Gen.int(in: 0...3).array(of: 80...80), Gen.int(in: 1...4)
        ) { events, keys, threshold in
            var breaker = Breaker(configuration: .init(failureThreshold: threshold, probeInterval: .seconds(1), maxProbeInterval: .seconds(8)))
            var now = TestInstant.seconds(0)
            var consuming = true
            for (event, key) in zip(events, keys) {
                now = now.advanced(by: .seconds(3))
                let actions: [Breaker.Action]
                switch event {
                case 0: actions = breaker.recordSuccess()
                case 1: actions = breaker.recordTransientFailure(key: "K\(key)", systemic: true, at: now)
                case 2: actions = breaker.recordTransientFailure(key: "K\(key)", systemic: false, at: now)
                case 3: actions = breaker.recordProbe(healthy: true, at: now)
                default: actions = breaker.recordProbe(healthy: false, at: now)
                }
                for action in actions {
                    switch action {
                    case .stopConsuming:
                        #expect(consuming)
                        consuming = false
                    case .resumeConsuming:
                        #expect(!consuming)
                        consuming = true
                    case .probeHealth(let after):
                        // Paused: after the interval; consuming (half-open): at once.
                        #expect(consuming ? after == .zero : (after >= .seconds(1) && after <= .seconds(8)))
                    }
                }
                #expect(breaker.allowsPosting == consuming)
                if case .closed(let failures) = breaker.state {
                    #expect(failures.systemicInARow < threshold && failures.keys.count < threshold)
                }
            }
        }
    }
}
