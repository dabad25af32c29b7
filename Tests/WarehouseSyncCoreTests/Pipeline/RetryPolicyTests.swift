import Testing
import WarehouseSyncCore

@Suite("RetryPolicy")
struct RetryPolicyTests {
    let topology = PipelineFixtures.topology()  // tiers 5s, 30s, 5m
    var tiers: [Topology.RetryTier] { topology.retry.tiers }

    @Test("the attempt header: absent or not a positive integer is the first attempt", arguments: [
        (String?.none, 1), ("1", 1), ("4", 4), ("0", 1), ("-2", 1), ("x", 1), ("", 1), (" 3", 1),
    ])
    func attemptHeader(value: String?, attempt: Int) {
        #expect(RetryPolicy.attempt(fromHeader: value) == attempt)
    }

    @Test("each failed attempt waits its tier, the last tier repeating, until the last attempt")
    func tiersThenExhausted() throws {
        let policy = try #require(RetryPolicy(maxAttempts: 6, topology: topology))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: nil) == .retry(tier: tiers[0], nextAttempt: 2))
        #expect(policy.decide(afterFailedAttempt: 2, retryAfter: nil) == .retry(tier: tiers[1], nextAttempt: 3))
        #expect(policy.decide(afterFailedAttempt: 3, retryAfter: nil) == .retry(tier: tiers[2], nextAttempt: 4))
        #expect(policy.decide(afterFailedAttempt: 5, retryAfter: nil) == .retry(tier: tiers[2], nextAttempt: 6))
        #expect(policy.decide(afterFailedAttempt: 6, retryAfter: nil) == .exhausted)
        #expect(policy.decide(afterFailedAttempt: 60, retryAfter: nil) == .exhausted)
    }

    @Test("one attempt means no retry at all")
    func singleAttempt() throws {
        let policy = try #require(RetryPolicy(maxAttempts: 1, topology: topology))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: nil) == .exhausted)
        #expect(policy.totalRetryDelay == .zero)
    }

    @Test("a Retry-After longer than the tier picks the first tier at least that long, or the last")
    func retryAfterStretches() throws {
        let policy = try #require(RetryPolicy(maxAttempts: 5, topology: topology))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: .seconds(3)) == .retry(tier: tiers[0], nextAttempt: 2))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: .seconds(6)) == .retry(tier: tiers[1], nextAttempt: 2))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: .seconds(30)) == .retry(tier: tiers[1], nextAttempt: 2))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: .seconds(31)) == .retry(tier: tiers[2], nextAttempt: 2))
        #expect(policy.decide(afterFailedAttempt: 1, retryAfter: .seconds(3600)) == .retry(tier: tiers[2], nextAttempt: 2))
        // A shorter Retry-After never shortens the tier.
        #expect(policy.decide(afterFailedAttempt: 3, retryAfter: .seconds(1)) == .retry(tier: tiers[2], nextAttempt: 4))
    }

    @Test("the total retry delay sums the tiers of every retry, the last one repeating")
    func totalRetryDelay() throws {
        #expect(try #require(RetryPolicy(maxAttempts: 3, topology: topology)).totalRetryDelay == .seconds(35))
        #expect(try #require(RetryPolicy(maxAttempts: 4, topology: topology)).totalRetryDelay == .seconds(335))
        #expect(try #require(RetryPolicy(maxAttempts: 6, topology: topology)).totalRetryDelay == .seconds(935))
    }

    @Test("fewer than one attempt is no policy", arguments: [0, -1])
    func invalidMaxAttempts(maxAttempts: Int) {
        #expect(RetryPolicy(maxAttempts: maxAttempts, topology: topology) == nil)
    }
}
