@testable import AMQPClient
import Testing

@Suite struct PendingConfirmsTests {
    typealias Confirms = PendingConfirms<Int>
    typealias Completion = Confirms.Completion

    func pending(_ count: Int) -> Confirms {
        var confirms = Confirms()
        for id in 1...count { confirms.append(id) }
        return confirms
    }

    @Test func sequenceNumbersFollowThePublishes() {
        var confirms = Confirms()
        #expect(confirms.isEmpty && confirms.nextSequence == 1)
        confirms.append(10)
        confirms.append(11)
        #expect(confirms.nextSequence == 3 && confirms.count == 2)
        #expect(confirms.settle(tag: 1, multiple: false, nack: nil) == [Completion(publish: 10, error: nil)])
        #expect(confirms.nextSequence == 3 && confirms.count == 1)
    }

    @Test func outOfOrderConfirmsKeepTheFrontUntilItIsSettled() {
        var confirms = pending(4)
        #expect(confirms.settle(tag: 3, multiple: false, nack: nil) == [Completion(publish: 3, error: nil)])
        #expect(confirms.count == 3)
        #expect(confirms.settle(tag: 1, multiple: false, nack: nil) == [Completion(publish: 1, error: nil)])
        #expect(confirms.settle(tag: 4, multiple: true, nack: nil) == [Completion(publish: 2, error: nil), Completion(publish: 4, error: nil)])
        #expect(confirms.isEmpty && confirms.nextSequence == 5)
    }

    @Test func aNackOutranksAReturn() {
        var confirms = pending(2)
        let unroutable = AMQPError(.unroutable, "returned")
        let nack = AMQPError(.nacked, "refused")
        confirms.markReturned(sequence: 1, unroutable)
        confirms.markReturned(sequence: 2, unroutable)
        confirms.markReturned(sequence: 9, unroutable)  // unknown: ignored
        #expect(confirms.settle(tag: 1, multiple: false, nack: nil) == [Completion(publish: 1, error: unroutable)])
        #expect(confirms.settle(tag: 2, multiple: false, nack: nack) == [Completion(publish: 2, error: nack)])
    }

    @Test func removeAllFailsWhatWaitsAndRestartsTheSequence() {
        var confirms = pending(3)
        _ = confirms.settle(tag: 2, multiple: false, nack: nil)
        let gone = AMQPError(.connectionLost, "gone")
        #expect(confirms.removeAll(failingWith: gone) == [Completion(publish: 1, error: gone), Completion(publish: 3, error: gone)])
        #expect(confirms.isEmpty && confirms.nextSequence == 1)
    }

    /// The ring compacts itself once more than 4096 settled entries sit before the front.
    @Test func aLongRunCompactsWithoutLosingItsPlace() {
        var confirms = Confirms()
        for id in 1...10_000 { confirms.append(id) }
        var settled = 0
        for tag in stride(from: 100, through: 10_000, by: 100) {
            settled += confirms.settle(tag: UInt64(tag), multiple: true, nack: nil).count
            #expect(confirms.nextSequence == 10_001)
        }
        #expect(settled == 10_000 && confirms.isEmpty)
        confirms.append(10_001)
        #expect(confirms.settle(tag: 10_001, multiple: false, nack: nil) == [Completion(publish: 10_001, error: nil)])
    }
}
