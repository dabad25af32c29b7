@testable import AMQPClient
import Testing

@Suite struct UnsettledDeliveriesTests {
    typealias Frame = UnsettledDeliveries.AckFrame
    let start = ContinuousClock.now

    /// Tags delivered to one consumer.
    func delivered(_ tags: ClosedRange<UInt64>) -> UnsettledDeliveries {
        var unsettled = UnsettledDeliveries()
        for tag in tags { unsettled.delivered(tag, consumer: "c") }
        return unsettled
    }

    @Test func inOrderAcksBecomeOneMultipleAck() {
        var unsettled = delivered(1...5)
        #expect(unsettled.ackFrames(for: [1, 2, 3], now: start) == [Frame(tag: 3, multiple: true)])
        #expect(unsettled.count == 2)
        #expect(unsettled.ackFrames(for: [4], now: start) == [Frame(tag: 4, multiple: false)])
        #expect(unsettled.ackFrames(for: [5], now: start) == [Frame(tag: 5, multiple: false)])
        #expect(unsettled.count == 0)
        #expect(unsettled.deferralDeadline == nil)
    }

    @Test func anAckOutOfOrderWaitsForTheFrontAndGoesInsideItsMultipleAck() {
        var unsettled = delivered(1...6)
        // 2 is still being worked on: 1 goes now, 3 and 4 wait (a multiple ack must not cover 2).
        #expect(unsettled.ackFrames(for: [1, 3, 4], now: start) == [Frame(tag: 1, multiple: false)])
        #expect(unsettled.deferredCount == 2)
        #expect(unsettled.count == 3)
        #expect(unsettled.deferralDeadline == start + UnsettledDeliveries.maxDeferral)
        // 2 acked: one frame settles 2, 3 and 4.
        #expect(unsettled.ackFrames(for: [2], now: start) == [Frame(tag: 4, multiple: true)])
        #expect(unsettled.deferredCount == 0)
        #expect(unsettled.deferralDeadline == nil)
        #expect(unsettled.count == 2)
    }

    @Test func deferredAcksGoAloneOnceTheyHaveWaitedTheirTime() {
        var unsettled = delivered(1...6)
        #expect(unsettled.ackFrames(for: [3], now: start) == [])
        #expect(unsettled.ackFrames(for: [5], now: start + .milliseconds(5)) == [])
        #expect(unsettled.dueFrames(now: start + UnsettledDeliveries.maxDeferral - .milliseconds(1)) == [])
        // Due from the oldest one's deferral, both go, each alone (1, 2 and 4 are still out).
        #expect(unsettled.dueFrames(now: start + UnsettledDeliveries.maxDeferral) == [Frame(tag: 3, multiple: false), Frame(tag: 5, multiple: false)])
        #expect(unsettled.deferralDeadline == nil)
        #expect(unsettled.count == 4)
        // The front then moves past them without sending them again.
        #expect(unsettled.ackFrames(for: [1, 2], now: start) == [Frame(tag: 2, multiple: true)])
        #expect(unsettled.ackFrames(for: [4], now: start) == [Frame(tag: 4, multiple: false)])
        #expect(unsettled.count == 1)
    }

