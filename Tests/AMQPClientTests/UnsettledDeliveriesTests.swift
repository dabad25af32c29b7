@testable import AMQPClient
import Testing

@Suite struct UnsettledDeliveriesTests {
    typealias Frame = UnsettledDeliveries.AckFrame

    func delivered(_ tags: ClosedRange<UInt64>) -> UnsettledDeliveries {
        var unsettled = UnsettledDeliveries()
        for tag in tags { unsettled.delivered(tag) }
        return unsettled
    }

    @Test func inOrderAcksBecomeOneMultipleAck() {
        var unsettled = delivered(1...5)
        #expect(unsettled.ackFrames(for: [1, 2, 3]) == [Frame(tag: 3, multiple: true)])
        #expect(unsettled.count == 2)
        #expect(unsettled.ackFrames(for: [4]) == [Frame(tag: 4, multiple: false)])
        #expect(unsettled.ackFrames(for: [5]) == [Frame(tag: 5, multiple: false)])
        #expect(unsettled.count == 0)
    }

    @Test func aGapIsNeverCoveredByAMultipleAck() {
        var unsettled = delivered(1...5)
        // 2 is still being worked on: 1 may go as a range, 3 and 4 only one by one.
        #expect(unsettled.ackFrames(for: [1, 3, 4]) == [Frame(tag: 1, multiple: false), Frame(tag: 3, multiple: false), Frame(tag: 4, multiple: false)])
        // Once 2 is acked the front moves past the ones settled earlier.
        #expect(unsettled.ackFrames(for: [2]) == [Frame(tag: 2, multiple: false)])
        #expect(unsettled.count == 1)
        #expect(unsettled.ackFrames(for: [5]) == [Frame(tag: 5, multiple: false)])
    }

    @Test func earlierOutOfOrderSettlementsLetTheRangeGrow() {
        var unsettled = delivered(1...6)
        #expect(unsettled.ackFrames(for: [3]) == [Frame(tag: 3, multiple: false)])
        unsettled.settledSingly(4)  // rejected
        // 1, 2 acked now; 3 and 4 are already settled; 5 acked now: one frame covers 1...5.
        #expect(unsettled.ackFrames(for: [1, 2, 5]) == [Frame(tag: 5, multiple: true)])
        #expect(unsettled.count == 1)
    }

    @Test func aNackAtTheFrontAdvancesIt() {
        var unsettled = delivered(1...3)
        unsettled.settledSingly(1)
        #expect(unsettled.ackFrames(for: [2, 3]) == [Frame(tag: 3, multiple: true)])
        #expect(unsettled.count == 0)
    }

    @Test func applicationMultipleSettlementClearsUpToTheTag() {
        var unsettled = delivered(1...10)
        _ = unsettled.ackFrames(for: [7])
        unsettled.settledUpTo(8)
        #expect(unsettled.count == 2)
        #expect(unsettled.ackFrames(for: [9, 10]) == [Frame(tag: 10, multiple: true)])
    }

    @Test func resetForgetsEverything() {
        var unsettled = delivered(1...3)
        unsettled.reset()
        #expect(unsettled.count == 0)
        // Tags restart at 1 on a new channel.
        unsettled.delivered(1)
        #expect(unsettled.ackFrames(for: [1]) == [Frame(tag: 1, multiple: false)])
    }
}
