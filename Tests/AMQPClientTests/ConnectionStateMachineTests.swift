@testable import AMQPClient
import Testing

/// The connection's decisions, driven by events and checked on the actions they return (as
/// postgres-nio tests its pool's state machine): no broker, no thread, no clock.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine<Int>
    typealias Completion = Machine.Completion
    typealias Frame = UnsettledDeliveries.AckFrame

    let t0 = ContinuousClock.now
    let policy = ReconnectPolicy(initialDelay: .milliseconds(200), maximumDelay: .seconds(15), multiplier: 2)
    let brokerClose = AMQPError(.preconditionFailed, "channel closed by the broker: PRECONDITION_FAILED - delivery acknowledgement timed out (reply code 406)", replyCode: 406)

    /// Connected, with channel 1 open.
    func connectedMachine() -> Machine {
        var machine = Machine()
        machine.loggedIn(heartbeat: nil, now: t0)
        _ = machine.channelOpened()
        #expect(machine.connected() == .succeedFirstConnection)
        return machine
    }

    func publish(_ ids: ClosedRange<Int>, on machine: inout Machine) {
        for id in ids {
            #expect(machine.nextPublishSequence == UInt64(id))
            #expect(machine.published(id, confirms: true) == nil)
        }
    }

    func confirmed(_ ids: Int...) -> [Completion] { ids.map { Completion(publish: $0, error: nil) } }
    func failed(_ ids: [Int], _ error: AMQPError) -> [Completion] { ids.map { Completion(publish: $0, error: error) } }

    // MARK: Connecting and reconnecting

    @Test func theFirstConnectionIsNeverRetried() {
        var machine = Machine()
        #expect(machine.connectFailed(policy: policy, now: t0, random: 0.5) == .failFirstConnection)
    }

    @Test func losingTheFirstConnectionWhileSettingUpStops() {
        var machine = Machine()
        _ = machine.channelOpened()
        // onConnect failed on a dropped connection, before connect() returned.
        let lost = machine.connectionLost(AMQPError(.connectionLost, "socket closed"), canReconnect: true)
        #expect(lost.stop)
    }

    @Test func reconnectBackoffDoublesToItsCapAndRestartsAfterAConnection() {
        var machine = connectedMachine()
        let lost = machine.connectionLost(AMQPError(.connectionLost, "socket closed"), canReconnect: true)
        #expect(lost == .init(failed: [], stop: false))
        machine.connectionGone()
        // random 1: each delay is its full ceiling; 0: half of it.
        let ceilings: [Duration] = [.milliseconds(200), .milliseconds(400), .milliseconds(800), .milliseconds(1600), .milliseconds(3200), .milliseconds(6400), .milliseconds(12800), .seconds(15), .seconds(15)]
        var now = t0
        for (index, ceiling) in ceilings.enumerated() {
            let action = machine.connectFailed(policy: policy, now: now, random: 1)
            #expect(action == .scheduleReconnect(attempt: index + 1, delay: ceiling, deadline: now + ceiling))
            now = now + ceiling
        }
        #expect(machine.connectFailed(policy: policy, now: now, random: 0) == .scheduleReconnect(attempt: 10, delay: .milliseconds(7500), deadline: now + .milliseconds(7500)))
        _ = machine.channelOpened()
        #expect(machine.connected() == .reportReconnected)
        _ = machine.connectionLost(AMQPError(.connectionLost, "socket closed"), canReconnect: true)
        machine.connectionGone()
        #expect(machine.connectFailed(policy: policy, now: now, random: 1) == .scheduleReconnect(attempt: 1, delay: .milliseconds(200), deadline: now + .milliseconds(200)))
    }

    @Test func withoutAPolicyALostConnectionStops() {
        var machine = connectedMachine()
        #expect(machine.connectionLost(AMQPError(.connectionLost, "socket closed"), canReconnect: false).stop)
        #expect(machine.connectFailed(policy: nil, now: t0, random: 0.5) == .stop)
    }

    // MARK: Publisher confirms

    @Test func aMultipleAckSettlesEveryEarlierPublish() {
        var machine = connectedMachine()
        publish(1...5, on: &machine)
        #expect(machine.confirmReceived(tag: 3, multiple: true, nack: nil) == confirmed(1, 2, 3))
        #expect(machine.pendingConfirmCount == 2)
        #expect(machine.confirmReceived(tag: 5, multiple: false, nack: nil) == confirmed(5))
        #expect(machine.confirmReceived(tag: 5, multiple: true, nack: nil) == confirmed(4))
        #expect(!machine.hasPendingConfirms)
    }

    @Test func aMultipleAckSkipsPublishesAlreadySettled() {
        var machine = connectedMachine()
        publish(1...4, on: &machine)
        #expect(machine.confirmReceived(tag: 2, multiple: false, nack: nil) == confirmed(2))
        #expect(machine.confirmReceived(tag: 4, multiple: true, nack: nil) == confirmed(1, 3, 4))
        // A repeated or unknown tag completes nothing.
        #expect(machine.confirmReceived(tag: 4, multiple: false, nack: nil) == [])
        #expect(machine.confirmReceived(tag: 99, multiple: true, nack: nil) == [])
    }

    @Test func aNackFailsThePublishesItCovers() {
        var machine = connectedMachine()
        publish(1...4, on: &machine)
        let nack = AMQPError(.nacked, "the broker refused the message (basic.nack)")
        #expect(machine.confirmReceived(tag: 1, multiple: false, nack: nil) == confirmed(1))
        #expect(machine.confirmReceived(tag: 3, multiple: true, nack: nack) == failed([2, 3], nack))
        #expect(machine.confirmReceived(tag: 4, multiple: false, nack: nil) == confirmed(4))
    }

    @Test func aReturnedMandatoryPublishFailsWhenItsConfirmArrives() {
        var machine = connectedMachine()
        publish(1...3, on: &machine)
        let unroutable = AMQPError(.unroutable, "no queue is bound to exchange 'x' for routing key 'k'", replyCode: 312)
        machine.publishReturned(sequence: 2, unroutable)
        #expect(machine.confirmReceived(tag: 3, multiple: true, nack: nil) == [Completion(publish: 1, error: nil), Completion(publish: 2, error: unroutable), Completion(publish: 3, error: nil)])
    }

    @Test func withoutConfirmsAPublishIsDoneOnceSent() {
        var machine = connectedMachine()
        #expect(machine.published(7, confirms: false) == Completion(publish: 7, error: nil))
        #expect(!machine.hasPendingConfirms)
        #expect(machine.nextPublishSequence == 1)
    }

    @Test func aPublishPastItsDeadlineIsNotSent() {
        let machine = connectedMachine()
        #expect(machine.publishRequested(deadline: nil, now: t0) == nil)
        #expect(machine.publishRequested(deadline: t0 + .seconds(1), now: t0) == nil)
        #expect(machine.publishRequested(deadline: t0, now: t0)?.code == .timeout)
    }

    // MARK: The channel closed by the broker

    @Test func aChannelClosedByTheBrokerFailsItsConfirmsAndIsReopenedForTheConsumers() {
        var machine = connectedMachine()
        publish(1...2, on: &machine)
        #expect(machine.channelClosed(by: brokerClose) == failed([1, 2], brokerClose))
        #expect(!machine.channelOpen)
        // Without consumers the channel waits for the next operation.
        #expect(machine.restoreDecision(now: t0) == .none)
        _ = machine.channelOpened()
        machine.consumerStarted(tag: "c1")
        machine.consumerStarted(tag: "c2")
        _ = machine.channelClosed(by: brokerClose)
        // Still registered, no longer live: readiness says so until they consume again.
        #expect(machine.consumers == ["c1": false, "c2": false])
        #expect(machine.liveConsumerTags.isEmpty)
        #expect(machine.restoreDecision(now: t0) == .reopenChannel)
        _ = machine.channelOpened()
        machine.consumerStarted(tag: "c1")
        machine.consumerStarted(tag: "c2")
        machine.consumersRestored(now: t0)
        #expect(machine.liveConsumerTags == ["c1", "c2"])
        #expect(machine.restoreDecision(now: t0) == .none)
        // Sequence numbers restart on the new channel.
        #expect(machine.nextPublishSequence == 1)
    }

    @Test func aChannelClosedAgainRightAfterARestoreReconnectsInstead() {
        var machine = connectedMachine()
        machine.consumerStarted(tag: "c1")
        _ = machine.channelClosed(by: brokerClose)
        _ = machine.channelOpened()
        machine.consumerStarted(tag: "c1")
        machine.consumersRestored(now: t0)
        _ = machine.channelClosed(by: brokerClose)
        #expect(machine.restoreDecision(now: t0 + .milliseconds(500)) == .reconnect)
        #expect(machine.restoreDecision(now: t0 + .milliseconds(1500)) == .reopenChannel)
    }

    @Test func aCancelledConsumerIsNotRestoredAndALostConnectionTakesEveryConsumerDown() {
        var machine = connectedMachine()
        machine.consumerStarted(tag: "c1")
        machine.consumerStarted(tag: "c2")
        machine.consumerCancelled(tag: "c2")
        #expect(machine.liveConsumerTags == ["c1"])
        _ = machine.connectionLost(AMQPError(.connectionLost, "socket closed"), canReconnect: true)
        machine.connectionGone()
        #expect(machine.consumers == ["c1": false])
        machine.consumerCancelled(tag: "c1")
        _ = machine.channelOpened()
        _ = machine.channelClosed(by: brokerClose)
        #expect(machine.restoreDecision(now: t0) == .none)
    }

    // MARK: Deliveries, settling and channel generations

    @Test func singleAcksAtTheFrontGoOutAsOneMultipleAck() {
        var machine = connectedMachine()
        for tag in UInt64(1)...3 { machine.deliveryArrived(tag: tag, consumer: "c") }
        #expect(machine.deliveriesOut)
        #expect(machine.acksRequested([1, 2, 3], now: t0) == [Frame(tag: 3, multiple: true)])
        #expect(!machine.deliveriesOut)
    }

    @Test func acksOutOfOrderWaitTheirTimeAndNeverReachAnotherChannel() {
        var machine = connectedMachine()
        for tag in UInt64(1)...4 { machine.deliveryArrived(tag: tag, consumer: "c") }
        #expect(machine.acksRequested([2], now: t0) == [])
        #expect(machine.dueAcks(now: t0) == [])
        #expect(machine.dueAcks(now: t0 + UnsettledDeliveries.maxDeferral - .milliseconds(1)) == [])
        #expect(machine.dueAcks(now: t0 + UnsettledDeliveries.maxDeferral) == [Frame(tag: 2, multiple: false)])
        #expect(machine.dueAcks(now: t0 + .seconds(1)) == [])
        // A nack at the front lets the deferred acks behind it go, after it.
        #expect(machine.acksRequested([4], now: t0) == [])
        #expect(machine.settleRequested(.nack(requeue: true, multiple: false), tag: 3, generation: machine.generation) == .send(.nack(requeue: true, multiple: false), tag: 3))
        #expect(machine.settleRequested(.reject(requeue: false), tag: 1, generation: machine.generation) == .send(.reject(requeue: false), tag: 1, after: Frame(tag: 4, multiple: false)))
        #expect(!machine.deliveriesOut)
        // Deferred when the channel closes: nothing is sent, the new channel starts clean.
        machine.deliveryArrived(tag: 5, consumer: "c")
        machine.deliveryArrived(tag: 6, consumer: "c")
        machine.deliveryArrived(tag: 7, consumer: "c")
        #expect(machine.acksRequested([6], now: t0) == [])
        _ = machine.channelClosed(by: brokerClose)
        #expect(machine.deferredAcks() == [])
        #expect(machine.dueAcks(now: t0 + .seconds(1)) == [])
        _ = machine.channelOpened()
        #expect(machine.dueAcks(now: t0 + .seconds(1)) == [])
        #expect(machine.deferredAcks() == [])
    }

    @Test func aMultipleAckCoversDeferredAcksAndAMultipleNackSendsThemFirst() {
        var machine = connectedMachine()
        for tag in UInt64(1)...8 { machine.deliveryArrived(tag: tag, consumer: "c") }
        #expect(machine.acksRequested([2, 6], now: t0) == [])
        // The application's multiple ack up to 3 covers 2 itself: nothing before it.
        #expect(machine.settleRequested(.ack(multiple: true), tag: 3, generation: machine.generation) == .send(.ack(multiple: true), tag: 3))
        // A multiple nack up to 7 would requeue 6: it is acked alone first.
        #expect(
            machine.settleRequested(.nack(requeue: true, multiple: true), tag: 7, generation: machine.generation)
                == .send(.nack(requeue: true, multiple: true), tag: 7, before: [Frame(tag: 6, multiple: false)]))
        #expect(machine.deferredAcks() == [])
        #expect(machine.deliveriesOut)
    }

    @Test func settlementsOfAnEarlierChannelGenerationAreDropped() {
        var machine = connectedMachine()
        let first = machine.generation
        machine.deliveryArrived(tag: 1, consumer: "c")
        machine.deliveryArrived(tag: 2, consumer: "c")
        #expect(machine.settleRequested(.ack(multiple: false), tag: 1, generation: first) == .send(.ack(multiple: false), tag: 1))
        _ = machine.channelClosed(by: brokerClose)
        #expect(machine.generation != first)
        // While the channel is closed nothing is sent.
        #expect(machine.settleRequested(.ack(multiple: false), tag: 2, generation: first) == .drop)
        #expect(machine.acksRequested([2], now: t0) == [])
        let second = machine.channelOpened()
        #expect(second == machine.generation && second != first)
        #expect(!machine.deliveriesOut)
        machine.deliveryArrived(tag: 1, consumer: "c")
        // Tag 1 of the old channel names another delivery now: never sent to the new channel.
        #expect(!machine.isCurrent(generation: first))
        #expect(machine.settleRequested(.reject(requeue: true), tag: 1, generation: first) == .drop)
        #expect(machine.deliveriesOut)
        #expect(machine.settleRequested(.nack(requeue: true, multiple: false), tag: 1, generation: second) == .send(.nack(requeue: true, multiple: false), tag: 1))
        #expect(!machine.deliveriesOut)
    }

    @Test func aLostConnectionMakesEveryDeliveryStale() {
        var machine = connectedMachine()
        let before = machine.generation
        machine.deliveryArrived(tag: 1, consumer: "c")
        _ = machine.connectionLost(AMQPError(.connectionLost, "socket closed"), canReconnect: true)
        machine.connectionGone()
        #expect(!machine.channelOpen && !machine.deliveriesOut)
        #expect(machine.settleRequested(.ack(multiple: true), tag: 1, generation: before) == .drop)
    }

    // MARK: Losing and closing

    @Test func aLostConnectionFailsUnconfirmedPublishesAsConnectionLost() {
        var machine = connectedMachine()
        publish(1...2, on: &machine)
        let closedByBroker = AMQPError(.closedByBroker, "connection closed by the broker: CONNECTION_FORCED (reply code 320)", replyCode: 320)
        let lost = machine.connectionLost(closedByBroker, canReconnect: true)
        let expected = AMQPError(.connectionLost, "\(closedByBroker)", replyCode: 320)
        #expect(lost == .init(failed: failed([1, 2], expected), stop: false))
        #expect(!machine.hasPendingConfirms)
    }

    @Test func closingWhilePublishesArePendingFailsThemAsClosed() {
        var machine = connectedMachine()
        publish(1...3, on: &machine)
        #expect(machine.confirmReceived(tag: 1, multiple: false, nack: nil) == confirmed(1))
        #expect(machine.hasPendingConfirms)
        let closed = AMQPError(.closed, "the connection to localhost:5672 is closed")
        #expect(machine.closed(closed) == failed([2, 3], closed))
        #expect(!machine.hasPendingConfirms)
        #expect(machine.closed(closed) == [])
    }

    // MARK: Heartbeats

    @Test func heartbeatsAreSentEveryHalfIntervalAndASilentBrokerIsDropped() {
        var machine = Machine()
        machine.loggedIn(heartbeat: .seconds(10), now: t0)
        #expect(machine.tick(now: t0 + .seconds(4)) == .none)
        #expect(machine.tick(now: t0 + .seconds(5)) == .sendHeartbeat)
        machine.heartbeatSent(now: t0 + .seconds(5))
        #expect(machine.tick(now: t0 + .seconds(6)) == .none)
        machine.received(now: t0 + .seconds(8))
        #expect(machine.tick(now: t0 + .seconds(10)) == .sendHeartbeat)
        machine.heartbeatSent(now: t0 + .seconds(10))
        #expect(machine.tick(now: t0 + .seconds(28)) == .sendHeartbeat)
        #expect(machine.tick(now: t0 + .seconds(29)) == .connectionDead(silentFor: .seconds(20)))
    }

    @Test func withoutHeartbeatsTimeAloneDecidesNothing() {
        var machine = Machine()
        machine.loggedIn(heartbeat: nil, now: t0)
        #expect(machine.tick(now: t0 + .seconds(86_400)) == .none)
    }
}
