import CRabbitMQ
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Opening the connection and its channel, and registering consumers: librabbitmq calls on
/// the connection thread.
extension ConnectionEngine {
    /// Opens a connection to the first node that answers, starting with ``nodeCursor`` (the
    /// node last connected to, or the one after it when that connection was lost).
    func openConnection() throws(AMQPError) {
        let nodes = configuration.nodes
        var failures: [AMQPError] = []
        for offset in 0..<nodes.count {
            let index = (nodeCursor + offset) % nodes.count
            do throws(AMQPError) {
                try openConnection(to: nodes[index])
                if nodes.count > 1, index != nodeCursor || !failures.isEmpty {
                    logger.info("connected to another node of the cluster", metadata: ["amqp.node": "\(nodes[index])"])
                }
                nodeCursor = index
                return
            } catch {
                failures.append(error)
            }
        }
        guard failures.count > 1, let last = failures.last else { throw failures[0] }
        throw AMQPError(last.code, "no node of \(nodes.count) answered: " + failures.map(\.message).joined(separator: "; "))
    }

    private func openConnection(to node: AMQPConfiguration.Node) throws(AMQPError) {
        guard let conn = amqp_new_connection() else {
            throw AMQPError(.protocolError, "librabbitmq could not allocate a connection")
        }
        var adopted = false
        do throws(AMQPError) {
            try openSocket(conn, node: node)
            try login(conn, node: node)
            state = conn
            adopted = true
            let negotiated = Int(amqp_get_heartbeat(conn))
            machine.loggedIn(heartbeat: negotiated > 0 ? .seconds(negotiated) : nil, now: .now)
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

    func openSocket(_ conn: amqp_connection_state_t, node: AMQPConfiguration.Node) throws(AMQPError) {
        let endpoint = node.description
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
        let status = amqp_socket_open_noblock(socket, node.host, Int32(node.port), &timeout)
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
                let hint = node.host.contains(where: { $0.isLetter }) ? "" : " (an IP address never matches: connect by a DNS name the certificate carries)"
                throw AMQPError(.tlsFailed, "TLS handshake with \(endpoint) failed: the broker's certificate does not name host '\(node.host)'\(hint)")
            case AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue:
                throw AMQPError(.tlsFailed, "TLS handshake with \(endpoint) failed: \(statusText(status)) (is it a TLS port?)")
            case AMQP_STATUS_TIMEOUT.rawValue:
                throw AMQPError(.timeout, "connecting to \(endpoint) timed out after \(configuration.connectionTimeout)")
            case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED.rawValue:
                throw AMQPError(.connectionRefused, "cannot resolve host '\(node.host)'")
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

    func login(_ conn: amqp_connection_state_t, node: AMQPConfiguration.Node) throws(AMQPError) {
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
        let context = "login to \(node) as '\(configuration.username)' on vhost '\(configuration.virtualHost)'"
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
        guard !machine.channelOpen else { return }
        guard let state else { throw AMQPError(.connectionLost, "not connected to \(configuration.endpoint)") }
        amqp_channel_open(state, Self.channel)
        try checkReply("opening a channel")
        _ = machine.channelOpened()
        shareGeneration()
        if options.publisherConfirms {
            amqp_confirm_select(state, Self.channel)
            try checkReply("enabling publisher confirms")
        }
        for registration in consumers.values {
            try startConsumer(registration)
        }
    }

    func startConsumer(_ registration: ConsumerRegistration) throws(AMQPError) {
        guard let state else { throw AMQPError(.connectionLost, "not connected") }
        amqp_basic_qos(state, Self.channel, 0, registration.prefetch, 0)
        try checkReply("setting prefetch \(registration.prefetch)")
        let arena = CArena()
        amqp_basic_consume(
            state, Self.channel, arena.bytes(registration.queue), arena.bytes(registration.tag), 0, 0,
            registration.exclusive ? 1 : 0, arena.table(registration.arguments))
        try checkReply("consuming from queue '\(registration.queue)'")
        machine.consumerStarted(tag: registration.tag)
        shareLiveConsumers()
    }

    func cancelConsumer(tag: String) {
        flushDeliveries()  // what already arrived is the consumer's to settle
        machine.consumerCancelled(tag: tag)
        shareLiveConsumers()
        guard let registration = consumers.removeValue(forKey: tag) else { return }
        defer { registration.continuation.finish() }
        // Deferred acks go first: the cancel-ok below then proves the broker has them.
        sendDeferredAcks()
        guard let state, machine.channelOpen else { return }
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
}
