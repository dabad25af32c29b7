import AMQPClient
import Testing

@Suite struct ReconnectPolicyTests {
    let policy = ReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(15), multiplier: 2)

    @Test func ceilingGrowsExponentiallyThenCaps() {
        #expect(policy.ceiling(forAttempt: 1) == .milliseconds(200))
        #expect(policy.ceiling(forAttempt: 2) == .milliseconds(400))
        #expect(policy.ceiling(forAttempt: 5) == .milliseconds(3200))
        #expect(policy.ceiling(forAttempt: 8) == .seconds(15))
        #expect(policy.ceiling(forAttempt: 1000) == .seconds(15))
    }

    @Test(arguments: [1, 3, 7, 50])
    func jitterStaysBetweenHalfAndFullCeiling(attempt: Int) {
        let ceiling = policy.ceiling(forAttempt: attempt)
        #expect(policy.delay(forAttempt: attempt, random: 0) == ceiling / 2)
        #expect(policy.delay(forAttempt: attempt, random: 1) == ceiling)
        for _ in 0..<100 {
            let delay = policy.delay(forAttempt: attempt)
            #expect(delay >= ceiling / 2 && delay <= ceiling)
        }
    }
}
