/// The delivery tags handed out on the current channel and not yet settled, in delivery order.
///
/// It lets the connection thread turn a run of single acks into one `multiple` ack when they
/// cover the oldest unsettled deliveries (the usual case for a consumer that works in order),
/// which saves a frame and a system call per message. Tags settled out of order are remembered
/// until the front catches up with them, because a `multiple` ack must never cover a delivery
/// the application has not settled.
struct UnsettledDeliveries {
    struct AckFrame: Equatable {
        let tag: UInt64
        let multiple: Bool
    }

    private var tags: [UInt64] = []
    private var head = 0
    private var settledOutOfOrder: Set<UInt64> = []

    var count: Int { tags.count - head - settledOutOfOrder.count }

    mutating func delivered(_ tag: UInt64) {
        tags.append(tag)
    }

    /// The ack frames to send for these single acks, and the bookkeeping to go with them.
    mutating func ackFrames(for acked: [UInt64]) -> [AckFrame] {
        guard !acked.isEmpty else { return [] }
        var remaining = Set(acked)
        var frames: [AckFrame] = []
        var lastAckedAtFront: UInt64?
        var ackedAtFront = 0
        var index = head
        while index < tags.count {
            let tag = tags[index]
            if remaining.remove(tag) != nil {
                lastAckedAtFront = tag
                ackedAtFront += 1
            } else if settledOutOfOrder.remove(tag) == nil {
                break
            }
            index += 1
        }
        head = index
        if let lastAckedAtFront {
            frames.append(AckFrame(tag: lastAckedAtFront, multiple: ackedAtFront > 1))
        }
        for tag in acked where remaining.contains(tag) {
            frames.append(AckFrame(tag: tag, multiple: false))
            settledOutOfOrder.insert(tag)
        }
        compact()
        return frames
    }

    /// A single nack or reject, sent as it is.
    mutating func settledSingly(_ tag: UInt64) {
        if head < tags.count, tags[head] == tag {
            head += 1
            while head < tags.count, settledOutOfOrder.remove(tags[head]) != nil { head += 1 }
        } else {
            settledOutOfOrder.insert(tag)
        }
        compact()
    }

    /// A `multiple` settlement from the application: everything up to `tag` is settled.
    mutating func settledUpTo(_ tag: UInt64) {
        while head < tags.count, tags[head] <= tag {
            settledOutOfOrder.remove(tags[head])
            head += 1
        }
        compact()
    }

    /// The channel is gone: its tags mean nothing any more.
    mutating func reset() {
        self = UnsettledDeliveries()
    }

    private mutating func compact() {
        if head > 4096, head * 2 > tags.count {
            tags.removeFirst(head)
            head = 0
        }
    }
}
