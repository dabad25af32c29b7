import AMQPClient
import Foundation
import Testing
import WarehouseSyncOperations

@Suite("Management API client: the errors an operator reads")
struct ManagementClientTests {
    /// Nothing listens on port 1 of the loopback interface (binding it needs root).
    static let unreachable = URL(string: "http://whsync-admin:url-secret@127.0.0.1:1")!

    @Test("an unreachable management URL is one error in one line, naming the URL without its password")
    func unreachableURL() async throws {
        let error = await #expect(throws: AMQPError.self) {
            try await withManagementClient(baseURL: Self.unreachable, username: "guest", password: "amqp-secret") { management in
                try await management.bindings(vhost: "/")
            }
        }
        let message = try #require(error).description
        // Refused, not retried until the connect timeout (which would end as a timeout). No
        // timing is asserted: the machine is shared, and speed is for benchmarks.
        #expect(error?.code == .connectionRefused)
        #expect(message.hasPrefix("cannot reach the management API at http://whsync-admin@127.0.0.1:1"), "\(message)")
        #expect(!message.contains("url-secret"), "\(message)")
        #expect(!message.contains("amqp-secret"), "\(message)")
        #expect(!message.contains("\n"), "\(message)")
    }

    @Test("the display URL drops the password and keeps the rest", arguments: [
        ("http://u:p@127.0.0.1:15672/", "http://u@127.0.0.1:15672/"),
        ("https://rabbit.example:15671/mgmt", "https://rabbit.example:15671/mgmt"),
    ])
    func displayURL(given: String, shown: String) {
        #expect(ManagementClient.withoutPassword(URL(string: given)!) == shown)
    }

    @Test("the client is shut down when the body returns and when it throws")
    func scopeShutsDown() async throws {
        // A client left running would trip AsyncHTTPClient's debug check when it is released.
        let url = try await withManagementClient(baseURL: Self.unreachable, username: "guest", password: "guest") { $0.displayURL }
        #expect(url == "http://whsync-admin@127.0.0.1:1")
        struct Stop: Error {}
        await #expect(throws: Stop.self) {
            try await withManagementClient(baseURL: Self.unreachable, username: "guest", password: "guest") { _ in throw Stop() }
        }
    }
}
