/// Publishes waiting for their broker confirm, by sequence number (1, 2, 3... per channel).
///
/// Pure bookkeeping: it calls nothing. Settling returns the publishes it completed, in sequence
/// order, each with its outcome; the connection thread resumes their callers.
struct PendingConfirms<Publish> {
    /// A publish whose confirm (or failure) has arrived: `error` is nil when the broker took it.
    struct Completion {
        let publish: Publish
        let error: AMQPError?
    }

    private struct Entry {
        let publish: Publish
        var returned: AMQPError?
    }

    private var entries: [Entry?] = []
    private var head = 0
    /// The sequence number of `entries[head]`.
    private var base: UInt64 = 1

    var nextSequence: UInt64 { base + UInt64(entries.count - head) }
    var isEmpty: Bool { head == entries.count }
    var count: Int { entries[head...].reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    mutating func append(_ publish: Publish) {
        entries.append(Entry(publish: publish))
    }

    /// A `mandatory` publish came back as basic.return: it fails with `error` when its confirm comes.
    mutating func markReturned(sequence: UInt64, _ error: AMQPError) {
        guard let index = index(of: sequence), entries[index] != nil else { return }
        entries[index]!.returned = error
    }

    /// Completes the publish `tag` (and, with `multiple`, every earlier one still waiting).
    mutating func settle(tag: UInt64, multiple: Bool, nack: AMQPError?) -> [Completion] {
        guard let last = index(of: tag) else { return [] }
        let first = multiple ? head : last
        var completed: [Completion] = []
        for index in first...last {
            guard let entry = entries[index] else { continue }
            entries[index] = nil
            completed.append(Completion(publish: entry.publish, error: nack ?? entry.returned))
        }
        while head < entries.count, entries[head] == nil {
            head += 1
            base += 1
        }
        if head > 4096, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
        return completed
    }

    /// Takes every waiting publish, failed with `error` (the channel is gone); sequence numbers
    /// restart at 1.
    mutating func removeAll(failingWith error: AMQPError) -> [Completion] {
        let completions = entries[head...].compactMap { $0.map { Completion(publish: $0.publish, error: error) } }
        self = PendingConfirms()
        return completions
    }

    private func index(of sequence: UInt64) -> Int? {
        guard sequence >= base else { return nil }
        let index = head + Int(sequence - base)
        return index < entries.count ? index : nil
    }
}

extension PendingConfirms.Completion: Equatable where Publish: Equatable {}
extension PendingConfirms.Completion: Sendable where Publish: Sendable {}
