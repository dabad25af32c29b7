import CRabbitMQ
import Foundation
import ThreadNaming
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a consumer settles a delivery.
enum Settlement: Sendable, Equatable {
    case ack(multiple: Bool)
    case nack(requeue: Bool, multiple: Bool)
    case reject(requeue: Bool)
}

typealias PublishCompletion = @Sendable (Result<Void, AMQPError>) -> Void

struct ConsumerRegistration: Sendable {
    let tag: String
    let queue: String
    let prefetch: UInt16
    let exclusive: Bool
    let arguments: AMQPTable
    /// Deliveries go out in batches (all that one read round brought), one resume per batch.
    let continuation: AsyncStream<[AMQPDelivery]>.Continuation
}

/// Work queued for the connection thread by other threads.
enum Command: Sendable {
    /// A publish not yet sent when `deadline` passes is never sent (its caller has given up).
    case publish(OutboundMessage, deadline: ContinuousClock.Instant?, PublishCompletion)
    case perform(run: @Sendable (SyncChannel) -> Void, fail: @Sendable (AMQPError) -> Void)
    case settle(Settlement, tag: UInt64, generation: UInt64)
    case consume(ConsumerRegistration, @Sendable (Result<Void, AMQPError>) -> Void)
    case cancel(tag: String, @Sendable () -> Void)
    case close(@Sendable () -> Void)

    /// Completes the command without running it (the connection is gone for good).
    func fail(_ error: AMQPError) {
        switch self {
        case .publish(_, _, let completion): completion(.failure(error))
        case .perform(_, let fail): fail(error)
        case .settle: break
        case .consume(let registration, let completion):
            registration.continuation.finish()
            completion(.failure(error))
        case .cancel(_, let done): done()
        case .close(let done): done()
        }
    }
}

/// One librabbitmq connection and the thread that owns it (DESIGN section 7).
///
/// librabbitmq is blocking and a connection is not thread-safe, so every C call on the
/// connection happens on `thread`. Other threads hand it `Command`s through `inbox` and wake it
/// with an eventfd; the thread waits in `poll` on the socket and the eventfd, so queued acks and
/// publishes go out at once and an idle connection costs nothing but its heartbeats.
///
/// Everything below "Connection-thread state" is touched only by that thread.
final class ConnectionEngine: @unchecked Sendable {
    struct Inbox {
        var commands: [Command] = []
        var terminated = false
        /// The thread is in (or about to enter) `poll` and needs the eventfd to wake up. While
        /// it is busy, enqueuing costs no system call at all.
        var threadWaiting = false
        /// The thread polls with a short timeout because deliveries are out: acks can wait for
        /// that timeout (or until enough pile up) instead of each waking the thread, which on a
        /// consumer acking every message saves a context switch per message.
        var acksCanWait = false
        var queuedAcks = 0
    }

    /// How long a queued ack may wait for the thread, and how many may pile up before one wakes it.
    static let ackDelay: Int32 = 2
    static let acksPerWakeUp = 64

    struct Options: Sendable {
        var publisherConfirms: Bool
        var reconnect: ReconnectPolicy?
        var onConnect: (@Sendable (SyncChannel) throws -> Void)?
    }

    /// The header that ties a returned `mandatory` message to its publish sequence number:
    /// basic.return carries no delivery tag, and returns are matched exactly, not by guess.
    static let publishSequenceHeader = "whsync-publish-seq"
    static let channel: amqp_channel_t = 1

    let configuration: AMQPConfiguration
    let options: Options
    let logger: Logger
    let connected = Atomic<Bool>(false)
    /// The broker has blocked publishing on this connection (a memory or disk alarm): publishes
    /// are not read, so their confirms wait until the alarm clears.
    let blocked = Atomic<Bool>(false)
    /// `generation` for other threads: a delivery of an older channel is stale, and
    /// `AMQPDeliveries` skips it rather than hand out work whose ack cannot reach the broker.
    let currentGeneration = Atomic<UInt64>(0)
    let inbox = Mutex(Inbox())
    let wakeFD: Int32
    /// The tags of the consumers the broker has on a live channel right now (written by the
    /// connection thread, read by readiness probes through `isConsuming(tag:)`).
    let liveConsumers = Mutex<Set<String>>([])

