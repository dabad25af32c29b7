/// The decisions of one AMQP connection, apart from the librabbitmq calls that carry them out.
///
/// A pure value, as postgres-nio keeps its pool's state machine: no librabbitmq, no threads, no
/// clock (time comes in as an argument). The connection thread tells it what happened (a
/// connection attempt failed, the broker closed the channel, a confirm arrived, a settlement was
/// asked for, time passed) and carries out the action it returns.
///
/// What lives here: the channel and its generation, publishes waiting for their confirm,
/// deliveries out and not yet settled, the reconnect attempt count and backoff, the consumers'
/// tags and whether each is live, when they were last restored on a new channel, and the
/// heartbeat deadlines. What does not yet: the inbox of commands, the consumers' registrations
/// (queue, prefetch, stream), and the closing handshake, which `ConnectionEngine` still keeps
/// (docs/amqp-client.md, "The state machine").
///
/// `Publish` is what a caller waits on: the engine stores its completion, the tests an id.
struct ConnectionStateMachine<Publish> {
    typealias Completion = PendingConfirms<Publish>.Completion
    typealias Instant = ContinuousClock.Instant

    /// A channel the broker closes again this soon after the consumers were restored on it is not
    /// reopened at once: the connection reconnects with backoff instead, so a broker that keeps
    /// refusing cannot spin the thread.
    static var consumerRestoreInterval: Duration { .seconds(1) }

    /// Whether channel 1 is open on the current connection.
    private(set) var channelOpen = false
    /// Bumped whenever the channel opens or is lost: delivery tags and confirm sequence numbers
    /// restart, so settlements of older deliveries must not reach the new channel.
    private(set) var generation: UInt64 = 0
    private var pending = PendingConfirms<Publish>()
    private var unsettled = UnsettledDeliveries()
    /// The first connection attempt has not finished yet: it is never retried.
    private(set) var awaitingFirstConnection = true
    /// Failed reconnect attempts since the connection was last up.
    private(set) var reconnectAttempt = 0
    /// The consumers of this connection by tag, and whether the broker has each on an open
    /// channel right now (false from a channel close or a lost connection until consumed again).
    private(set) var consumers: [String: Bool] = [:]
    /// When the consumers were last restored on a new channel after the broker closed one.
    private var lastConsumerRestore: Instant?
    /// The negotiated heartbeat interval (nil: none).
    private(set) var heartbeat: Duration?
    private(set) var nextHeartbeatSend: Instant?
    private var lastReceive: Instant?

    init() {}

    var hasPendingConfirms: Bool { !pending.isEmpty }
    var pendingConfirmCount: Int { pending.count }
    /// Deliveries handed out on the current channel and not settled yet.
    var deliveriesOut: Bool { unsettled.count > 0 }
    /// The sequence number the next publish on this channel gets.
    var nextPublishSequence: UInt64 { pending.nextSequence }

    // MARK: Connecting

    enum ConnectFailedAction: Equatable {
        /// The first attempt failed: report it and stop (misconfiguration surfaces at start).
        case failFirstConnection
        /// No reconnect policy: stop.
        case stop
        /// Wait until `deadline` (still serving close and cancel), then try again.
        case scheduleReconnect(attempt: Int, delay: Duration, deadline: Instant)
    }

    /// The socket is open and the login done: heartbeats are counted from now.
    mutating func loggedIn(heartbeat: Duration?, now: Instant) {
        self.heartbeat = heartbeat
        lastReceive = now
        nextHeartbeatSend = now + (heartbeat ?? .seconds(3600)) / 2
    }

    enum ConnectedAction: Equatable {
        /// Resume the caller of `connect`.
        case succeedFirstConnection
        case reportReconnected
    }

    /// The connection, its channel and the `onConnect` hook are all up.
    mutating func connected() -> ConnectedAction {
        reconnectAttempt = 0
        if awaitingFirstConnection {
            awaitingFirstConnection = false
            return .succeedFirstConnection
        }
        return .reportReconnected
    }

