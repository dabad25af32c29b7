import CRabbitMQ
import Foundation
import ThreadNaming
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a consumer settles a delivery.
enum Settlement: Sendable {
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
    private let inbox = Mutex(Inbox())
    private let wakeFD: Int32
    /// The tags of the consumers the broker has on a live channel right now (written by the
    /// connection thread, read by readiness probes through `isConsuming(tag:)`).
    private let liveConsumers = Mutex<Set<String>>([])

    // MARK: Connection-thread state
    private var state: amqp_connection_state_t?
    /// For `SyncChannel`, which runs on this thread.
    var currentState: amqp_connection_state_t? { state }
    private var channelOpen = false
    /// Bumped whenever the channel (re)opens: delivery tags and confirm sequence numbers
    /// restart, so settlements of older deliveries must not reach the new channel.
    private(set) var generation: UInt64 = 0
    private var pending = PendingConfirms()
    private var consumers: [String: ConsumerRegistration] = [:]
    private var deliveryBatches: [String: [AMQPDelivery]] = [:]
    private var unsettled = UnsettledDeliveries()
    private var running = true
    private var closeCompletions: [@Sendable () -> Void] = []
    private var heartbeat: Duration?
    private var nextHeartbeatSend = ContinuousClock.now
    private var lastReceive = ContinuousClock.now
    private var initialConnect: (@Sendable (Result<Void, AMQPError>) -> Void)?
    private var reconnectAttempt = 0
    /// When the consumers were last restored on a new channel after the broker closed one.
    private var lastConsumerRestore: ContinuousClock.Instant?
    /// A channel the broker closes again this soon after the consumers were restored on it is not
    /// reopened at once: the connection reconnects with backoff instead, so a broker that keeps
    /// refusing cannot spin the thread.
    static let consumerRestoreInterval: Duration = .seconds(1)

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