    @Test func deferredAcksNeverHoldHalfOfTheWindow() {
        var unsettled = delivered(1...6)
        #expect(unsettled.ackFrames(for: [2, 3], now: start) == [])
        // Three of the six out would be deferred: all of them go now, each alone.
        #expect(
            unsettled.ackFrames(for: [5], now: start)
                == [Frame(tag: 2, multiple: false), Frame(tag: 3, multiple: false), Frame(tag: 5, multiple: false)])
        #expect(unsettled.deferredCount == 0)
        #expect(unsettled.deferralDeadline == nil)
        #expect(unsettled.count == 3)
    }

    @Test func aConsumerNeverWaitsForAnotherConsumersFrontWithHalfItsWindow() {
        // Prefetch counts per consumer, tags per channel: A's 1 and 5 are still out.
        var unsettled = UnsettledDeliveries()
        for (tag, consumer) in [(1, "A"), (2, "B"), (3, "B"), (4, "B"), (5, "A"), (6, "B")] {
            unsettled.delivered(UInt64(tag), consumer: consumer)
        }
        // B: two of its four deferred, two still worked on.
        #expect(unsettled.ackFrames(for: [2], now: start) == [])
        #expect(unsettled.deferredCount == 1)
        // Its third: more deferred than worked on: all go now, each alone (A's front is still out).
        #expect(unsettled.ackFrames(for: [3, 4], now: start) == [Frame(tag: 2, multiple: false), Frame(tag: 3, multiple: false), Frame(tag: 4, multiple: false)])
        #expect(unsettled.deferredCount == 0)
        #expect(unsettled.count == 3)
        // A's deliveries count for A: acking 5 behind A's 1 with nothing else of A's left is alone.
        #expect(unsettled.ackFrames(for: [5], now: start) == [Frame(tag: 5, multiple: false)])
        #expect(unsettled.ackFrames(for: [1, 6], now: start) == [Frame(tag: 6, multiple: true)])
        #expect(unsettled.count == 0)
    }

    @Test func settledDeliveriesBehindTheFrontDoNotCountAsAWindowForDeferring() {
        // One delivery held, the rest acked as they come: never more deferred than worked on.
        var unsettled = delivered(1...4)
        #expect(unsettled.ackFrames(for: [2, 3], now: start) == [Frame(tag: 2, multiple: false), Frame(tag: 3, multiple: false)])
        unsettled.delivered(5, consumer: "c")
        unsettled.delivered(6, consumer: "c")
        // Worked on: 1, 4 and 6; deferred: 5.
        #expect(unsettled.ackFrames(for: [5], now: start) == [])
        // Worked on: 1 and 4; deferred: 5 and 6: both go.
        #expect(unsettled.ackFrames(for: [6], now: start) == [Frame(tag: 5, multiple: false), Frame(tag: 6, multiple: false)])
    }

    @Test func aWindowOfOneOrTwoNeverDefers() {
        var unsettled = delivered(1...2)
        #expect(unsettled.ackFrames(for: [2], now: start) == [Frame(tag: 2, multiple: false)])
        #expect(unsettled.ackFrames(for: [1], now: start) == [Frame(tag: 1, multiple: false)])
    }

    @Test func earlierOutOfOrderSettlementsLetTheRangeGrow() {
        var unsettled = delivered(1...8)
        #expect(unsettled.ackFrames(for: [3], now: start) == [])
        #expect(unsettled.settledSingly(4) == nil)  // rejected
        // 1, 2 acked now; 3 deferred, 4 rejected; 5 acked now: one frame covers 1...5.
        #expect(unsettled.ackFrames(for: [1, 2, 5], now: start) == [Frame(tag: 5, multiple: true)])
        #expect(unsettled.count == 3)
    }

    @Test func aNackAtTheFrontLetsTheDeferredAcksBehindItGo() {
        var unsettled = delivered(1...5)
        #expect(unsettled.ackFrames(for: [2, 3], now: start) == [])
        // The nack of 1 is sent as it is; then one frame acks 2 and 3.
        #expect(unsettled.settledSingly(1) == Frame(tag: 3, multiple: true))
        #expect(unsettled.count == 2)
        #expect(unsettled.deferralDeadline == nil)
    }

    @Test func aMultipleNackNeverCoversADeferredAck() {
        var unsettled = delivered(1...6)
        #expect(unsettled.ackFrames(for: [2, 5], now: start) == [])
        // A multiple nack up to 3 would requeue 2: it is acked alone first; 5 stays deferred.
        #expect(unsettled.takeDeferred(upTo: 3) == [Frame(tag: 2, multiple: false)])
        #expect(unsettled.settledUpTo(3) == nil)
        #expect(unsettled.deferredCount == 1)
        #expect(unsettled.ackFrames(for: [4], now: start) == [Frame(tag: 5, multiple: true)])
        #expect(unsettled.count == 1)
    }

    @Test func applicationMultipleAckCoversDeferredAcksAndLetsTheFrontGoOn() {
        var unsettled = delivered(1...10)
        #expect(unsettled.ackFrames(for: [7, 9], now: start) == [])
        // Its own frame settles 1...8 (7 with it); 9 is the front then, deferred: it goes after.
        #expect(unsettled.settledUpTo(8) == Frame(tag: 9, multiple: false))
        #expect(unsettled.deferredCount == 0)
        #expect(unsettled.count == 1)
        #expect(unsettled.ackFrames(for: [10], now: start) == [Frame(tag: 10, multiple: false)])
    }

    @Test func takeDeferredSendsEveryOneBeforeAClose() {
        var unsettled = delivered(1...9)
        _ = unsettled.ackFrames(for: [5, 3], now: start)
        #expect(unsettled.takeDeferred() == [Frame(tag: 3, multiple: false), Frame(tag: 5, multiple: false)])
        #expect(unsettled.takeDeferred() == [])
        #expect(unsettled.count == 7)
    }

    @Test func resetForgetsEverything() {
        var unsettled = delivered(1...3)
        _ = unsettled.ackFrames(for: [2], now: start)
        unsettled.reset()
        #expect(unsettled.count == 0)
        #expect(unsettled.deferralDeadline == nil)
        // Tags restart at 1 on a new channel.
        unsettled.delivered(1, consumer: "c")
        #expect(unsettled.ackFrames(for: [1], now: start) == [Frame(tag: 1, multiple: false)])
    }
}
