/// Stops a worker from consuming while the ERP is down, so that its messages wait in the queue
/// instead of being burnt through their retries into dead letters (DESIGN §5).
///
/// - closed: posting normally; `failureThreshold` transient failures in a row open it.
/// - open: consumption stopped; after the probe interval the pipeline probes `GET /health`.
///   A healthy answer half-opens it, an unhealthy one keeps it open and doubles the interval
///   (capped at `maxProbeInterval`).
/// - half-open: consuming again, on trial: the first successful posting closes it, the first
///   transient failure opens it again (with the next, longer interval) — a health endpoint can
///   answer while posting still fails.
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
        /// Consecutive transient failures that open the circuit; ≥ 1.
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

    public enum State: Sendable, Hashable {
        case closed(consecutiveFailures: Int)
        /// `openings` counts openings and failed probes since it was last closed: the probe
        /// interval doubles with each. The next probe is due at `probeDue`.
        case open(since: Instant, openings: Int, probeDue: Instant)
        /// Consuming on trial after a healthy probe; `openings` as in `open`.
        case halfOpen(openings: Int)
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
    public private(set) var state: State = .closed(consecutiveFailures: 0)

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Whether the pipeline may post now.
    public var allowsPosting: Bool {
        if case .open = state { return false }
        return true
    }

    /// The ERP answered a posting (posted, 409 or rejected).
    public mutating func recordSuccess() -> [Action] {
        let wasOpen = !allowsPosting
        state = .closed(consecutiveFailures: 0)
        return wasOpen ? [.resumeConsuming] : []
    }

    /// A posting failed transiently (``ERPResponseClass/isTransient``).
    public mutating func recordTransientFailure(at now: Instant) -> [Action] {
        switch state {
        case .closed(let failures):
            guard failures + 1 >= configuration.failureThreshold else {
                state = .closed(consecutiveFailures: failures + 1)
                return []
            }
            return open(at: now, openings: 1)
        case .halfOpen(let openings):
            return open(at: now, openings: openings + 1)
        case .open:
            return []
        }
    }

    /// The health probe that a ``Action/probeHealth(after:)`` asked for answered. A report
    /// before the probe was due, or when the circuit is not open, is ignored: it comes from a
    /// stale timer.
    public mutating func recordProbe(healthy: Bool, at now: Instant) -> [Action] {
        guard case .open(let since, let openings, let probeDue) = state, now >= probeDue else { return [] }
        if healthy {
            state = .halfOpen(openings: openings)
            return [.resumeConsuming]
        }
        let interval = probeInterval(openings: openings + 1)
        state = .open(since: since, openings: openings + 1, probeDue: now.advanced(by: interval))
        return [.probeHealth(after: interval)]
    }

    private mutating func open(at now: Instant, openings: Int) -> [Action] {
        let interval = probeInterval(openings: openings)
        state = .open(since: now, openings: openings, probeDue: now.advanced(by: interval))
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
