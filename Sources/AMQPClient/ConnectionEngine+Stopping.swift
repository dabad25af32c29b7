import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

extension ConnectionEngine {
    /// How long each reply of the closing handshake (cancel-ok, close-ok) is waited for while the
    /// broker blocks the connection.
    static let closingReplyTimeout: Duration = .seconds(2)

    /// A graceful end: waits (bounded) for outstanding confirms, cancels consumers and waits for
    /// cancel-ok, then closes channel and connection, and fails whatever is still queued.
    func shutDown() {
        if state != nil {
            let deadline = ContinuousClock.now + .seconds(5)
            while state != nil, machine.hasPendingConfirms, ContinuousClock.now < deadline {
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
        complete(machine.closed(closed))
        flushDeliveries()
        for (tag, registration) in consumers {
            machine.consumerCancelled(tag: tag)
            registration.continuation.finish()
        }
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
