import Foundation
import WarehouseSyncCore
import WarehouseSyncPublisher

/// `whsync publish`: validates each line with the core's event model and publishes the valid
/// ones through an ``EventPublisher``, keeping a window of batches in flight.
public struct EventFilePublisher: Sendable {
    public struct Summary: Sendable, Equatable {
        public var published = 0
        /// Lines that are not valid events: reported, never published.
        public var rejected = 0
        /// Valid events the broker did not confirm (unroutable, nacked, connection lost for good).
        public var failed = 0
        public var elapsed: Duration = .zero

        public var rate: Double {
            elapsed > .zero ? Double(published) / elapsed.timeInterval : 0
        }
    }

    public enum Problem: Sendable {
        case invalid(line: Int, PublishError)
        case notPublished(line: Int, eventId: String, PublishError)

        public var description: String {
            switch self {
            case .invalid(let line, let error): "line \(line): not a valid event: \(error.message)"
            case .notPublished(let line, let eventId, let error): "line \(line) (eventId \(eventId)): not published: \(error.message)"
            }
        }
    }

    let publisher: EventPublisher
    let batchSize: Int
    let batchesInFlight: Int
    /// A batch's events that failed for a retryable reason (the connection dropped, no confirm in
    /// time) are sent again once the connection is back, at most this many times in all: the
    /// eventId makes a repeat harmless downstream.
    let attempts: Int

    public init(publisher: EventPublisher, batchSize: Int = 500, batchesInFlight: Int = 4, attempts: Int = 3) {
        self.publisher = publisher
        self.batchSize = batchSize
        self.batchesInFlight = batchesInFlight
        self.attempts = attempts
    }

    private struct Pending: Sendable {
        let line: Int
        let event: ValidatedEvent
    }

    /// Publishes every valid line; `report` receives each problem as it happens and `progress`
    /// the running totals after every batch.
    public func publish<Lines: AsyncSequence>(
        lines: Lines,
        report: @escaping @Sendable (Problem) -> Void,
        progress: @escaping @Sendable (Summary) -> Void = { _ in }
    ) async throws -> Summary where Lines.Element == (number: Int, bytes: [UInt8]) {
        let start = ContinuousClock.now
        var summary = Summary()
        try await withThrowingTaskGroup(of: (published: Int, failed: Int).self) { group in
            var inFlight = 0
            var batch: [Pending] = []
            func collect(_ outcome: (published: Int, failed: Int)) {
                summary.published += outcome.published
                summary.failed += outcome.failed
                summary.elapsed = start.duration(to: .now)
                progress(summary)
            }
            func submit() async throws {
                guard !batch.isEmpty else { return }
                if inFlight == batchesInFlight, let outcome = try await group.next() {
                    inFlight -= 1
                    collect(outcome)
                }
                let items = batch
                batch.removeAll(keepingCapacity: true)
                inFlight += 1
                group.addTask { await send(items, report: report) }
            }
            for try await (number, bytes) in lines {
                if LineReader.isBlank(bytes) { continue }
                switch Result(catching: { () throws(PublishError) in try publisher.validate(bytes) }) {
                case .success(let event):
                    batch.append(Pending(line: number, event: event))
                case .failure(let error):
                    summary.rejected += 1
                    report(.invalid(line: number, error))
                }
                if batch.count == batchSize { try await submit() }
            }
            try await submit()
            for try await outcome in group { collect(outcome) }
        }
        summary.elapsed = start.duration(to: .now)
        return summary
    }

    private func send(_ items: [Pending], report: @Sendable (Problem) -> Void) async -> (published: Int, failed: Int) {
        var remaining = items
        var published = 0
        var failed = 0
        for attempt in 1...max(attempts, 1) {
            let results = await publisher.publish(remaining.map(\.event))
            var retry: [Pending] = []
            for (item, result) in zip(remaining, results) {
                switch result {
                case .success:
                    published += 1
                case .failure(let error) where error.isRetryable && attempt < attempts:
                    retry.append(item)
                case .failure(let error):
                    failed += 1
                    report(.notPublished(line: item.line, eventId: item.event.event.eventId, error))
                }
            }
            guard !retry.isEmpty else { break }
            remaining = retry
            _ = await publisher.waitUntilConnected(timeout: publisher.configuration.confirmTimeout)
        }
        return (published, failed)
    }
}
