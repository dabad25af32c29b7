import AMQPClient
import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncRuntime

struct TopologyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Apply, verify or export the RabbitMQ topology kept in topology/topology.json.",
        subcommands: [Apply.self, Verify.self, Export.self]
    )

    struct FileOption: ParsableArguments {
        @Option(help: "Topology file. Default: topology/topology.json in this directory or the nearest parent that has one.")
        var file: String?

        func load() throws -> Topology {
            try Self.load(file: file)
        }

        /// `file`, or `topology/topology.json` in the working directory or a parent.
        static func load(file: String?) throws -> Topology {
            if let file {
                return try Topology.load(contentsOf: URL(fileURLWithPath: file))
            }
            guard let found = Topology.findDefaultFile(from: FileManager.default.currentDirectoryPath) else {
                throw ValidationError(
                    "no \(Topology.defaultRelativePath) in \(FileManager.default.currentDirectoryPath) or its parents; pass --file")
            }
            return try Topology.load(contentsOf: found)
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare every exchange, queue and binding (idempotent).")
        @OptionGroup var topology: FileOption
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            let plan = try topology.load().plan
            try await broker.withConnection(name: "whsync topology apply") { connection in
                try await TopologyDeployer(plan: plan).apply(on: connection)
            }
            print("applied: \(plan.exchanges.count) exchanges, \(plan.queues.count) queues, \(plan.bindings.count) bindings")
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report every missing or different object; exit 1 on drift.",
            discussion: """
                Exchanges and queues are checked over AMQP. Bindings are invisible to AMQP: they are \
                checked through the management API when --management-url (or $RABBITMQ_MANAGEMENT_URL) is set.
                """)
        @OptionGroup var topology: FileOption
        @OptionGroup var broker: BrokerOptions
        @Option(name: .customLong("management-url"), help: "RabbitMQ management API, e.g. http://127.0.0.1:15672")
        var managementURL: String?

        func run() async throws {
            let plan = try topology.load().plan
            let configuration = try broker.configuration(connectionName: "whsync topology verify")
            var management: ManagementClient?
            if let text = managementURL ?? environmentValue("RABBITMQ_MANAGEMENT_URL") {
                guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https" else {
                    throw ValidationError("--management-url: '\(text)' is not an http(s) URL")
                }
                management = ManagementClient(baseURL: url, username: configuration.username, password: configuration.password)
            }
            let drift = try await broker.withConnection(name: "whsync topology verify") { connection in
                try await TopologyDeployer(plan: plan).verify(on: connection, management: management)
            }
            for item in drift { print(item) }
            let scope = management == nil ? "exchanges and queues (bindings not checked: no management URL)" : "exchanges, queues and bindings"
            if drift.isEmpty {
                print("topology matches: \(scope)")
            } else {
                printError("whsync: \(drift.count) difference(s) from the topology file in \(scope)")
                throw ExitCode(1)
            }
        }
    }

    struct Export: AsyncParsableCommand {
        enum Format: String, ExpressibleByArgument, CaseIterable {
            case definitions
            case k8s
        }

        static let configuration = CommandConfiguration(
            abstract: "Write a RabbitMQ definitions file, or the topology as Kubernetes resources.",
            discussion: """
                definitions: for rabbitmqctl import_definitions or the management UI. k8s: Exchange, \
                Queue and Binding resources of the RabbitMQ messaging-topology-operator (docs/deploy.md).
                """)
        @OptionGroup var topology: FileOption
        @Option(help: "definitions (RabbitMQ definitions JSON) or k8s (topology-operator YAML).")
        var format: Format = .definitions
        @Option(help: "Virtual host the definitions or resources target.")
        var vhost = "/"
        @Option(name: .customLong("rabbitmq-cluster"), help: "k8s: the RabbitmqCluster the resources refer to.")
        var rabbitmqCluster = "rabbitmq"
        @Option(name: .customLong("rabbitmq-cluster-namespace"), help: "k8s: its namespace, when not the resources' own.")
        var rabbitmqClusterNamespace: String?
        @Option(help: "k8s: metadata.namespace of the resources; default none (kubectl apply -n decides).")
        var namespace: String?
        @Option(name: .shortAndLong, help: "Output file; default stdout.")
        var output: String?

        func validate() throws {
            if format == .definitions, rabbitmqCluster != "rabbitmq" || rabbitmqClusterNamespace != nil || namespace != nil {
                throw ValidationError("--rabbitmq-cluster, --rabbitmq-cluster-namespace and --namespace need --format k8s")
            }
        }

        func run() async throws {
            let loaded = try topology.load()
            let data: Data
            switch format {
            case .definitions:
                data = loaded.plan.definitions(vhost: vhost)
            case .k8s:
                for limitation in loaded.plan.kubernetesLimitations { printError("whsync: warning: \(limitation)") }
                let options = KubernetesTopologyOptions(
                    rabbitmqCluster: rabbitmqCluster, rabbitmqClusterNamespace: rabbitmqClusterNamespace,
                    namespace: namespace, vhost: vhost)
                data = Data(loaded.kubernetesResources(options).utf8)
            }
            if let output {
                try data.write(to: URL(fileURLWithPath: output), options: .atomic)
            } else {
                FileHandle.standardOutput.write(data)
                if format == .definitions { FileHandle.standardOutput.write(Data("\n".utf8)) }
            }
        }
    }
}
