/// Stops a worker from consuming while the ERP is down, so that its messages wait in the queue
/// instead of being burnt through their retries into dead letters, and never for the items an ERP
/// that is up keeps refusing (DESIGN §5).
///
/// What says "down": `failureThreshold` transient failures in a row (no answered posting in
/// between) that either all found the ERP unreachable (no connection, no answer in time, or an
/// answer that is not the ERP speaking: ``ERPResponseClass/TransientReason/isSystemic``), or
/// came from that many distinct keys. A handful of items the ERP refuses with 503 again and
/// again are not the ERP being down: their failures share keys, and each spends an attempt.
///
/// - closed: posting normally, counting failures as above.
/// - open: consumption stopped; postings in hand wait and are posted again at the same attempt.
///   After the probe interval the pipeline probes `GET /health`. A healthy answer half-opens it;
///   an unhealthy one keeps it open and doubles the interval (capped at `maxProbeInterval`).
/// - half-open: consuming again, on trial, on the word of `/health`. The first answered posting
///   closes it; a systemic failure opens it again (with the next, longer interval), unless the
///   run that opened it was one key's alone and this is that key again with an answer from the
///   ERP itself: one item that always gets a systemic answer (a 403 for one plant) is that
///   item's problem once `/health` answers, and spends its attempts instead of pausing the
///   stream for good. No answer, or a proxy's, stays the ERP's problem whoever posted. A
///   failure the ERP answered (a 503 for one item) is an item failure: it spends an attempt and
///   does not pause the stream, since `/health` says the ERP is up. When such failures reach
///   `failureThreshold` distinct keys, `/health` is asked again while consuming goes on, and
///   only a failed probe opens the circuit.
///
/// Any posting the ERP answered (posted, 409 or a business rejection) counts as a success: it
/// proves the ERP is up. Postings that were in flight when it opened report back late; a late
/// success closes it (the ERP is back), a late failure is ignored (it says nothing new).
///
/// Pure: every event takes the current instant, and the actions say what to do. Generic over
/// the instant so that the pipeline passes a monotonic clock's (`ContinuousClock.Instant`) and
/// tests their own.
public struct CircuitBreaker<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    public struct Configuration: Sendable, Hashable {
        /// Failures in a row (systemic ones, or ones of that many distinct keys) that open
        /// the circuit; ≥ 1.
        public let failureThreshold: Int
        /// The wait before the first probe after opening.
        public let probeInterval: Duration
        /// The longest wait between probes however long the ERP stays down.
        public let maxProbeInterval: Duration

