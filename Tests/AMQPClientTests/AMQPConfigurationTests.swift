import AMQPClient
import Testing

@Suite struct AMQPConfigurationTests {
    @Test func plainURLWithDefaults() throws {
        let c = try AMQPConfiguration(url: "amqp://127.0.0.1")
        #expect(c.host == "127.0.0.1")
        #expect(c.port == 5672)
        #expect(c.virtualHost == "/")
        #expect(c.username == "guest")
        #expect(c.password == "guest")
        #expect(c.tls == nil)
        #expect(c.heartbeatSeconds == 30)
    }

    @Test func credentialsPortVhostAndQuery() throws {
        let c = try AMQPConfiguration(url: "amqp://wms%40site:p%3Ass@broker.example:5700/warehouse%2Fa?heartbeat=10&connection_timeout=2500&frame_max=65536&channel_max=16&connection_name=inv-1")
        #expect(c.host == "broker.example")
        #expect(c.port == 5700)
        #expect(c.username == "wms@site")
        #expect(c.password == "p:ss")
        #expect(c.virtualHost == "warehouse/a")
        #expect(c.heartbeatSeconds == 10)
        #expect(c.connectionTimeout == .milliseconds(2500))
        #expect(c.frameMax == 65536)
        #expect(c.channelMax == 16)
        #expect(c.connectionName == "inv-1")
    }

    @Test(arguments: ["amqp://h/%2F", "amqp://h/", "amqp://h"])
    func defaultVhostSpellings(url: String) throws {
        #expect(try AMQPConfiguration(url: url).virtualHost == "/")
    }

    @Test func tlsDefaultsToVerifiedPort5671() throws {
        let c = try AMQPConfiguration(url: "amqps://u:p@mq.local/?cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/c.key")
        #expect(c.port == 5671)
        #expect(c.tls == AMQPConfiguration.TLS(caFile: "/etc/ca.pem", certificateFile: "/etc/c.pem", keyFile: "/etc/c.key", verifyPeer: true))
    }

    @Test func verifyNoneTurnsVerificationOff() throws {
        let c = try AMQPConfiguration(url: "amqps://mq.local?verify=verify_none")
        #expect(c.tls?.verifyPeer == false)
    }

    @Test(arguments: [
        ("http://h", "the scheme must be amqp:// or amqps://"),
        ("amqp://", "no host"),
        ("amqp://h:70000", "out of range"),
        ("amqp://h/a/b", "the path must be one segment"),
        ("amqp://h?heartbeat=abc", "heartbeat must be an integer"),
        ("amqp://h?hearbeat=5", "unknown parameter 'hearbeat'"),
        ("amqp://h?cacertfile=/x", "cacertfile applies to amqps:// URLs only"),
        ("amqps://h?verify=maybe", "verify must be verify_peer or verify_none"),
        ("amqps://h?certfile=/c.pem", "certfile and keyfile must be given together"),
    ])
    func invalidURLsSayWhatIsWrong(url: String, expected: String) {
        #expect {
            try AMQPConfiguration(url: url)
        } throws: { error in
            let error = error as! AMQPError
            return error.code == .invalidConfiguration && error.message.contains(expected)
        }
    }

    @Test func errorsAndRedactedURLNeverShowThePassword() throws {
        do {
            _ = try AMQPConfiguration(url: "amqp://user:s3cret@h?bogus=1")
            Issue.record("expected an error")
        } catch {
            #expect(!error.message.contains("s3cret"))
            #expect(error.message.contains("***"))
        }
        let c = try AMQPConfiguration(url: "amqps://user:s3cret@h:5671/prod")
        #expect(c.redactedURL == "amqps://user@h:5671/prod")
    }

    @Test func severalNodesOfACluster() throws {
        let c = try AMQPConfiguration(url: "amqp://wms:p%2Cw@rabbit-1:5700,rabbit-2,10.0.0.3:5673/prod?heartbeat=10")
        #expect(c.host == "rabbit-1" && c.port == 5700)
        #expect(c.otherNodes == [.init(host: "rabbit-2", port: 5672), .init(host: "10.0.0.3", port: 5673)])
        #expect(c.nodes.map(\.description) == ["rabbit-1:5700", "rabbit-2:5672", "10.0.0.3:5673"])
        #expect(c.password == "p,w" && c.virtualHost == "prod" && c.heartbeatSeconds == 10)
        #expect(c.redactedURL == "amqp://wms@rabbit-1:5700,rabbit-2:5672,10.0.0.3:5673/prod")
        let secure = try AMQPConfiguration(url: "amqps://a,b:6000/")
        #expect(secure.nodes == [.init(host: "a", port: 5671), .init(host: "b", port: 6000)])
        #expect(try AMQPConfiguration(url: "amqp://one:5672/").otherNodes.isEmpty)
    }

    @Test(arguments: [
        ("amqp://a,,b/", "an empty node in the host list"),
        ("amqp://a,b:99999/", "port 99999 is out of range"),
        ("amqp://a,b/c/d", "the path must be one segment"),
        ("amqp://a,b c/", "is not a host or host:port"),
    ])
    func badNodeLists(url: String, message: String) {
        #expect {
            try AMQPConfiguration(url: url)
        } throws: { error in
            (error as? AMQPError)?.message.contains(message) == true
        }
    }
}