    private func wakeUp() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(wakeFD, $0.baseAddress, 8) }
    }

    // MARK: - The thread

    private func run() {
        while running {
            if state == nil {
                establishConnection()
                continue
            }
            runCommands(takeCommands())
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

    private func establishConnection() {
        do {
            try openConnection()
            reconnectAttempt = 0
            blocked.store(false, ordering: .releasing)
            connected.store(true, ordering: .releasing)
            if let initialConnect {
                self.initialConnect = nil
                initialConnect(.success(()))
            } else {
                logger.info("reconnected to the broker")
            }
        } catch {
            if let initialConnect {
                self.initialConnect = nil
                running = false
                initialConnect(.failure(error))
                return
            }
            guard let policy = options.reconnect else {
                running = false
                return
            }
            reconnectAttempt += 1
            let delay = policy.delay(forAttempt: reconnectAttempt)
            logger.warning(
                "cannot reconnect to the broker; retrying",
                metadata: ["error": "\(error)", "attempt": "\(reconnectAttempt)", "retry.in": "\(delay)"]
            )
            sleepWhileDisconnected(for: delay)
        }
    }

    /// Waits out a backoff delay, still honouring close and cancel so a worker can stop while
    /// the broker is down. Publishes and other work stay queued for the next connection.
    private func sleepWhileDisconnected(for delay: Duration) {
        let deadline = ContinuousClock.now + delay
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
                    liveConsumers.withLock { _ = $0.remove(tag) }
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

    private func takeCommands() -> [Command] {
        inbox.withLock { inbox in
            let commands = inbox.commands
            inbox.commands.removeAll(keepingCapacity: true)
            return commands
        }
    }

    private func runCommands(_ commands: [Command]) {
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
            if case .settle(.ack(multiple: false), let tag, let generation) = command, generation == self.generation {
                acks.append(tag)
                continue
            }
            sendAcks(&acks)
            run(command)
        }
        sendAcks(&acks)
    }

    private func sendAcks(_ acks: inout [UInt64]) {
        guard !acks.isEmpty else { return }
        defer { acks.removeAll(keepingCapacity: true) }
        guard let state, channelOpen else { return }
        for frame in unsettled.ackFrames(for: acks) {
            let status = amqp_basic_ack(state, Self.channel, frame.tag, frame.multiple ? 1 : 0)
            if status != AMQP_STATUS_OK.rawValue {
                connectionFailed(libraryError(status, context: "acknowledging deliveries"))
                return
            }
        }
    }

    private func run(_ command: Command) {
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
    private func restoreConsumers() {
        guard !channelOpen, !consumers.isEmpty else { return }
        let queues = Set(consumers.values.map(\.queue)).sorted().joined(separator: ",")
        if let lastConsumerRestore, lastConsumerRestore.duration(to: .now) < Self.consumerRestoreInterval {
            logger.error(
                "the broker closed the channel again right after the consumers were restored; reconnecting with backoff",
                metadata: ["queues": "\(queues)"])
            connectionFailed(AMQPError(.closedByBroker, "the channel of the consumers on \(queues) keeps being closed"))
            return
        }
        do {
            try ensureChannel()
            lastConsumerRestore = .now
            logger.notice("consuming again on a new channel", metadata: ["queues": "\(queues)"])
        } catch {
            logger.error(
                "cannot consume again after the broker closed the channel; reconnecting with backoff",
                metadata: ["queues": "\(queues)", "error": "\(error)"])
            connectionFailed(error)
        }
    }

    private func waitForWork() {
        guard let state else { return }
        if amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0 { return }
        let deliveriesOut = unsettled.count > 0
        guard prepareToWait(acksCanWait: deliveriesOut) else { return }
        var fds = [
            pollfd(fd: amqp_get_sockfd(state), events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
        ]
        var timeout = heartbeat == nil ? 1000 : min(1000, milliseconds(until: nextHeartbeatSend))
        if deliveriesOut { timeout = min(timeout, Self.ackDelay) }
        _ = poll(&fds, 2, timeout)
        // librabbitmq swallows heartbeat frames, so bytes on the socket are our sign of life.
        if fds[0].revents != 0 { lastReceive = .now }
        finishWaiting(woken: fds[1].revents != 0)
    }

    /// False when commands arrived meanwhile: run them instead of sleeping.
    private func prepareToWait(acksCanWait: Bool = false) -> Bool {
        inbox.withLock { inbox in
            guard inbox.commands.isEmpty else { return false }
            inbox.threadWaiting = true
            inbox.acksCanWait = acksCanWait
            inbox.queuedAcks = 0
            return true
        }
    }

    private func finishWaiting(woken: Bool) {
        inbox.withLock { inbox in
            inbox.threadWaiting = false
            inbox.acksCanWait = false
        }
        if woken {
            var value: UInt64 = 0
            _ = withUnsafeMutableBytes(of: &value) { read(wakeFD, $0.baseAddress, 8) }
        }
    }

    private func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero { return 0 }
        return Int32(min(remaining.seconds * 1000 + 1, 60_000))
    }

    /// librabbitmq sends heartbeats only inside its own blocking waits, which this thread does
    /// not use (it polls), so the thread sends them itself and watches the broker's.
    private func keepHeartbeatsAlive() {
        guard let state, let heartbeat else { return }
        let now = ContinuousClock.now
        if lastReceive.duration(to: now) > heartbeat * 2 {
            connectionFailed(AMQPError(.connectionLost, "no heartbeat from the broker at \(configuration.endpoint) for \(heartbeat * 2)"))
            return
        }
        if now >= nextHeartbeatSend {
            let status = whsync_send_heartbeat(state)
            if status != AMQP_STATUS_OK.rawValue {
                connectionFailed(libraryError(status, context: "sending a heartbeat"))
                return
            }
            nextHeartbeatSend = now + heartbeat / 2
        }
    }

    // MARK: - Connecting

    private func openConnection() throws(AMQPError) {
        guard let conn = amqp_new_connection() else {
            throw AMQPError(.protocolError, "librabbitmq could not allocate a connection")
        }
        var adopted = false
        do throws(AMQPError) {
            try openSocket(conn)
            try login(conn)
            state = conn
            adopted = true
            let negotiated = Int(amqp_get_heartbeat(conn))
            heartbeat = negotiated > 0 ? .seconds(negotiated) : nil
            lastReceive = .now
            nextHeartbeatSend = .now + (heartbeat ?? .seconds(3600)) / 2
            try ensureChannel()
            if let onConnect = options.onConnect {
                do {
                    try onConnect(SyncChannel(engine: self))
                } catch let error as AMQPError {
                    throw error
                } catch {
                    throw AMQPError(.protocolError, "setting up the connection: \(error)")
                }
            }
        } catch {
            if adopted {
                teardownConnection(graceful: false)  // a no-op when connectionFailed already did it
            } else {
                amqp_destroy_connection(conn)
            }
            throw error
        }
    }

    private func openSocket(_ conn: amqp_connection_state_t) throws(AMQPError) {
        let endpoint = configuration.endpoint
        let socket: OpaquePointer?
        if let tls = configuration.tls {
            socket = amqp_ssl_socket_new(conn)
            guard let socket else { throw AMQPError(.tlsFailed, "librabbitmq could not create a TLS socket") }
            if let ca = tls.caFile {
                let status = amqp_ssl_socket_set_cacert(socket, ca)
                guard status == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(.invalidConfiguration, "cannot load the CA file \(ca): \(statusText(status))")
                }
            }
            if let cert = tls.certificateFile, let key = tls.keyFile {
                let status = amqp_ssl_socket_set_key(socket, cert, key)
                guard status == AMQP_STATUS_OK.rawValue else {
                    throw AMQPError(.invalidConfiguration, "cannot load the client certificate \(cert) and key \(key): \(statusText(status))")
                }
            }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyPeer ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(conn)
        }
        guard let socket else { throw AMQPError(.protocolError, "librabbitmq could not create a socket") }

        var timeout = timeval(duration: configuration.connectionTimeout)
        errno = 0
        let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &timeout)
        let osError = errno
        guard status == AMQP_STATUS_OK.rawValue else {
            switch status {
            case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
                throw AMQPError(
                    .tlsFailed,
                    "TLS handshake with \(endpoint) failed: the broker's certificate is not signed by a trusted CA"
                        + (configuration.tls?.caFile.map { " (cacertfile=\($0))" } ?? " (system trust store)")
                )
            case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
                // librabbitmq matches the host against the certificate's DNS names only.
                let hint = configuration.host.contains(where: { $0.isLetter }) ? "" : " (an IP address never matches: connect by a DNS name the certificate carries)"
                throw AMQPError(.tlsFailed, "TLS handshake with \(endpoint) failed: the broker's certificate does not name host '\(configuration.host)'\(hint)")
            case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
                throw AMQPError(.tlsFailed, "TLS handshake with \(endpoint) failed: \(statusText(status)) (is it a TLS port?)")
            case AMQP_STATUS_TIMEOUT.rawValue:
                throw AMQPError(.timeout, "connecting to \(endpoint) timed out after \(configuration.connectionTimeout)")
            case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
                throw AMQPError(.connectionRefused, "cannot resolve host '\(configuration.host)'")
            default:
                // librabbitmq connects non-blocking, so errno holds EINPROGRESS, not the cause.
                let reason =
                    osError != 0 && osError != EINPROGRESS
                    ? String(cString: strerror(osError)).lowercased() : "connection refused or host unreachable"
                throw AMQPError(.connectionRefused, "cannot connect to \(endpoint): \(reason)")
            }
        }
        var rpcTimeout = timeval(tv_sec: 60, tv_usec: 0)
        amqp_set_rpc_timeout(conn, &rpcTimeout)
        amqp_set_handshake_timeout(conn, &timeout)
    }

    private func login(_ conn: amqp_connection_state_t) throws(AMQPError) {
        let arena = CArena()
        // librabbitmq merges these capabilities with its own; without `connection.blocked` the
        // broker never says that a resource alarm blocks our publishes, and without
        // `consumer_cancel_notify` it drops a consumer whose queue is deleted without a word
        // (basic.cancel), so the consumer would never come back.
        var properties: AMQPTable = [
            "product": "WarehouseSync",
            "capabilities": .table(["connection.blocked": .bool(true), "consumer_cancel_notify": .bool(true)]),
        ]
        if let name = configuration.connectionName { properties["connection_name"] = .string(name) }
        var table = arena.table(properties)
        let reply = whsync_login(
            conn, configuration.virtualHost, Int32(configuration.channelMax), Int32(configuration.frameMax),
            Int32(configuration.heartbeatSeconds), &table, configuration.username, configuration.password)
        let context = "login to \(configuration.endpoint) as '\(configuration.username)' on vhost '\(configuration.virtualHost)'"
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == WHSYNC_CONNECTION_CLOSE:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            throw AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: context)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_CONNECTION_CLOSED.rawValue:
            throw AMQPError(.accessRefused, "\(context): the broker closed the connection during login (wrong credentials or vhost?)")
        default:
            throw replyError(reply, context: context)
        }
    }

    /// Opens channel 1 if a broker error closed it, and restores confirm mode and consumers.
    func ensureChannel() throws(AMQPError) {
        guard !channelOpen else { return }
        guard let state else { throw AMQPError(.connectionLost, "not connected to \(configuration.endpoint)") }
        amqp_channel_open(state, Self.channel)
        try checkReply("opening a channel")
        channelOpen = true
        nextGeneration()
        pending = PendingConfirms()
        unsettled.reset()
        if options.publisherConfirms {
            amqp_confirm_select(state, Self.channel)
            try checkReply("enabling publisher confirms")
        }
        for registration in consumers.values {
            try startConsumer(registration)
        }
    }

    private func startConsumer(_ registration: ConsumerRegistration) throws(AMQPError) {
        guard let state else { throw AMQPError(.connectionLost, "not connected") }
        amqp_basic_qos(state, Self.channel, 0, registration.prefetch, 0)
        try checkReply("setting prefetch \(registration.prefetch)")
        let arena = CArena()
        amqp_basic_consume(
            state, Self.channel, arena.bytes(registration.queue), arena.bytes(registration.tag), 0, 0,
            registration.exclusive ? 1 : 0, arena.table(registration.arguments))
        try checkReply("consuming from queue '\(registration.queue)'")
        liveConsumers.withLock { _ = $0.insert(registration.tag) }
    }

    private func cancelConsumer(tag: String) {
        flushDeliveries()  // what already arrived is the consumer's to settle
        liveConsumers.withLock { _ = $0.remove(tag) }
        guard let registration = consumers.removeValue(forKey: tag) else { return }
        defer { registration.continuation.finish() }
        guard let state, channelOpen else { return }
        // Waiting for cancel-ok matters on quorum queues: it guarantees the broker has taken
        // every ack sent before it, so closing the channel afterwards loses none of them.
        let arena = CArena()
        amqp_basic_cancel(state, Self.channel, arena.bytes(tag))
        do {
            try checkReply("cancelling consumer on '\(registration.queue)'")
        } catch {
            logger.warning("consumer cancel failed", metadata: ["error": "\(error)"])
        }
    }

    // MARK: - Publishing and settling

    private func publish(_ message: OutboundMessage, deadline: ContinuousClock.Instant?, completion: @escaping PublishCompletion) {
        if let deadline, ContinuousClock.now >= deadline {
            completion(.failure(AMQPError(.timeout, "not sent: its deadline passed before the connection could send it")))
            return
        }
        do {
            try ensureChannel()
        } catch {
            completion(.failure(error))
            return
        }
        guard let state else { return }
        let confirms = options.publisherConfirms
        let sequence = pending.nextSequence
        let arena = CArena()
        var extra: AMQPTable = [:]
        if confirms && message.mandatory { extra[Self.publishSequenceHeader] = .int(Int64(sequence)) }
        var properties = message.properties.cProperties(in: arena, extraHeaders: extra)
        let status = message.body.withUnsafeBytes { body in
            amqp_basic_publish(
                state, Self.channel, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                message.mandatory ? 1 : 0, 0, &properties,
                amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            let error = libraryError(status, context: "publishing to '\(message.exchange)'")
            completion(.failure(error))
            connectionFailed(error)
            return
        }
        if confirms {
            pending.append(completion)
        } else {
            completion(.success(()))
        }
    }

    private func settle(_ settlement: Settlement, tag: UInt64, generation: UInt64) {
        guard generation == self.generation, channelOpen, let state else {
            logger.debug("settlement for a delivery of an earlier channel dropped; it will be redelivered")
            return
        }
        let status: Int32
        switch settlement {
        case .ack(let multiple):
            status = amqp_basic_ack(state, Self.channel, tag, multiple ? 1 : 0)
            if multiple { unsettled.settledUpTo(tag) } else { unsettled.settledSingly(tag) }
        case .nack(let requeue, let multiple):
            status = amqp_basic_nack(state, Self.channel, tag, multiple ? 1 : 0, requeue ? 1 : 0)
            if multiple { unsettled.settledUpTo(tag) } else { unsettled.settledSingly(tag) }
        case .reject(let requeue):
            status = amqp_basic_reject(state, Self.channel, tag, requeue ? 1 : 0)
            unsettled.settledSingly(tag)
        }
        if status != AMQP_STATUS_OK.rawValue {
            connectionFailed(libraryError(status, context: "settling a delivery"))
        }
    }

    // MARK: - Reading

    private func readAvailableFrames() {
        defer { flushDeliveries() }
        for _ in 0..<1024 {
            guard let state else { return }
            var frame = amqp_frame_t()
            var immediately = timeval(tv_sec: 0, tv_usec: 0)
            let status = amqp_simple_wait_frame_noblock(state, &frame, &immediately)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                connectionFailed(libraryError(status, context: "reading from the broker"))
                return
            }
            lastReceive = .now
            handle(frame)
            if let state = self.state { amqp_maybe_release_buffers(state) }
        }
    }

    private func handle(_ frame: amqp_frame_t) {
        guard frame.frame_type == AMQP_FRAME_METHOD else {
            if frame.frame_type != AMQP_FRAME_HEARTBEAT {
                connectionFailed(AMQPError(.protocolError, "unexpected frame type \(frame.frame_type) from the broker"))
            }
            return
        }
        let method = frame.payload.method
        switch method.id {
        case WHSYNC_BASIC_DELIVER:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = String(amqpBytes: deliver.consumer_tag)
            let exchange = String(amqpBytes: deliver.exchange)
            let routingKey = String(amqpBytes: deliver.routing_key)
            guard let content = readContent(channel: frame.channel, context: "reading a delivery") else { return }
            var (properties, body) = (content.0, content.1)
            // Our own publisher's bookkeeping (see publishSequenceHeader), not the sender's data.
            properties.headers.removeValue(forKey: Self.publishSequenceHeader)
            let delivery = AMQPDelivery(
                body: body, properties: properties, exchange: exchange, routingKey: routingKey,
                redelivered: deliver.redelivered != 0, deliveryTag: deliver.delivery_tag, consumerTag: tag,
                channelGeneration: generation, engine: self)
            unsettled.delivered(deliver.delivery_tag)
            if consumers[tag] != nil {
                deliveryBatches[tag, default: []].append(delivery)
            } else {
                // Sent before our cancel reached the broker: hand it back at once.
                settle(.reject(requeue: true), tag: deliver.delivery_tag, generation: generation)
            }
        case WHSYNC_BASIC_ACK:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            pending.settle(tag: ack.delivery_tag, multiple: ack.multiple != 0, nack: nil)
        case WHSYNC_BASIC_NACK:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            pending.settle(
                tag: nack.delivery_tag, multiple: nack.multiple != 0,
                nack: AMQPError(.nacked, "the broker refused the message (basic.nack): the queue may be full (x-overflow=reject-publish) or unavailable"))
        case WHSYNC_BASIC_RETURN:
            let returned = method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let reason = "\(String(amqpBytes: returned.reply_text)) (reply code \(returned.reply_code))"
            let exchange = String(amqpBytes: returned.exchange)
            let routingKey = String(amqpBytes: returned.routing_key)
            guard let (properties, _) = readContent(channel: frame.channel, context: "reading a returned message") else { return }
            if let sequence = properties.headers[Self.publishSequenceHeader]?.intValue {
                pending.markReturned(
                    sequence: UInt64(sequence),
                    AMQPError(.unroutable, "no queue is bound to exchange '\(exchange)' for routing key '\(routingKey)': \(reason)", replyCode: returned.reply_code))
            } else {
                logger.warning("broker returned a message", metadata: ["exchange": "\(exchange)", "routingKey": "\(routingKey)", "reason": "\(reason)"])
            }
        case WHSYNC_BASIC_CANCEL:
            // The broker cancelled a consumer (its queue was deleted, or it moved). Reconnect with
            // backoff, which consumes again and says so loudly if the queue is really gone.
            connectionFailed(AMQPError(.closedByBroker, "the broker cancelled a consumer"))
        case WHSYNC_CHANNEL_CLOSE:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: "channel closed by the broker")
            acknowledgeChannelClose()
            channelFailed(error, reportedToCaller: false)
        case WHSYNC_CONNECTION_CLOSE:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: "connection closed by the broker")
            acknowledgeConnectionClose()
            connectionFailed(error)
        case WHSYNC_CONNECTION_BLOCKED:
            blocked.store(true, ordering: .releasing)
            logger.warning("the broker blocked publishing on this connection (memory or disk alarm)")
        case WHSYNC_CONNECTION_UNBLOCKED:
            blocked.store(false, ordering: .releasing)
            logger.info("the broker unblocked this connection")
        case WHSYNC_BASIC_CANCEL_OK:
            break  // consumed by amqp_basic_cancel's own wait
        default:
            logger.debug("ignored method frame", metadata: ["method": "\(method.id)"])
        }
    }

    private func flushDeliveries() {
        guard !deliveryBatches.isEmpty else { return }
        for (tag, batch) in deliveryBatches {
            consumers[tag]?.continuation.yield(batch)
        }
        deliveryBatches.removeAll(keepingCapacity: true)
    }

    /// Reads the header and body frames that follow basic.deliver or basic.return.
    private func readContent(channel: amqp_channel_t, context: String) -> (AMQPProperties, [UInt8])? {
        guard let state else { return nil }
        var message = amqp_message_t()
        let reply = amqp_read_message(state, channel, &message, 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            connectionFailed(replyError(reply, context: context))
            return nil
        }
        defer { amqp_destroy_message(&message) }
        return (AMQPProperties(message.properties), [UInt8](amqpBytes: message.body))
    }

    // MARK: - Failures

    /// Checks the reply of the last synchronous librabbitmq call. A channel error closes only
    /// the channel (reopened lazily before the next operation); anything else drops the connection.
    func checkReply(_ context: String) throws(AMQPError) {
        guard let state else { throw AMQPError(.connectionLost, "\(context): not connected") }
        let reply = amqp_get_rpc_reply(state)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == WHSYNC_CHANNEL_CLOSE:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: context)
            acknowledgeChannelClose()
            channelFailed(error, reportedToCaller: true)
            throw error
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == WHSYNC_CONNECTION_CLOSE:
            let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            let error = AMQPError.fromBroker(replyCode: close.reply_code, replyText: String(amqpBytes: close.reply_text), context: context)
            acknowledgeConnectionClose()
            connectionFailed(error)
            throw error
        default:
            let error = replyError(reply, context: context)
            connectionFailed(error)
            throw error
        }
    }

    private func acknowledgeChannelClose() {
        guard let state else { return }
        var ok = amqp_channel_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, Self.channel, WHSYNC_CHANNEL_CLOSE_OK, &ok)
    }

    private func acknowledgeConnectionClose() {
        guard let state else { return }
        var ok = amqp_connection_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, 0, WHSYNC_CONNECTION_CLOSE_OK, &ok)
    }

    /// The channel is reopened lazily by the next operation. A failure the caller sees as a
    /// thrown error (a passive declare of a missing queue) is routine and logged at debug.
    private func channelFailed(_ error: AMQPError, reportedToCaller: Bool) {
        channelOpen = false
        nextGeneration()
        liveConsumers.withLock { $0.removeAll() }
        for completion in pending.removeAll() { completion(.failure(error)) }
        // Not handed out yet, and the broker requeues them: their acks could not reach it.
        deliveryBatches.removeAll()
        logger.log(
            level: reportedToCaller ? .debug : .warning, "channel closed by the broker; reopening",
            metadata: ["error": "\(error)"])
    }

    private func connectionFailed(_ error: AMQPError) {
        guard state != nil else { return }
        connected.store(false, ordering: .releasing)
        let lost = error.code == .connectionLost ? error : AMQPError(.connectionLost, "\(error)", replyCode: error.replyCode)
        for completion in pending.removeAll() { completion(.failure(lost)) }
        teardownConnection(graceful: false)
        if options.reconnect == nil || initialConnect != nil {
            running = false
        }
        if initialConnect == nil {
            logger.warning("lost the connection to the broker", metadata: ["error": "\(error)"])
        }
    }

    /// The channel is gone or new: its delivery tags and confirm sequence numbers restart.
    private func nextGeneration() {
        generation &+= 1
        currentGeneration.store(generation, ordering: .releasing)
    }

    private func teardownConnection(graceful: Bool) {
        guard let conn = state else { return }
        if graceful {
            if channelOpen { _ = amqp_channel_close(conn, Self.channel, AMQP_REPLY_SUCCESS) }
            _ = amqp_connection_close(conn, AMQP_REPLY_SUCCESS)
        }
        amqp_destroy_connection(conn)
        state = nil
        channelOpen = false
        liveConsumers.withLock { $0.removeAll() }
        nextGeneration()
        // Not handed out yet, and the broker will redeliver them: drop rather than hand out
        // deliveries whose acks could no longer reach it.
        deliveryBatches.removeAll()
        unsettled.reset()
    }

    private func statusText(_ status: Int32) -> String {
        String(cString: amqp_error_string2(status))
    }

    private func libraryError(_ status: Int32, context: String) -> AMQPError {
        let code: AMQPError.Code = status == AMQP_STATUS_TIMEOUT.rawValue ? .timeout : .connectionLost
        return AMQPError(code, "\(context): \(statusText(status))")
    }

    private func replyError(_ reply: amqp_rpc_reply_t, context: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return libraryError(reply.library_error, context: context)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            return AMQPError(.protocolError, "\(context): unexpected method \(reply.reply.id) from the broker")
        default:
            return AMQPError(.protocolError, "\(context): no reply")
        }
    }

    // MARK: - Stopping

    /// How long each reply of the closing handshake (cancel-ok, close-ok) is waited for while the
    /// broker blocks the connection.
    static let closingReplyTimeout: Duration = .seconds(2)

    /// A graceful end: waits (bounded) for outstanding confirms, cancels consumers and waits for
    /// cancel-ok, then closes channel and connection, and fails whatever is still queued.
    private func shutDown() {
        if state != nil {
            let deadline = ContinuousClock.now + .seconds(5)
            while state != nil, !pending.isEmpty, ContinuousClock.now < deadline {
                readAvailableFrames()
                if let state, amqp_frames_enqueued(state) == 0, amqp_data_in_buffer(state) == 0 {
                    var fds = [pollfd(fd: amqp_get_sockfd(state), events: Int16(POLLIN), revents: 0)]
                    _ = poll(&fds, 1, milliseconds(until: deadline))
                }
            }
            // A broker under a resource alarm stops reading from the connections it blocked, so
            // it sends none of the closing handshake's replies: bound each wait then. Otherwise
            // keep the usual timeout: a cancel-ok that comes late under load still proves the
            // acks before it arrived.
            if let state, blocked.load(ordering: .acquiring) {
                var closingTimeout = timeval(duration: Self.closingReplyTimeout)
                amqp_set_rpc_timeout(state, &closingTimeout)
            }
            for tag in Array(consumers.keys) { cancelConsumer(tag: tag) }
            teardownConnection(graceful: true)
        }
        connected.store(false, ordering: .releasing)
        let closed = AMQPError(.closed, "the connection to \(configuration.endpoint) is closed")
        for completion in pending.removeAll() { completion(.failure(closed)) }
        flushDeliveries()
        for registration in consumers.values { registration.continuation.finish() }
        consumers.removeAll()
        let leftovers = inbox.withLock { inbox in
            inbox.terminated = true
            let commands = inbox.commands
            inbox.commands.removeAll()
            return commands
        }
        for command in leftovers { command.fail(closed) }
        for done in closeCompletions { done() }
        closeCompletions.removeAll()
    }
}

