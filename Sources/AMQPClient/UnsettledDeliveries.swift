/// The delivery tags handed out on the current channel and not yet settled, in delivery order.
///
/// It lets the connection thread turn single acks into `multiple` acks that cover the oldest
/// unsettled deliveries, which saves a frame, a system call and, on a quorum queue, a Raft
/// command per message. An ack that arrives out of order (a delivery before it is still being
/// worked on) is **deferred**: it waits, unsent, for the front to catch up, and goes out inside
/// the `multiple` ack that covers it. A consumer that settles in rounds (many keys at once,
/// finishing in any order) sent 82% of its acks one by one before this, and the broker spent
/// more CPU per event on them than PostgreSQL did (bench/README, "Acks out of order, deferred").
///
/// A deferred ack still holds a prefetch slot, so it waits only so long: it is sent alone once
/// the oldest deferred ack has waited ``maxDeferral``, or at once when a consumer would have as
/// many deferred acks as deliveries still being worked on, so that at most half of its window
/// (`basic.qos` counts per consumer) waits for another consumer's front, and a window of one or
/// two never defers. A `multiple` nack never covers one (they are sent first), and a consumer
/// cancel or a graceful close sends them all (``takeDeferred(upTo:)``). One lost with its channel is
/// redelivered: the application has settled it, so it meets its own record (a duplicate, acked
/// again).
struct UnsettledDeliveries {
    typealias Instant = ContinuousClock.Instant

    struct AckFrame: Equatable {
        let tag: UInt64
        let multiple: Bool
    }

    /// How long an ack out of order waits for the front before it is sent alone. A busy
    /// pipeline holds each delivery for tens of milliseconds (the PostgreSQL bench: 400 in hand
    /// at ~5,000/s), so its front is often older than 20 ms: with 20 the broker spent 0.049 ms
    /// of CPU per event, with 250 0.028 (bench/README). 250 ms bounds how long a settled
    /// delivery holds a slot or can come back as a duplicate after a crash.
    static let maxDeferral: Duration = .milliseconds(250)

    private var tags: [UInt64] = []
    /// The consumer of each of `tags`, at the same position (an index into `working`).
    private var tagConsumers: [Int] = []
    private var head = 0
    private var consumerIndex: [String: Int] = [:]
    /// Per consumer: its deliveries the application has not settled, and its acks deferred.
    private var working: [Int] = []
    private var deferredOf: [Int] = []
    /// Settled by a frame already sent (an ack sent alone, a nack, a reject), behind the front.
    private var settledOutOfOrder: Set<UInt64> = []
    /// Acked by the application, not sent yet.
    private var deferred: Set<UInt64> = []
    /// When the oldest deferred ack was deferred.
    private var deferredSince: Instant?

    /// Deliveries out that the application has not settled.
    var count: Int { tags.count - head - settledOutOfOrder.count - deferred.count }

    /// Acks deferred, not sent yet.
    var deferredCount: Int { deferred.count }

    /// When the deferred acks are due to be sent alone (``dueFrames(now:)``); `nil` with none.
    var deferralDeadline: Instant? { deferredSince.map { $0 + Self.maxDeferral } }

    /// Delivery `tag` arrived for `consumer` (its consumer tag).
    mutating func delivered(_ tag: UInt64, consumer: String) {
        let index: Int
        if let known = consumerIndex[consumer] {
            index = known
        } else {
            index = working.count
            consumerIndex[consumer] = index
            working.append(0)
            deferredOf.append(0)
        }
        tags.append(tag)
        tagConsumers.append(index)
        working[index] += 1
    }

    /// The ack frames to send now for these single acks from the application (acked at `now`).
    mutating func ackFrames(for acked: [UInt64], now: Instant) -> [AckFrame] {
        guard !acked.isEmpty else { return [] }
        for tag in acked {
            guard let consumer = consumer(of: tag), !settledOutOfOrder.contains(tag), deferred.insert(tag).inserted else { continue }
            working[consumer] -= 1
            deferredOf[consumer] += 1
        }
        var frames = advanceFront().map { [$0] } ?? []
        if !deferred.isEmpty {
            if deferredSince == nil { deferredSince = now }
            // Deferred acks hold prefetch slots, counted per consumer: never half of a window.
            if deferredOf.indices.contains(where: { deferredOf[$0] > 0 && deferredOf[$0] >= working[$0] }) {
                frames += takeDeferred()
            }
        }
        compact()
        return frames
    }

