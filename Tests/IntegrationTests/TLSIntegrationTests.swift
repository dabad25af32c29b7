import AMQPClient
import Foundation
import Testing

@Suite struct TLSIntegrationTests {
    @Test func amqpsConnectionWithTheTrustedCAPublishesAndConsumes() async throws {
        let configuration = try TestBroker.tlsConfiguration()
        #expect(configuration.tls?.verifyPeer == true)
        let connection = try await TestBroker.connect(configuration, confirms: true)
        let queue = TestBroker.uniqueName("it-tls")
        try await connection.withChannel { try $0.declareQueue(queue, arguments: ["x-queue-type": "quorum"]) }
        try await connection.publish(OutboundMessage(exchange: "", routingKey: queue, body: Array("over tls".utf8), mandatory: true))
        let consumer = try await connection.consume(queue: queue, prefetch: 1)
        let delivery = try #require(await receive(consumer, count: 1).first)
        #expect(delivery.body == Array("over tls".utf8))
        await consumer.cancel()
        try await connection.withChannel { try $0.deleteQueue(queue) }
        await connection.close()
    }

    @Test func clientCertificateIsAccepted() async throws {
        let tls = try TestBroker.env("WHSYNC_TEST_TLS_DIR")
        var configuration = try TestBroker.tlsConfiguration()
        configuration.tls?.certificateFile = "\(tls)/client.pem"
        configuration.tls?.keyFile = "\(tls)/client.key"
        let connection = try await TestBroker.connect(configuration)
        #expect(connection.isConnected)
        await connection.close()
    }

    @Test func serverCertificateNotSignedByTheTrustedCAIsRefused() async throws {
        let tls = try TestBroker.env("WHSYNC_TEST_TLS_DIR")
        var configuration = try TestBroker.tlsConfiguration()
        configuration.tls?.caFile = "\(tls)/rogue-ca.pem"
        let error = await #expect(throws: AMQPError.self) { try await TestBroker.connect(configuration) }
        #expect(error?.code == .tlsFailed)
        #expect(error?.message.contains("not signed by a trusted CA") == true)
        #expect(error?.message.contains("rogue-ca.pem") == true)
    }

    @Test func anIPAddressNeverMatchesTheCertificatesNamesAndTheErrorSaysSo() async throws {
        var configuration = try TestBroker.tlsConfiguration()
        configuration.host = "127.0.0.1"
        let error = await #expect(throws: AMQPError.self) { try await TestBroker.connect(configuration) }
        #expect(error?.code == .tlsFailed)
        #expect(error?.message.contains("does not name host '127.0.0.1'") == true)
        #expect(error?.message.contains("IP address never matches") == true)
    }

    @Test func plainAMQPAgainstTheTLSPortFailsClearly() async throws {
        let tlsURL = try TestBroker.tlsConfiguration()
        let configuration = AMQPConfiguration(host: tlsURL.host, port: tlsURL.port, connectionTimeout: .seconds(3))
        await #expect(throws: AMQPError.self) { try await TestBroker.connect(configuration) }
    }
}
