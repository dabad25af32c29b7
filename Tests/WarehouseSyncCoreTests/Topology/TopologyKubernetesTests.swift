import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSettings
import WarehouseSyncOperations

@Suite("Topology export as messaging-topology-operator resources")
struct TopologyKubernetesTests {
    /// One YAML document of the export, read back: nested mappings of raw scalars (strings keep
    /// their quotes, so `"1"` and `1` stay apart). Only the subset the export writes.
    indirect enum Node: Equatable, CustomStringConvertible {
        case scalar(String)
        case map([String: Node])

        subscript(path: String) -> Node? {
            var node: Node? = self
            for key in path.split(separator: ".", omittingEmptySubsequences: false) {
                guard case .map(let fields)? = node else { return nil }
                node = fields[String(key)]
            }
            return node
        }

        var description: String {
            switch self {
            case .scalar(let value): value
            case .map(let fields): "{\(fields.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))}"
            }
        }
    }

    /// The documents of `text` (split on `---` lines; comment lines dropped), each parsed.
    static func documents(_ text: String) throws -> [Node] {
        var documents: [[Substring]] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "---" {
                documents.append([])
            } else if line.hasPrefix("#") || line.isEmpty {
                continue
            } else {
                try #require(!documents.isEmpty, "content before the first ---: \(line)")
                documents[documents.count - 1].append(line)
            }
        }
        return try documents.map { lines in
            var index = 0
            return try parse(lines, &index, indent: 0)
        }
    }

    private static func parse(_ lines: [Substring], _ index: inout Int, indent: Int) throws -> Node {
        var fields: [String: Node] = [:]
        while index < lines.count {
            let line = lines[index]
            let depth = line.prefix { $0 == " " }.count
            if depth < indent { break }
            try #require(depth == indent, "bad indent: \(line)")
            let content = line.dropFirst(depth)
            let colon = try #require(Self.keyEnd(content), "no key: \(line)")
            var key = String(content[..<colon])
            if key.hasPrefix("\"") { key = String(key.dropFirst().dropLast()) }
            let rest = content[content.index(after: colon)...]
            index += 1
            try #require(fields[key] == nil, "duplicate key \(key)")
            if rest.isEmpty {
                fields[key] = try parse(lines, &index, indent: indent + 2)
            } else {
                try #require(rest.hasPrefix(" "), "no space after colon: \(line)")
                fields[key] = rest == " {}" ? .map([:]) : .scalar(String(rest.dropFirst()))
            }
        }
        return .map(fields)
    }

    /// The colon that ends the key (after a quoted key's closing quote).
    private static func keyEnd(_ content: Substring) -> Substring.Index? {
        if content.hasPrefix("\"") {
            var escaped = false
            var index = content.index(after: content.startIndex)
            while index < content.endIndex {
                let character = content[index]
                if escaped {
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    let next = content.index(after: index)
                    return next < content.endIndex && content[next] == ":" ? next : nil
                }
                index = content.index(after: index)
            }
            return nil
        }
        return content.firstIndex(of: ":")
    }

    static func isDNSLabel(_ name: String) -> Bool {
        name.range(of: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", options: .regularExpression) != nil && name.count <= 63
    }

    static var repositoryRoot: URL {
        TopologyFixtures.repositoryFile.deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test("the repository topology: one resource per planned object and per user, in plan order, names valid")
    func repositoryTopology() throws {
        let topology = try Topology.load(contentsOf: TopologyFixtures.repositoryFile)
        let plan = topology.plan
        let documents = try Self.documents(topology.kubernetesResources())
        #expect(!topology.users.isEmpty)
        #expect(documents.count == plan.exchanges.count + plan.queues.count + plan.bindings.count + 2 * topology.users.count)
        let kinds = documents.map { $0["kind"] }
        #expect(
            kinds
                == Array(repeating: Node.scalar("\"Exchange\""), count: plan.exchanges.count)
                + Array(repeating: .scalar("\"Queue\""), count: plan.queues.count)
                + Array(repeating: .scalar("\"Binding\""), count: plan.bindings.count)
                + Array(repeating: .scalar("\"User\""), count: topology.users.count)
                + Array(repeating: .scalar("\"Permission\""), count: topology.users.count)
        )
        for document in documents {
            #expect(document["apiVersion"] == .scalar("\"rabbitmq.com/v1beta1\""))
            #expect(document["spec.rabbitmqClusterReference"] == .map(["name": .scalar("\"rabbitmq\"")]))
            // A User is cluster-wide; its Permission names the vhost.
            #expect(document["spec.vhost"] == (document["kind"] == .scalar("\"User\"") ? nil : .scalar("\"/\"")))
            #expect(document["metadata.namespace"] == nil)
            guard case .scalar(let quoted)? = document["metadata.name"] else {
                Issue.record("no metadata.name: \(document)")
                continue
            }
            let name = String(quoted.dropFirst().dropLast())
            #expect(Self.isDNSLabel(name), "\(name)")
        }
        let specNames = documents.compactMap { $0["spec.name"] }
        #expect(specNames == (plan.exchanges.map(\.name) + plan.queues.map(\.name)).map { .scalar("\"\($0)\"") })
        var metadataNames: [String: Set<String>] = [:]
        for document in documents {
            metadataNames[document["kind"]!.description, default: []].insert(document["metadata.name"]!.description)
        }
        #expect(metadataNames.values.map(\.count).reduce(0, +) == documents.count, "metadata names repeat within a kind")
        #expect(plan.kubernetesLimitations.isEmpty)
    }

    @Test("a work queue, a retry queue and the dead-letter queue, exactly")
    func queueDocuments() throws {
        let text = try Topology.load(contentsOf: TopologyFixtures.repositoryFile).kubernetesResources()
        #expect(
            text.contains(
                """
                ---
                apiVersion: "rabbitmq.com/v1beta1"
                kind: "Queue"
                metadata:
                  name: "erp-inventory"
                  labels:
                    app.kubernetes.io/part-of: "warehouse-sync"
                    app.kubernetes.io/managed-by: "whsync"
                    app.kubernetes.io/component: "work-queue"
                    warehousesync/stream: "inventory"
                spec:
                  name: "erp.inventory"
                  vhost: "/"
                  type: "quorum"
                  durable: true
                  autoDelete: false
                  arguments:
                    x-dead-letter-exchange: "whsync.dead"
                    x-dead-letter-strategy: "at-least-once"
                    x-delivery-limit: 20
                    x-overflow: "reject-publish"
                  rabbitmqClusterReference:
                    name: "rabbitmq"

                """))
        let documents = try Self.documents(text)
        let retry = try #require(documents.first { $0["spec.name"] == .scalar("\"whsync.retry.shipment.30s\"") })
        #expect(retry["metadata.name"] == .scalar("\"whsync-retry-shipment-30s\""))
        #expect(retry["spec.arguments.x-message-ttl"] == .scalar("30000"))
        #expect(retry["spec.arguments.x-dead-letter-exchange"] == .scalar("\"whsync.requeue\""))
        #expect(retry["spec.arguments.x-queue-type"] == nil)
        #expect(retry["spec.type"] == .scalar("\"quorum\""))
        let dead = try #require(documents.first { $0["spec.name"] == .scalar("\"whsync.dead-letters\"") })
        #expect(dead["spec.arguments"] == nil)
        #expect(
            text.contains(
                """
                  name: "whsync-dead-letters"
                  labels:
                    app.kubernetes.io/part-of: "warehouse-sync"
                    app.kubernetes.io/managed-by: "whsync"
                    app.kubernetes.io/component: "dead-letter-queue"

                """))
    }

    @Test("bindings: source, destination, type, routing key and header arguments; names unique and stable")
    func bindings() throws {
        let topology = try Topology.load(contentsOf: TopologyFixtures.repositoryFile)
        let documents = try Self.documents(topology.kubernetesResources()).filter { $0["kind"] == .scalar("\"Binding\"") }
        #expect(documents.count == topology.plan.bindings.count)
        for (document, binding) in zip(documents, topology.plan.bindings) {
            #expect(document["spec.source"] == .scalar("\"\(binding.source)\""))
            #expect(document["spec.destination"] == .scalar("\"\(binding.destination)\""))
            #expect(document["spec.destinationType"] == .scalar("\"\(binding.destinationType.rawValue)\""))
            #expect(document["spec.routingKey"] == .scalar("\"\(binding.routingKey)\""))
            #expect(document["spec.name"] == nil)
        }
        let retry = try #require(documents.first { $0["spec.destination"] == .scalar("\"whsync.retry.receipt.5m\"") })
        #expect(
            retry["spec.arguments"]
                == .map([
                    "x-match": .scalar("\"all\""), "whsync-stream": .scalar("\"receipt\""),
                    "whsync-retry-tier": .scalar("\"5m\""),
                ]))
        let names = documents.map { $0["metadata.name"]!.description }
        #expect(Set(names).count == names.count)
        // wms.events → erp.inventory and whsync.requeue → erp.inventory differ by source; the hash
        // keeps the name of each binding a function of that binding alone.
        let first = try #require(names.first)
        #expect(first.hasPrefix("\"wms-events-erp-inventory-"))
        #expect(try Self.documents(topology.kubernetesResources()).map { $0["metadata.name"] }.contains(.scalar(first)))
        let dead = try #require(documents.first { $0["spec.source"] == .scalar("\"whsync.dead\"") })
        #expect(dead["spec.routingKey"] == .scalar("\"#\""))
    }

    @Test("partitions: hash exchange rendered non-internal with a note, single-active-consumer queues, weight bindings")
    func partitions() throws {
        let topology = try TopologyFixtures.topology(TopologyFixtures.document(inventory: #"{ "partitions": 3 }"#))
        let text = topology.kubernetesResources()
        let documents = try Self.documents(text)
        let exchange = try #require(documents.first { $0["spec.name"] == .scalar("\"erp.inventory.partitions\"") })
        #expect(exchange["kind"] == .scalar("\"Exchange\""))
        #expect(exchange["spec.type"] == .scalar("\"x-consistent-hash\""))
        #expect(exchange["spec.arguments"] == .map(["hash-header": .scalar("\"partition-key\"")]))
        #expect(exchange["spec.internal"] == nil)
        #expect(exchange["metadata.annotations"] == .map(["warehousesync/internal": .scalar("\"true\"")]))
        #expect(text.contains("---\n# Internal in the topology; the operator's Exchange has no `internal` field"))
        #expect(topology.plan.kubernetesLimitations.count == 1)
        #expect(topology.plan.kubernetesLimitations.first?.contains("erp.inventory.partitions") == true)

        for partition in 0..<3 {
            let queue = try #require(documents.first { $0["spec.name"] == .scalar("\"erp.inventory.p\(partition)\"") })
            #expect(queue["metadata.name"] == .scalar("\"erp-inventory-p\(partition)\""))
            #expect(queue["spec.arguments.x-single-active-consumer"] == .scalar("true"))
            #expect(queue["spec.arguments.x-delivery-limit"] == .scalar("20"))
            #expect(text.contains("  name: \"erp-inventory-p\(partition)\"\n  labels:\n    app.kubernetes.io/part-of: \"warehouse-sync\"\n    app.kubernetes.io/managed-by: \"whsync\"\n    app.kubernetes.io/component: \"work-queue\"\n    warehousesync/stream: \"inventory\"\n"))
            let binding = try #require(
                documents.first {
                    $0["kind"] == .scalar("\"Binding\"") && $0["spec.destination"] == .scalar("\"erp.inventory.p\(partition)\"")
                })
            #expect(binding["spec.source"] == .scalar("\"erp.inventory.partitions\""))
            #expect(binding["spec.routingKey"] == .scalar("\"1\""))
        }
        let entry = try #require(
            documents.first { $0["spec.source"] == .scalar("\"wms.events\"") && $0["spec.routingKey"] == .scalar("\"inventory.*\"") })
        #expect(entry["spec.destination"] == .scalar("\"erp.inventory.partitions\""))
        #expect(entry["spec.destinationType"] == .scalar("\"exchange\""))
        #expect(!documents.contains { $0["spec.name"] == .scalar("\"erp.inventory\"") })
    }

    @Test("options: namespace, cluster reference with namespace, vhost")
    func options() throws {
        let topology = try Topology.load(contentsOf: TopologyFixtures.repositoryFile)
        let options = KubernetesTopologyOptions(
            rabbitmqCluster: "mq", rabbitmqClusterNamespace: "brokers", namespace: "warehouse-sync", vhost: "wms")
        for document in try Self.documents(topology.kubernetesResources(options)) {
            #expect(document["metadata.namespace"] == .scalar("\"warehouse-sync\""))
            #expect(
                document["spec.rabbitmqClusterReference"]
                    == .map(["name": .scalar("\"mq\""), "namespace": .scalar("\"brokers\"")]))
            #expect(document["spec.vhost"] == (document["kind"] == .scalar("\"User\"") ? nil : .scalar("\"wms\"")))
        }
    }

    @Test(
        "metadata names: DNS-1123 labels made of the real name",
        arguments: [
            ("erp.inventory", "erp-inventory"),
            ("whsync.retry.inventory.5s", "whsync-retry-inventory-5s"),
            ("Orders__EU..x", "orders-eu-x"),
            ("-.lead", "lead"),
        ])
    func names(real: String, expected: String) {
        #expect(TopologyPlan.kubernetesName(real) == expected)
    }

    @Test("metadata names: empty, long and colliding names")
    func nameEdges() {
        let empty = TopologyPlan.kubernetesName("...")
        #expect(empty.count == 8 && Self.isDNSLabel(empty))
        let long = String(repeating: "segment.", count: 20) + "end"
        let name = TopologyPlan.kubernetesName(long)
        #expect(name.count <= 63 && Self.isDNSLabel(name))
        #expect(name != TopologyPlan.kubernetesName(long + "2"))

        let plan = TopologyPlan(
            exchanges: [ExchangeSpec(name: "a.b", type: "topic"), ExchangeSpec(name: "a-b", type: "topic"), ExchangeSpec(name: "c", type: "topic")],
            queues: [QueueSpec(name: "A.B"), QueueSpec(name: "a.b")],
            bindings: [
                BindingSpec(source: "a.b", destination: "a.b", destinationType: .queue, routingKey: "k"),
                BindingSpec(source: "a.b", destination: "a.b", destinationType: .queue, routingKey: "k", arguments: ["x": "1"]),
            ])
        let documents = (try? Self.documents(plan.kubernetesResources())) ?? []
        #expect(documents.count == 7)
        let names = documents.map { $0["metadata.name"]!.description }
        #expect(names[2] == "\"c\"")
        #expect(names[0] != names[1] && names[0].hasPrefix("\"a-b-") && names[1].hasPrefix("\"a-b-"))
        #expect(names[3] != names[4])
        #expect(names[5] != names[6])
        for name in names { #expect(Self.isDNSLabel(String(name.dropFirst().dropLast())), "\(name)") }
    }

    @Test("strings are double-quoted with escapes; odd argument keys are quoted")
    func quoting() throws {
        let plan = TopologyPlan(
            exchanges: [ExchangeSpec(name: "we\"ird\\name\n", type: "topic", arguments: ["true": "yes", "#key": 3, "ok-key": false])],
            queues: [],
            bindings: [])
        let text = plan.kubernetesResources()
        #expect(text.contains("  name: \"we\\\"ird\\\\name\\n\"\n"))
        #expect(text.contains("    \"#key\": 3\n    ok-key: false\n    \"true\": \"yes\"\n"))
        let document = try #require(try Self.documents(text).first)
        #expect(document["spec.arguments.#key"] == .scalar("3"))
    }

    @Test("deterministic: the same topology gives the same bytes, and deploy/k8s/topology.yaml is current")
    func committedFile() throws {
        let topology = try Topology.load(contentsOf: TopologyFixtures.repositoryFile)
        #expect(topology.kubernetesResources() == topology.kubernetesResources())
        let committed = Self.repositoryRoot.appendingPathComponent("deploy/k8s/topology.yaml")
        let text = try String(contentsOf: committed, encoding: .utf8)
        #expect(
            text == topology.kubernetesResources(),
            "deploy/k8s/topology.yaml drifted from topology/topology.json: regenerate it with `whsync topology export --format k8s -o deploy/k8s/topology.yaml`"
        )
    }
}