    /// The deferred acks once the oldest has waited ``maxDeferral``, each alone; else none.
    mutating func dueFrames(now: Instant) -> [AckFrame] {
        guard let deadline = deferralDeadline, now >= deadline else { return [] }
        return takeDeferred()
    }

    /// The deferred acks up to `tag` (all of them by default), each alone, in tag order: when
    /// they are due, before a consumer is cancelled or the channel closes gracefully, and before
    /// a `multiple` nack up to `tag` (which must not requeue or drop them).
    mutating func takeDeferred(upTo tag: UInt64 = .max) -> [AckFrame] {
        let taken = deferred.filter { $0 <= tag }.sorted()
        for tag in taken { if let consumer = consumer(of: tag) { deferredOf[consumer] -= 1 } }
        deferred.subtract(taken)
        settledOutOfOrder.formUnion(taken)
        if deferred.isEmpty { deferredSince = nil }
        return taken.map { AckFrame(tag: $0, multiple: false) }
    }

    /// A single nack or reject, sent as it is. Returns the ack frame for deferred acks it
    /// lets the front pass, to send after it.
    mutating func settledSingly(_ tag: UInt64) -> AckFrame? {
        if let consumer = consumer(of: tag), !deferred.contains(tag), settledOutOfOrder.insert(tag).inserted {
            working[consumer] -= 1
        }
        let frame = advanceFront()
        compact()
        return frame
    }

    /// A `multiple` settlement from the application: everything up to `tag` is settled (the
    /// deferred acks it covers included, when it is an ack). Returns the ack frame for deferred
    /// acks the front then passes, to send after it.
    mutating func settledUpTo(_ tag: UInt64) -> AckFrame? {
        while head < tags.count, tags[head] <= tag {
            let consumer = tagConsumers[head]
            if deferred.remove(tags[head]) != nil {
                deferredOf[consumer] -= 1
            } else if settledOutOfOrder.remove(tags[head]) == nil {
                working[consumer] -= 1
            }
            head += 1
        }
        if deferred.isEmpty { deferredSince = nil }
        let frame = advanceFront()
        compact()
        return frame
    }

    /// The channel is gone: its tags mean nothing any more.
    mutating func reset() {
        self = UnsettledDeliveries()
    }

    /// Moves the front past every settled delivery; returns the frame that acks the deferred
    /// ones it passed: one `multiple` ack up to the last (everything before it is settled, by
    /// that frame or by frames sent earlier), or a single ack when it passed one.
    private mutating func advanceFront() -> AckFrame? {
        var lastAcked: UInt64?
        var acked = 0
        while head < tags.count {
            let tag = tags[head]
            if deferred.remove(tag) != nil {
                deferredOf[tagConsumers[head]] -= 1
                lastAcked = tag
                acked += 1
            } else if settledOutOfOrder.remove(tag) == nil {
                break
            }
            head += 1
        }
        if deferred.isEmpty { deferredSince = nil }
        return lastAcked.map { AckFrame(tag: $0, multiple: acked > 1) }
    }

    /// The consumer of `tag`, while it is out (tags grow along `tags`: a binary search).
    private func consumer(of tag: UInt64) -> Int? {
        var (low, high) = (head, tags.count)
        while low < high {
            let middle = (low + high) / 2
            if tags[middle] < tag { low = middle + 1 } else { high = middle }
        }
        return low < tags.count && tags[low] == tag ? tagConsumers[low] : nil
    }

    private mutating func compact() {
        if head > 4096, head * 2 > tags.count {
            tags.removeFirst(head)
            tagConsumers.removeFirst(head)
            head = 0
        }
    }
}