    /// A connection attempt failed. `random` in 0...1 places the delay within its jitter.
    mutating func connectFailed(policy: ReconnectPolicy?, now: Instant, random: Double) -> ConnectFailedAction {
        if awaitingFirstConnection {
            awaitingFirstConnection = false
            return .failFirstConnection
        }
        guard let policy else { return .stop }
        reconnectAttempt += 1
        let delay = policy.delay(forAttempt: reconnectAttempt, random: random)
        return .scheduleReconnect(attempt: reconnectAttempt, delay: delay, deadline: now + delay)
    }

    // MARK: The channel

    /// Channel 1 opened: a new generation, with its own delivery tags and sequence numbers.
    /// Returns the new generation.
    mutating func channelOpened() -> UInt64 {
        channelOpen = true
        generation &+= 1
        pending = PendingConfirms()
        unsettled.reset()
        return generation
    }

    /// The broker closed the channel (channel.close): the publishes waiting on it fail with the
    /// broker's error. Its deliveries are stale from now on (the generation moved).
    mutating func channelClosed(by error: AMQPError) -> [Completion] {
        channelOpen = false
        generation &+= 1
        consumersDown()
        return pending.removeAll(failingWith: error)
    }

    enum RestoreAction: Equatable {
        case none
        /// Open a channel and consume again with the same tags.
        case reopenChannel
        /// The broker closed the channel again right after the last restore: reconnect with backoff.
        case reconnect
    }

    /// Once per loop: what to do about consumers left without a channel.
    func restoreDecision(now: Instant) -> RestoreAction {
        guard !channelOpen, !consumers.isEmpty else { return .none }
        if let lastConsumerRestore, lastConsumerRestore.duration(to: now) < Self.consumerRestoreInterval {
            return .reconnect
        }
        return .reopenChannel
    }

    /// The consumers are registered again on a new channel.
    mutating func consumersRestored(now: Instant) {
        lastConsumerRestore = now
    }

    // MARK: Consumers

    /// The tags of the consumers the broker has on an open channel right now.
    var liveConsumerTags: Set<String> { Set(consumers.filter(\.value).keys) }

    /// basic.consume-ok for `tag`: a new consumer, or one registered again on a new channel.
    mutating func consumerStarted(tag: String) {
        consumers[tag] = true
    }

    /// The consumer is cancelled (or the connection closed): it is not restored any more.
    mutating func consumerCancelled(tag: String) {
        consumers.removeValue(forKey: tag)
    }

    private mutating func consumersDown() {
        for tag in consumers.keys { consumers[tag] = false }
    }

    // MARK: Losing and closing the connection

    struct ConnectionLostAction {
        /// Publishes waiting for a confirm that will never come.
        var failed: [Completion]
        /// No reconnect policy, or the first connection is still being made: stop the thread.
        var stop: Bool
    }

    /// The connection dropped (socket error, missed heartbeats, connection.close, a channel that
    /// cannot be restored). Unconfirmed publishes fail with `.connectionLost`.
    mutating func connectionLost(_ error: AMQPError, canReconnect: Bool) -> ConnectionLostAction {
        let lost = error.code == .connectionLost ? error : AMQPError(.connectionLost, "\(error)", replyCode: error.replyCode)
        let failed = pending.removeAll(failingWith: lost)
        connectionGone()
        return ConnectionLostAction(failed: failed, stop: !canReconnect || awaitingFirstConnection)
    }

    /// The socket is gone (lost or closed by us): no channel, and every delivery tag is stale.
    mutating func connectionGone() {
        channelOpen = false
        generation &+= 1
        consumersDown()
        unsettled.reset()
    }

    /// The connection is closed for good: whatever still waits for a confirm fails with `error`.
    mutating func closed(_ error: AMQPError) -> [Completion] {
        pending.removeAll(failingWith: error)
    }

    // MARK: Publishing

    /// A publish asked for at `now`: nil to send it, or why it fails without being sent.
    func publishRequested(deadline: Instant?, now: Instant) -> AMQPError? {
        if let deadline, now >= deadline {
            return AMQPError(.timeout, "not sent: its deadline passed before the connection could send it")
        }
        return nil
    }

    /// The publish went out with sequence number `nextPublishSequence`. With confirms it waits
    /// for one; without, it is done (returned).
    mutating func published(_ publish: Publish, confirms: Bool) -> Completion? {
        if confirms {
            pending.append(publish)
            return nil
        }
        return Completion(publish: publish, error: nil)
    }