extension timeval {
    init(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}

/// Publishes waiting for their broker confirm, by sequence number (1, 2, 3... per channel).
struct PendingConfirms {
    private struct Entry {
        let completion: PublishCompletion
        var returned: AMQPError?
    }

    private var entries: [Entry?] = []
    private var head = 0
    /// The sequence number of `entries[head]`.
    private var base: UInt64 = 1

    var nextSequence: UInt64 { base + UInt64(entries.count - head) }
    var isEmpty: Bool { head == entries.count }

    mutating func append(_ completion: @escaping PublishCompletion) {
        entries.append(Entry(completion: completion))
    }

    mutating func markReturned(sequence: UInt64, _ error: AMQPError) {
        guard let index = index(of: sequence), entries[index] != nil else { return }
        entries[index]!.returned = error
    }

    /// Completes the publish `tag` (and, with `multiple`, every earlier one still waiting).
    mutating func settle(tag: UInt64, multiple: Bool, nack: AMQPError?) {
        guard let last = index(of: tag) else { return }
        let first = multiple ? head : last
        for index in first...last {
            guard let entry = entries[index] else { continue }
            entries[index] = nil
            if let failure = nack ?? entry.returned {
                entry.completion(.failure(failure))
            } else {
                entry.completion(.success(()))
            }
        }
        while head < entries.count, entries[head] == nil {
            head += 1
            base += 1
        }
        if head > 4096, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// Takes every waiting completion (the channel is gone); sequence numbers restart at 1.
    mutating func removeAll() -> [PublishCompletion] {
        let completions = entries[head...].compactMap { $0?.completion }
        self = PendingConfirms()
        return completions
    }

    private func index(of sequence: UInt64) -> Int? {
        guard sequence >= base else { return nil }
        let index = head + Int(sequence - base)
        return index < entries.count ? index : nil
    }
}
