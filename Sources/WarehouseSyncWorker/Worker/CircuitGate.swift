import Logging
import Synchronization
import WarehouseSyncCore
import WarehouseSyncERP

/// Carries out the ``CircuitBreaker``'s actions for one worker: while the circuit is open,
/// postings wait in ``waitUntilPostingAllowed()`` (so the consumer takes nothing new and the
/// messages in hand stay unacked, never burnt into dead letters), and a probe task asks the ERP's
/// `GET /health` until it answers.
actor CircuitGate {
    private var breaker: CircuitBreaker<ContinuousClock.Instant>
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var probe: Task<Void, Never>?
    /// After ``shutdown()`` nothing waits any more: the pipeline hands its messages back.
    private var stopped = false
    /// The failure that last counted against the breaker, for the log line when it opens.
    private var lastFailure: ERPResponseClass.TransientReason?
    private let erp: any ERPClient
    private let logger: Logger
    private let clock = ContinuousClock()
    /// Called with `true` when the circuit opens, `false` when it lets postings through again.
    private let onChange: @Sendable (Bool) -> Void
    /// The last answer that was not the ERP speaking (DESIGN §3: a proxy's page, a 404), until
    /// the ERP answers a posting again: `/readyz` names the ERP as misanswering meanwhile.
    nonisolated let misanswer = Mutex<ERPResponseClass.TransientReason?>(nil)
    /// The breaker is closed with no failure counted and no misanswer: a posting needs no wait
    /// and its answer changes nothing, so the pipeline skips both hops to this actor (two per
    /// event). Kept by every change of the breaker; a reader that sees it set may take its check
    /// as the moment its call was made.
    private nonisolated let quietFlag = Atomic<Bool>(true)

    /// See ``quietFlag``.
    nonisolated var isQuiet: Bool { quietFlag.load(ordering: .acquiring) }

    init(
        configuration: CircuitBreaker<ContinuousClock.Instant>.Configuration, erp: any ERPClient, logger: Logger,
        onChange: @escaping @Sendable (Bool) -> Void = { _ in }
    ) {
        breaker = CircuitBreaker(configuration: configuration)
        self.erp = erp
        self.logger = logger
        self.onChange = onChange
    }

    var isOpen: Bool { !breaker.allowsPosting }

    /// Returns at once while the circuit lets postings through, else when it does again.
    func waitUntilPostingAllowed() async {
        guard !breaker.allowsPosting, !stopped else { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// The ERP answered a posting (posted, 409 or a business rejection).
    func recordAnswer() {
        if misanswer.withLock({ $0.take() }) != nil {
            logger.notice("the ERP answers postings as the contract says again")
        }
        perform(breaker.recordSuccess())
        updateQuiet()
    }

    private func updateQuiet() {
        let quiet = breaker.state == .closed(.none) && misanswer.withLock { $0 == nil } && !stopped
        quietFlag.store(quiet, ordering: .releasing)
    }

    /// A posting of `key` failed transiently for `reason`. Returns whether the circuit is open
    /// now: the caller then waits and posts again at the same attempt instead of spending one of
    /// its retries. Otherwise it was an item failure, which spends an attempt.
    func recordTransientFailure(_ reason: ERPResponseClass.TransientReason, key: String) -> Bool {
        lastFailure = reason
        if case .misanswered = reason {
            let startsMisanswering = misanswer.withLock { current in
                let starts = current == nil
                current = reason
                return starts
            }
            if startsMisanswering {
                logger.error(
                    "the ERP's answer is not the ERP speaking (a proxy, an ingress, a wrong ERP_BASE_URL?): the event is retried, never taken as posted or rejected",
                    metadata: ["erp.answer": "\(reason)"])
            }
        }
        perform(breaker.recordTransientFailure(
            key: key, systemic: reason.isSystemic, erpAnswer: reason.isERPAnswer, at: clock.now))
        updateQuiet()
        return !breaker.allowsPosting
    }

    /// Stops the probe (at shutdown) and lets every waiter go, so that in-flight work can finish
    /// and hand its messages back.
    func shutdown() {
        stopped = true
        updateQuiet()
        probe?.cancel()
        probe = nil
        resumeWaiters()
    }

    private func perform(_ actions: [CircuitBreaker<ContinuousClock.Instant>.Action]) {
        for action in actions {
            switch action {
            case .stopConsuming:
                let failure = lastFailure.map(\.description) ?? "?"
                if case .status(let status) = lastFailure, status == 401 || status == 403 {
                    // A refused token does not mend itself the way an outage does: say what to fix.
                    logger.error(
                        "ERP refuses the worker's token: circuit open, consumption paused; check ERP_TOKEN_FILE (read at start: restart the worker after changing it)",
                        metadata: ["erp.lastFailure": "\(failure)"])
                } else {
                    logger.warning(
                        "ERP unavailable: circuit open, consumption paused until GET /health answers",
                        metadata: ["erp.lastFailure": "\(failure)"])
                }
                onChange(true)
            case .probeHealth(let delay):
                scheduleProbe(after: delay)
            case .resumeConsuming:
                logger.notice("ERP answers again: circuit half-open, consumption resumed")
                onChange(false)
                resumeWaiters()
            }
        }
    }

    private func scheduleProbe(after delay: Duration) {
        probe?.cancel()
        probe = Task { [erp, clock] in
            try? await clock.sleep(for: delay)
            guard !Task.isCancelled else { return }
            let healthy = await erp.health()
            guard !Task.isCancelled else { return }
            self.probeAnswered(healthy: healthy)
        }
    }

    private func probeAnswered(healthy: Bool) {
        if !healthy {
            logger.info("ERP health probe failed; circuit stays open")
        }
        perform(breaker.recordProbe(healthy: healthy, at: clock.now))
        updateQuiet()
    }

    private func resumeWaiters() {
        let waiting = waiters
        waiters = []
        for waiter in waiting { waiter.resume() }
    }
}