        /// A threshold below 1 counts as 1; a cap below `probeInterval` as `probeInterval`.
        public init(
            failureThreshold: Int = 5, probeInterval: Duration = .seconds(2), maxProbeInterval: Duration = .seconds(60)
        ) {
            self.failureThreshold = max(1, failureThreshold)
            self.probeInterval = probeInterval
            self.maxProbeInterval = max(probeInterval, maxProbeInterval)
        }
    }

    /// The failures since the last answered posting (or, half-open, since the last healthy probe).
    public struct Failures: Sendable, Hashable {
        /// Systemic failures in a row; any other failure resets it.
        public var systemicInARow: Int
        /// The distinct keys that failed, at most `failureThreshold` of them.
        public var keys: Set<String>

        public static var none: Failures { Failures(systemicInARow: 0, keys: []) }

        public init(systemicInARow: Int, keys: Set<String>) {
            self.systemicInARow = systemicInARow
            self.keys = keys
        }

        mutating func record(key: String, systemic: Bool, threshold: Int) {
            systemicInARow = systemic ? systemicInARow + 1 : 0
            if keys.count < threshold { keys.insert(key) }
        }
    }

    public enum State: Sendable, Hashable {
        case closed(Failures)
        /// `openings` counts openings and failed probes since it was last closed: the probe
        /// interval doubles with each. The next probe is due at `probeDue`. `suspects` are the
        /// keys whose failures opened it.
        case open(since: Instant, openings: Int, probeDue: Instant, suspects: Set<String>)
        /// Consuming on trial after a healthy probe; `openings` and `suspects` as in `open`.
        /// `probeDue` is set while a probe asked for by item failures is under way.
        case halfOpen(openings: Int, itemFailures: Failures, probeDue: Instant?, suspects: Set<String>)
    }

    /// What the pipeline must do.
    public enum Action: Sendable, Hashable {
        /// Stop taking deliveries (cancel the consumer or stop pulling); hold back what is in hand.
        case stopConsuming
        /// Probe the ERP's health after this long, then report with ``recordProbe(healthy:at:)``.
        case probeHealth(after: Duration)
        /// Take deliveries again.
        case resumeConsuming
    }

    public let configuration: Configuration
    public private(set) var state: State = .closed(.none)

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Whether the pipeline may post now. After reporting a failure: `false` means the posting
    /// waits for the circuit and is posted again at the same attempt; `true` means it was an item
    /// failure, which spends an attempt.
    public var allowsPosting: Bool {
        if case .open = state { return false }
        return true
    }

    /// The ERP answered a posting (posted, 409 or rejected).
    public mutating func recordSuccess() -> [Action] {
        let wasOpen = !allowsPosting
        state = .closed(.none)
        return wasOpen ? [.resumeConsuming] : []
    }

    /// A posting of `key` failed transiently; `systemic` as
    /// ``ERPResponseClass/TransientReason/isSystemic`` says, `erpAnswer` as
    /// ``ERPResponseClass/TransientReason/isERPAnswer``.
    public mutating func recordTransientFailure(
        key: String, systemic: Bool, erpAnswer: Bool = true, at now: Instant
    ) -> [Action] {
        let threshold = configuration.failureThreshold
        switch state {
        case .closed(var failures):
            failures.record(key: key, systemic: systemic, threshold: threshold)
            guard failures.systemicInARow >= threshold || failures.keys.count >= threshold else {
                state = .closed(failures)
                return []
            }
            return open(at: now, openings: 1, suspects: failures.keys)
        case .halfOpen(let openings, var failures, let probeDue, let suspects):
            if systemic, !(erpAnswer && suspects == [key]) { return open(at: now, openings: openings + 1, suspects: [key]) }
            failures.record(key: key, systemic: false, threshold: threshold)
            guard probeDue == nil, failures.keys.count >= threshold else {
                state = .halfOpen(openings: openings, itemFailures: failures, probeDue: probeDue, suspects: suspects)
                return []
            }
            // Many keys failing: ask `/health` again, without pausing on the strength of answers.
            state = .halfOpen(openings: openings, itemFailures: failures, probeDue: now, suspects: suspects)
            return [.probeHealth(after: .zero)]
        case .open:
            return []
        }
    }

    /// The health probe that a ``Action/probeHealth(after:)`` asked for answered. A report
    /// before the probe was due, or when no probe is under way, is ignored: it comes from a
    /// stale timer.
    public mutating func recordProbe(healthy: Bool, at now: Instant) -> [Action] {
        switch state {
        case .open(let since, let openings, let probeDue, let suspects) where now >= probeDue:
            if healthy {
                state = .halfOpen(openings: openings, itemFailures: .none, probeDue: nil, suspects: suspects)
                return [.resumeConsuming]
            }
            let interval = probeInterval(openings: openings + 1)
            state = .open(since: since, openings: openings + 1, probeDue: now.advanced(by: interval), suspects: suspects)
            return [.probeHealth(after: interval)]
        case .halfOpen(let openings, let failures, let probeDue?, let suspects) where now >= probeDue:
            if healthy {
                state = .halfOpen(openings: openings, itemFailures: .none, probeDue: nil, suspects: suspects)
                return []
            }
            return open(at: now, openings: openings + 1, suspects: failures.keys)
        default:
            return []
        }
    }

    private mutating func open(at now: Instant, openings: Int, suspects: Set<String>) -> [Action] {
        let interval = probeInterval(openings: openings)
        state = .open(since: now, openings: openings, probeDue: now.advanced(by: interval), suspects: suspects)
        return [.stopConsuming, .probeHealth(after: interval)]
    }

    /// `probeInterval × 2^(openings − 1)`, capped.
    private func probeInterval(openings: Int) -> Duration {
        var interval = configuration.probeInterval
        for _ in 1..<max(1, openings) where interval < configuration.maxProbeInterval {
            interval = interval * 2
        }
        return min(interval, configuration.maxProbeInterval)
    }
}