    // MARK: Connection-thread state
    var state: amqp_connection_state_t?
    /// The node of ``AMQPConfiguration/nodes`` tried first by the next connection attempt.
    var nodeCursor = 0
    /// For `SyncChannel`, which runs on this thread.
    var currentState: amqp_connection_state_t? { state }
    /// The connection's decisions: channel and generation, pending confirms, unsettled
    /// deliveries, reconnect backoff, consumer restores, heartbeat deadlines.
    var machine = ConnectionStateMachine<PublishCompletion>()
    var consumers: [String: ConsumerRegistration] = [:]
    var deliveryBatches: [String: [AMQPDelivery]] = [:]
    var running = true
    var closeCompletions: [@Sendable () -> Void] = []
    /// Resumed with the outcome of the first connection attempt.
    var initialConnect: (@Sendable (Result<Void, AMQPError>) -> Void)?

    init(configuration: AMQPConfiguration, options: Options, logger: Logger) {
        self.configuration = configuration
        self.options = options
        var logger = logger
        logger[metadataKey: "amqp.endpoint"] = "\(configuration.endpoint)"
        if let name = configuration.connectionName { logger[metadataKey: "amqp.connection"] = "\(name)" }
        self.logger = logger
        wakeFD = whsync_wakeup_fd()
    }

    deinit {
        close(wakeFD)
    }

    // MARK: - Called from any thread

    /// Starts the thread; `completion` receives the outcome of the first connection attempt.
    /// A failed first attempt ends the engine: misconfiguration must surface at start.
    func start(completion: @escaping @Sendable (Result<Void, AMQPError>) -> Void) {
        initialConnect = completion
        // "amqp " and the start of the connection's name: Linux keeps 15 bytes of a thread name.
        let name = "amqp \(configuration.connectionName ?? configuration.endpoint)"
        let thread = Thread { [self] in
            nameCurrentThread(name)
            run()
        }
        thread.start()
    }

    func enqueue(_ command: Command) {
        let wake: Bool? = inbox.withLock { inbox in
            if inbox.terminated { return nil }
            inbox.commands.append(command)
            guard inbox.threadWaiting else { return false }
            if inbox.acksCanWait, case .settle = command {
                inbox.queuedAcks += 1
                if inbox.queuedAcks < Self.acksPerWakeUp { return false }
            }
            inbox.threadWaiting = false  // one wake-up is enough for everything queued meanwhile
            return true
        }
        switch wake {
        case nil: command.fail(AMQPError(.closed, "the connection to \(configuration.endpoint) is closed"))
        case true?: wakeUp()
        case false?: break
        }
    }

    /// Whether a delivery of channel generation `generation` came from a channel since closed.
    func isStale(generation: UInt64) -> Bool {
        generation != currentGeneration.load(ordering: .acquiring)
    }

    /// Whether consumer `tag` is registered with the broker on an open channel right now.
    func isConsuming(tag: String) -> Bool {
        liveConsumers.withLock { $0.contains(tag) }
    }