    /// basic.ack or basic.nack from the broker, for publish `tag` (and all before it, `multiple`).
    mutating func confirmReceived(tag: UInt64, multiple: Bool, nack: AMQPError?) -> [Completion] {
        pending.settle(tag: tag, multiple: multiple, nack: nack)
    }

    /// basic.return for the mandatory publish `sequence`: it fails with `error` when confirmed.
    mutating func publishReturned(sequence: UInt64, _ error: AMQPError) {
        pending.markReturned(sequence: sequence, error)
    }

    // MARK: Deliveries and settling

    /// basic.deliver on the current channel.
    mutating func deliveryArrived(tag: UInt64, consumer: String) {
        unsettled.delivered(tag, consumer: consumer)
    }

    /// Whether a settlement of channel generation `generation` may still reach the broker.
    func isCurrent(generation: UInt64) -> Bool {
        generation == self.generation && channelOpen
    }

    enum SettleAction: Equatable {
        /// The delivery came from a channel since closed: its tag names another delivery now.
        case drop
        /// Send `before` (deferred acks a `multiple` nack must not cover), the settlement, then
        /// `after` (the deferred acks it let the front pass).
        case send(Settlement, tag: UInt64, before: [UnsettledDeliveries.AckFrame] = [], after: UnsettledDeliveries.AckFrame? = nil)
    }

    /// A settlement the application asked for.
    mutating func settleRequested(_ settlement: Settlement, tag: UInt64, generation: UInt64) -> SettleAction {
        guard isCurrent(generation: generation) else { return .drop }
        switch settlement {
        case .ack(let multiple), .nack(_, let multiple):
            guard multiple else { return .send(settlement, tag: tag, after: unsettled.settledSingly(tag)) }
            // A multiple ack covers the deferred acks up to it; a multiple nack must not.
            let before = if case .nack = settlement { unsettled.takeDeferred(upTo: tag) } else { [UnsettledDeliveries.AckFrame]() }
            return .send(settlement, tag: tag, before: before, after: unsettled.settledUpTo(tag))
        case .reject:
            return .send(settlement, tag: tag, after: unsettled.settledSingly(tag))
        }
    }

    /// Single acks of the current channel gathered from one batch of commands, acked at `now`:
    /// the frames to send (a run at the front of what is out goes as one `multiple` ack; the rest
    /// wait for the front, see ``UnsettledDeliveries``). None without a channel.
    mutating func acksRequested(_ tags: [UInt64], now: Instant) -> [UnsettledDeliveries.AckFrame] {
        guard channelOpen, !tags.isEmpty else { return [] }
        return unsettled.ackFrames(for: tags, now: now)
    }

    /// Deferred acks that have waited long enough, to send now (each alone).
    mutating func dueAcks(now: Instant) -> [UnsettledDeliveries.AckFrame] {
        guard channelOpen else { return [] }
        return unsettled.dueFrames(now: now)
    }

    /// Every deferred ack, to send before a consumer is cancelled or the channel closed.
    mutating func deferredAcks() -> [UnsettledDeliveries.AckFrame] {
        guard channelOpen else { return [] }
        return unsettled.takeDeferred()
    }

    // MARK: Heartbeats

    enum TickAction: Equatable {
        case none
        case sendHeartbeat
        /// Nothing came from the broker for two heartbeat intervals.
        case connectionDead(silentFor: Duration)
    }

    /// Bytes arrived from the broker.
    mutating func received(now: Instant) {
        lastReceive = now
    }

    /// Time passed: send a heartbeat, or declare the broker gone.
    func tick(now: Instant) -> TickAction {
        guard let heartbeat, let lastReceive, let nextHeartbeatSend else { return .none }
        if lastReceive.duration(to: now) > heartbeat * 2 { return .connectionDead(silentFor: heartbeat * 2) }
        if now >= nextHeartbeatSend { return .sendHeartbeat }
        return .none
    }

    mutating func heartbeatSent(now: Instant) {
        guard let heartbeat else { return }
        nextHeartbeatSend = now + heartbeat / 2
    }
}

extension ConnectionStateMachine.ConnectionLostAction: Equatable where Publish: Equatable {}
extension ConnectionStateMachine.ConnectionLostAction: Sendable where Publish: Sendable {}
