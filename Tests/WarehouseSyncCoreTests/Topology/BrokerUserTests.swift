import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSettings
import WarehouseSyncOperations

@Suite("Broker users in the topology: parsing, validation, grants, export")
struct BrokerUserTests {
    static func document(users: String) -> String {
        TopologyFixtures.document(top: #""eventsExchange": "wms.events", "users": \#(users)"#)
    }

    static func parseError(users: String) -> TopologyError? {
        do {
            _ = try TopologyFixtures.topology(document(users: users))
            return nil
        } catch {
            return error as? TopologyError
        }
    }

    static let repository = Result { try Topology.load(contentsOf: TopologyFixtures.repositoryFile) }

    static func repositoryUser(_ name: String) throws -> BrokerUser {
        try #require(try repository.get().users.first { $0.name == name }, "no user \(name) in topology/topology.json")
    }

    @Test("a user: tags sorted without repeats, the three permissions, the password file defaulting to the name")
    func parsesAUser() throws {
        let topology = try TopologyFixtures.topology(
            Self.document(
                users: #"""
                    {"description": "roles",
                     "b-user": {"description": "x", "tags": ["monitoring", "management", "monitoring"], "configure": "^$", "write": "^a$", "read": ".*"},
                     "a-user": {"configure": "^$", "write": "^$", "read": "^$", "passwordFile": "a.secret"}}
                    """#))
        #expect(topology.users.map(\.name) == ["a-user", "b-user"])
        let b = topology.users[1]
        #expect(b.tags == ["management", "monitoring"])
        #expect(b.permissions == BrokerUser.Permissions(configure: "^$", write: "^a$", read: ".*"))
        #expect(b.passwordFile == "b-user")
        #expect(topology.users[0].passwordFile == "a.secret")
        #expect(topology.users[0].tags.isEmpty)
    }

    @Test("no users section: no users")
    func noUsers() throws {
        #expect(try TopologyFixtures.topology(TopologyFixtures.document()).users.isEmpty)
    }

    @Test(
        "invalid users are refused, naming the key path",
        arguments: [
            (#"[]"#, "users", TopologyError.Code.wrongType),
            (#"{"u": {"configure": "^$", "write": "^$", "read": "^$", "tag": []}}"#, "users.u.tag", .unknownKey),
            (#"{"u": {"tags": ["admin"], "configure": "^$", "write": "^$", "read": "^$"}}"#, "users.u.tags", .invalidValue),
            (#"{"u": {"tags": "monitoring", "configure": "^$", "write": "^$", "read": "^$"}}"#, "users.u.tags", .wrongType),
            (#"{"u": {"tags": [1], "configure": "^$", "write": "^$", "read": "^$"}}"#, "users.u.tags[0]", .wrongType),
            (#"{"u": {"configure": "^$", "write": "^$"}}"#, "users.u.read", .missingKey),
            (#"{"u": {"configure": "^$", "write": "", "read": "^$"}}"#, "users.u.write", .invalidValue),
            (#"{"u": {"configure": "(", "write": "^$", "read": "^$"}}"#, "users.u.configure", .invalidValue),
            (#"{"u": {"configure": "^$", "write": 1, "read": "^$"}}"#, "users.u.write", .wrongType),
            (#"{"u": {"configure": "^$", "write": "^$", "read": "^$", "passwordFile": "../x"}}"#, "users.u.passwordFile", .invalidValue),
            (#"{"a b": {"configure": "^$", "write": "^$", "read": "^$"}}"#, "users.a b", .invalidName),
            (#"{"u": "secret"}"#, "users.u", .wrongType),
        ])
    func invalid(users: String, keyPath: String, code: TopologyError.Code) {
        let error = Self.parseError(users: users)
        #expect(error?.keyPath == keyPath, "\(String(describing: error))")
        #expect(error?.code == code, "\(String(describing: error))")
    }

    @Test("permissions match as the broker does: an unanchored regular expression")
    func allows() {
        let permissions = BrokerUser.Permissions(configure: "^$", write: "whsync", read: "^erp\\.inventory(\\.p[0-9]+)?$")
        #expect(!permissions.allows(.configure, "anything"))
        #expect(permissions.allows(.write, "x.whsync.y"))
        #expect(permissions.allows(.read, "erp.inventory"))
        #expect(permissions.allows(.read, "erp.inventory.p12"))
        #expect(!permissions.allows(.read, "erp.inventory.retry"))
        #expect(!permissions.allows(.read, "erp.inventoryx"))
    }

    /// What each role of the repository's topology must and must not be able to do, against the
    /// plan (the same checks the integration tests make against a broker).
    @Test("the repository's roles: each may do what its program does and nothing of the others'", arguments: Topology.streamNames)
    func streamWorkers(stream: String) throws {
        // Partitioned, so the grants must cover partition queues too.
        let partitioned = try TopologyFixtures.topology(
            TopologyFixtures.document(inventory: #"{"partitions": 4}"#, shipment: #"{"partitions": 3}"#, receipt: #"{"partitions": 2}"#))
        let worker = try Self.repositoryUser("whsync-\(stream)-worker").permissions
        for topology in [try Self.repository.get(), partitioned] {
            for other in topology.streams {
                for queue in other.workQueues {
                    #expect(worker.allows(.read, queue) == (other.name == stream), "\(stream) reading \(queue)")
                }
            }
            #expect(worker.allows(.write, topology.retry.exchange))
            #expect(worker.allows(.write, topology.deadLetter.exchange))
            #expect(!worker.allows(.write, topology.eventsExchange))
            #expect(!worker.allows(.read, topology.deadLetter.queue))
            for exchange in topology.plan.exchanges { #expect(!worker.allows(.configure, exchange.name)) }
            for queue in topology.plan.queues { #expect(!worker.allows(.configure, queue.name)) }
        }
    }

    @Test("the repository's roles: publishers, replay worker, KEDA and operator")
    func otherRoles() throws {
        let topology = try Self.repository.get()
        let plan = topology.plan
        let names = plan.exchanges.map(\.name) + plan.queues.map(\.name)
        for publisher in ["whsync-wms", "whsync-gateway"] {
            let permissions = try Self.repositoryUser(publisher).permissions
            for name in names {
                #expect(permissions.allows(.write, name) == (name == topology.eventsExchange), "\(publisher) writing \(name)")
                #expect(!permissions.allows(.read, name) && !permissions.allows(.configure, name))
            }
        }
        let replay = try Self.repositoryUser("whsync-replay-worker").permissions
        for name in names {
            #expect(replay.allows(.read, name) == (name == topology.deadLetter.queue), "replay reading \(name)")
            #expect(replay.allows(.write, name) == (name == topology.eventsExchange), "replay writing \(name)")
            #expect(!replay.allows(.configure, name))
        }
        let keda = try Self.repositoryUser("whsync-keda")
        #expect(keda.tags == ["monitoring"])
        for name in names {
            for access in BrokerUser.Permissions.Access.allCases { #expect(!keda.permissions.allows(access, name)) }
        }
        let operatorUser = try Self.repositoryUser("whsync-operator")
        #expect(operatorUser.tags == ["administrator"])
        for name in names {
            for access in BrokerUser.Permissions.Access.allCases { #expect(operatorUser.permissions.allows(access, name)) }
        }
        #expect(topology.users.count == 8)
        #expect(topology.users.filter { $0.tags.contains("administrator") }.map(\.name) == ["whsync-operator"])
    }

    @Test("definitions: users with their hashes and permissions in the vhost only when given")
    func definitions() throws {
        let topology = try Self.repository.get()
        let users = topology.users.map { (user: $0, passwordHash: "hash-of-\($0.name)") }
        let json = try #require(
            try JSONSerialization.jsonObject(with: topology.plan.definitions(vhost: "prod", users: users)) as? [String: Any])
        let exported = try #require(json["users"] as? [[String: String]])
        #expect(exported.count == topology.users.count)
        let keda = try #require(exported.first { $0["name"] == "whsync-keda" })
        #expect(keda == ["name": "whsync-keda", "password_hash": "hash-of-whsync-keda", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "monitoring"])
        let permissions = try #require(json["permissions"] as? [[String: String]])
        let worker = try #require(permissions.first { $0["user"] == "whsync-inventory-worker" })
        #expect(worker == ["user": "whsync-inventory-worker", "vhost": "prod", "configure": "^$", "write": "^whsync\\.(retry|dead)$", "read": "^erp\\.inventory(\\.p[0-9]+)?$"])

        let without = try #require(try JSONSerialization.jsonObject(with: topology.plan.definitions()) as? [String: Any])
        #expect(without["users"] == nil && without["permissions"] == nil)
    }

    @Test("Kubernetes: a User importing its Secret and a Permission per user")
    func kubernetes() throws {
        let topology = try Self.repository.get()
        let text = topology.kubernetesResources(KubernetesTopologyOptions(vhost: "prod"))
        let documents = try TopologyKubernetesTests.documents(text)
        let user = try #require(documents.first { $0["kind"] == .scalar("\"User\"") && $0["metadata.name"] == .scalar("\"whsync-keda\"") })
        #expect(user["spec.tags"] == .scalar(#"["monitoring"]"#))
        #expect(user["spec.importCredentialsSecret.name"] == .scalar("\"whsync-keda-broker-credentials\""))
        #expect(text.contains("app.kubernetes.io/component: \"broker-user\""))
        let permission = try #require(documents.first { $0["kind"] == .scalar("\"Permission\"") && $0["spec.user"] == .scalar("\"whsync-replay-worker\"") })
        #expect(permission["metadata.name"] == .scalar("\"whsync-replay-worker-permissions\""))
        #expect(permission["spec.vhost"] == .scalar("\"prod\""))
        #expect(permission["spec.permissions.read"] == .scalar(#""^whsync\\.dead-letters$""#))
        #expect(permission["spec.permissions.configure"] == .scalar(#""^$""#))
        let noTags = try #require(documents.first { $0["kind"] == .scalar("\"User\"") && $0["metadata.name"] == .scalar("\"whsync-wms\"") })
        #expect(noTags["spec.tags"] == .scalar("[]"))
        #expect(Topology.kubernetesSecretName(of: try Self.repositoryUser("whsync-operator")) == "whsync-operator-broker-credentials")
    }
}