    func wakeUp() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
    }

    // MARK: - The thread

    func run() {
        while running {
            if state == nil {
                establishConnection()
                continue
            }
            runCommands(takeCommands())
            guard state != nil, running else { continue }
            sendDueAcks()
            guard state != nil, running else { continue }
            readAvailableFrames()
            guard state != nil, running else { continue }
            restoreConsumers()
            guard state != nil, running else { continue }
            keepHeartbeatsAlive()
            guard state != nil, running else { continue }
            waitForWork()
        }
        shutDown()
    }

    func establishConnection() {
        do {
            try openConnection()
            blocked.store(false, ordering: .releasing)
            connected.store(true, ordering: .releasing)
            switch machine.connected() {
            case .succeedFirstConnection:
                let initialConnect = self.initialConnect
                self.initialConnect = nil
                initialConnect?(.success(()))
            case .reportReconnected:
                logger.info("reconnected to the broker")
            }
        } catch {
            switch machine.connectFailed(policy: options.reconnect, now: .now, random: Double.random(in: 0...1)) {
            case .failFirstConnection:
                let initialConnect = self.initialConnect
                self.initialConnect = nil
                running = false
                initialConnect?(.failure(error))
            case .stop:
                running = false
            case .scheduleReconnect(let attempt, let delay, let deadline):
                logger.warning(
                    "cannot reconnect to the broker; retrying",
                    metadata: ["error": "\(error)", "attempt": "\(attempt)", "retry.in": "\(delay)"]
                )
                sleepWhileDisconnected(until: deadline)
            }
        }
    }

    /// Waits out a backoff delay, still honouring close and cancel so a worker can stop while
    /// the broker is down. Publishes and other work stay queued for the next connection.
    func sleepWhileDisconnected(until deadline: ContinuousClock.Instant) {
        while running, ContinuousClock.now < deadline {
            if prepareToWait() {
                var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
                _ = poll(&fds, 1, milliseconds(until: deadline))
                finishWaiting(woken: fds[0].revents != 0)
            }
            var keep: [Command] = []
            for command in takeCommands() {
                switch command {
                case .close(let done):
                    closeCompletions.append(done)
                    running = false
                case .cancel(let tag, let done):
                    machine.consumerCancelled(tag: tag)
                    shareLiveConsumers()
                    consumers.removeValue(forKey: tag)?.continuation.finish()
                    done()
                case .settle:
                    break  // its delivery will come again on the next connection
                case .publish(_, let deadline?, let completion) where ContinuousClock.now >= deadline:
                    completion(.failure(AMQPError(.timeout, "not sent: its deadline passed while the broker was unreachable")))
                default:
                    keep.append(command)
                }
            }
            if !keep.isEmpty {
                inbox.withLock { $0.commands.insert(contentsOf: keep, at: 0) }
            }
        }
    }

    func takeCommands() -> [Command] {
        inbox.withLock { inbox in
            let commands = inbox.commands
            inbox.commands.removeAll(keepingCapacity: true)
            return commands
        }
    }

    func runCommands(_ commands: [Command]) {
        var acks: [UInt64] = []
        for (index, command) in commands.enumerated() {
            guard state != nil, running else {
                // The connection dropped mid-batch: hand the rest back for the next connection.
                let rest = Array(commands[index...])
                inbox.withLock { $0.commands.insert(contentsOf: rest, at: 0) }
                return
            }
            // Single acks are gathered and sent together (see UnsettledDeliveries); anything
            // else goes out in order after the acks queued before it.
            if case .settle(.ack(multiple: false), let tag, let generation) = command, generation == machine.generation {
                acks.append(tag)
                continue
            }
            sendAcks(&acks)
            run(command)
        }
        sendAcks(&acks)
    }

    func sendAcks(_ acks: inout [UInt64]) {
        guard !acks.isEmpty else { return }
        defer { acks.removeAll(keepingCapacity: true) }
        sendAckFrames(machine.acksRequested(acks, now: .now))
    }

    /// Sends the acks deferred long enough (``UnsettledDeliveries``).
    func sendDueAcks() {
        sendAckFrames(machine.dueAcks(now: .now))
    }

    /// Sends every deferred ack: before a consumer is cancelled or the channel closed.
    func sendDeferredAcks() {
        sendAckFrames(machine.deferredAcks())
    }

    /// Returns false when the connection failed sending them.
    @discardableResult
    func sendAckFrames(_ frames: [UnsettledDeliveries.AckFrame]) -> Bool {
        guard !frames.isEmpty else { return true }
        guard let state else { return false }
        for frame in frames {
            let status = amqp_basic_ack(state, Self.channel, frame.tag, frame.multiple ? 1 : 0)
            if status != AMQP_STATUS_OK.rawValue {
                connectionFailed(libraryError(status, context: "acknowledging deliveries"))
                return false
            }
        }
        return true
    }

    func run(_ command: Command) {
        switch command {
        case .publish(let message, let deadline, let completion):
            publish(message, deadline: deadline, completion: completion)
        case .perform(let body, _):
            body(SyncChannel(engine: self))
        case .settle(let settlement, let tag, let generation):
            settle(settlement, tag: tag, generation: generation)
        case .consume(let registration, let completion):
            do {
                try ensureChannel()
                try startConsumer(registration)
                consumers[registration.tag] = registration
                completion(.success(()))
            } catch {
                registration.continuation.finish()
                completion(.failure(error))
            }
        case .cancel(let tag, let done):
            cancelConsumer(tag: tag)
            done()
        case .close(let done):
            closeCompletions.append(done)
            running = false
        }
    }

    /// The broker closed the channel under our consumers (a delivery held past its
    /// `consumer_timeout`, a queue that moved...): consume again at once on a new channel, with
    /// the same tags, so the consumers' streams go on. Nothing else would reopen it on a
    /// connection that only consumes: acks of the dead channel are dropped, not sent. If
    /// consuming again fails (the queue is gone, an exclusive consumer elsewhere), or the channel
    /// was closed again right after the last restore, reconnect with backoff instead, which
    /// retries the consumers and says so at every attempt.
    func restoreConsumers() {
        let decision = machine.restoreDecision(now: .now)
        guard decision != .none else { return }
        let queues = Set(consumers.values.map(\.queue)).sorted().joined(separator: ",")
        if decision == .reconnect {
            logger.error(
                "the broker closed the channel again right after the consumers were restored; reconnecting with backoff",
                metadata: ["queues": "\(queues)"])
            connectionFailed(AMQPError(.closedByBroker, "the channel of the consumers on \(queues) keeps being closed"))
            return
        }
        do {
            try ensureChannel()
            machine.consumersRestored(now: .now)
            logger.notice("consuming again on a new channel", metadata: ["queues": "\(queues)"])
        } catch {
            logger.error(
                "cannot consume again after the broker closed the channel; reconnecting with backoff",
                metadata: ["queues": "\(queues)", "error": "\(error)"])
            connectionFailed(error)
        }
    }

    func waitForWork() {
        guard let state else { return }
        if amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 { return }
        let deliveriesOut = machine.deliveriesOut
        guard prepareToWait(acksCanWait: deliveriesOut) else { return }
        var fds = [
            pollfd(fd: amqp_get_sockfd(state), events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
        ]
        var timeout: Int32 = 1000
        if machine.heartbeat != nil, let nextHeartbeatSend = machine.nextHeartbeatSend {
            timeout = min(timeout, milliseconds(until: nextHeartbeatSend))
        }
        // Deferred acks (UnsettledDeliveries) wait behind a delivery still out, so this short
        // timeout also brings the thread back to send them when they are due.
        if deliveriesOut { timeout = min(timeout, Self.ackDelay) }
        _ = poll(&fds, 2, timeout)
        // librabbitmq swallows heartbeat frames, so bytes on the socket are our sign of life.
        if fds[0].revents != 0 { machine.received(now: .now) }
        finishWaiting(woken: fds[1].revents != 0)
    }

    /// False when commands arrived meanwhile: run them instead of sleeping.
    func prepareToWait(acksCanWait: Bool = false) -> Bool {
        inbox.withLock { inbox in
            guard inbox.commands.isEmpty else { return false }
            inbox.threadWaiting = true
            inbox.acksCanWait = acksCanWait
            inbox.queuedAcks = 0
            return true
        }
    }

    func finishWaiting(woken: Bool) {
        inbox.withLock { inbox in
            inbox.threadWaiting = false
            inbox.acksCanWait = false
        }
        if woken {
            var value: UInt64 = 0
            _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
        }
    }

    func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero { return 0 }
        return Int32(min(remaining.seconds * 1000 + 1, 60_000))
    }

    /// librabbitmq sends heartbeats only inside its own blocking waits, which this thread does
    /// not use (it polls), so the thread sends them itself and watches the broker's.
    func keepHeartbeatsAlive() {
        guard let state else { return }
        let now = ContinuousClock.now
        switch machine.tick(now: now) {
        case .none:
            return
        case .connectionDead(let silence):
            connectionFailed(AMQPError(.connectionLost, "no heartbeat from the broker at \(configuration.endpoint) for \(silence)"))
        case .sendHeartbeat:
            let status = whsync_send_heartbeat(state)
            if status != AMQP_STATUS_OK.rawValue {
                connectionFailed(libraryError(status, context: "sending a heartbeat"))
                return
            }
            machine.heartbeatSent(now: now)
        }
    }
}

extension timeval {
    init(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
