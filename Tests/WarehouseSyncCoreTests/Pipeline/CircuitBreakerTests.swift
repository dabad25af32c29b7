import PropertyBased
import Testing
import WarehouseSyncCore

@Suite("CircuitBreaker")
struct CircuitBreakerTests {
    typealias Breaker = CircuitBreaker<TestInstant>
    let configuration = Breaker.Configuration(failureThreshold: 3, probeInterval: .seconds(2), maxProbeInterval: .seconds(10))

    private func opened() -> Breaker {
        var breaker = Breaker(configuration: configuration)
        for _ in 0..<3 { _ = breaker.recordTransientFailure(at: .seconds(0)) }
        return breaker
    }

    @Test("it opens after the threshold of consecutive transient failures, not before")
    func opensAtThreshold() {
        var breaker = Breaker(configuration: configuration)
        #expect(breaker.recordTransientFailure(at: .seconds(0)) == [])
        #expect(breaker.recordTransientFailure(at: .seconds(1)) == [])
        #expect(breaker.allowsPosting)
        #expect(breaker.recordTransientFailure(at: .seconds(2)) == [.stopConsuming, .probeHealth(after: .seconds(2))])
        #expect(!breaker.allowsPosting)
        #expect(breaker.state == .open(since: .seconds(2), openings: 1, probeDue: .seconds(4)))
    }

    @Test("a success in between resets the count")
    func successResets() {
        var breaker = Breaker(configuration: configuration)
        _ = breaker.recordTransientFailure(at: .seconds(0))
        _ = breaker.recordTransientFailure(at: .seconds(0))
        #expect(breaker.recordSuccess() == [])
        _ = breaker.recordTransientFailure(at: .seconds(0))
        _ = breaker.recordTransientFailure(at: .seconds(0))
        #expect(breaker.state == .closed(consecutiveFailures: 2))
    }

    @Test("a healthy probe half-opens it and resumes consuming; the first success closes it")
    func probeThenSuccess() {
        var breaker = opened()
        #expect(breaker.recordProbe(healthy: true, at: .seconds(2)) == [.resumeConsuming])
        #expect(breaker.state == .halfOpen(openings: 1))
        #expect(breaker.allowsPosting)
        #expect(breaker.recordSuccess() == [])
        #expect(breaker.state == .closed(consecutiveFailures: 0))
    }

    @Test("a failure while half-open opens it again at once, with a longer interval")
    func halfOpenFailureReopens() {
        var breaker = opened()
        _ = breaker.recordProbe(healthy: true, at: .seconds(2))
        #expect(breaker.recordTransientFailure(at: .seconds(3)) == [.stopConsuming, .probeHealth(after: .seconds(4))])
        #expect(breaker.state == .open(since: .seconds(3), openings: 2, probeDue: .seconds(7)))
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

    @Test("a probe report before it was due, or while not open, is ignored")
    func staleProbe() {
        var breaker = opened()
        #expect(breaker.recordProbe(healthy: true, at: .seconds(1)) == [])
        #expect(!breaker.allowsPosting)
        var closed = Breaker(configuration: configuration)
        #expect(closed.recordProbe(healthy: false, at: .seconds(100)) == [])
        #expect(closed.state == .closed(consecutiveFailures: 0))
    }

    @Test("late answers of postings in flight: a failure changes nothing, a success closes and resumes")
    func lateAnswers() {
        var breaker = opened()
        #expect(breaker.recordTransientFailure(at: .seconds(1)) == [])
        #expect(breaker.recordSuccess() == [.resumeConsuming])
        #expect(breaker.state == .closed(consecutiveFailures: 0))
    }

    @Test("property: stop and resume alternate, posting is allowed exactly while consuming, and a closed circuit is below the threshold")
    func propertyAlternation() async {
        // 0: success, 1: transient failure, 2: healthy probe, 3: unhealthy probe.
        await propertyCheck(input: Gen.int(in: 0...3).array(of: 0...80), Gen.int(in: 1...4)) { events, threshold in
            var breaker = Breaker(configuration: .init(failureThreshold: threshold, probeInterval: .seconds(1), maxProbeInterval: .seconds(8)))
            var now = TestInstant.seconds(0)
            var consuming = true
            for event in events {
                now = now.advanced(by: .seconds(3))
                let actions: [Breaker.Action]
                switch event {
                case 0: actions = breaker.recordSuccess()
                case 1: actions = breaker.recordTransientFailure(at: now)
                case 2: actions = breaker.recordProbe(healthy: true, at: now)
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
                        #expect(!consuming && after >= .seconds(1) && after <= .seconds(8))
                    }
                }
                #expect(breaker.allowsPosting == consuming)
                if case .closed(let failures) = breaker.state { #expect(failures < threshold) }
            }
        }
    }
}
