import AMQPClient
import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncWorker

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

    /// Where the topology's broker users go: the management API (users and permissions cannot
    /// be declared over AMQP), with the broker credentials of the AMQP URL, and the directory of
    /// their password files.
    struct UsersOptions: ParsableArguments {
        @Option(name: .customLong("management-url"), help: "RabbitMQ management API, e.g. http://127.0.0.1:15672. Default: $RABBITMQ_MANAGEMENT_URL")
        var managementURL: String?
        @Option(name: .customLong("passwords-dir"), help: "Directory with one password file per broker user of the topology. Default: $BROKER_PASSWORDS_DIR")
        var passwordsDirectory: String?

        /// The management API's URL, or nil when neither the flag nor the environment names one.
        func url() throws -> URL? {
            guard let text = managementURL ?? environmentValue("RABBITMQ_MANAGEMENT_URL") else { return nil }
            guard let url = URL(string: text), url.scheme == "http" || url.scheme == "https" else {
                throw ValidationError("--management-url: '\(URL(string: text).map(ManagementClient.withoutPassword) ?? text)' is not an http(s) URL")
            }
            return url
        }

        /// Runs `body` with a management client on the broker credentials of `configuration`
        /// (nil without a management URL), shut down when `body` returns or throws.
        func withClient<Result>(
            for configuration: AMQPConfiguration, _ body: (ManagementClient?) async throws -> Result
        ) async throws -> Result {
            guard let url = try url() else { return try await body(nil) }
            return try await withManagementClient(
                baseURL: url, username: configuration.username, password: configuration.password
            ) { management in
                try await body(management)
            }
        }

        /// Every user's password, or nil without a passwords directory.
        func passwords(for users: [BrokerUser]) throws -> [String: String]? {
            try Self.passwords(for: users, directory: passwordsDirectory)
        }

        /// The passwords in `directory` (else $BROKER_PASSWORDS_DIR), or nil without either.
        static func passwords(for users: [BrokerUser], directory: String?) throws -> [String: String]? {
            guard let directory = directory ?? environmentValue("BROKER_PASSWORDS_DIR"), !users.isEmpty else { return nil }
            do {
                return try BrokerPasswords.load(for: users, directory: directory)
            } catch {
                throw ValidationError("--passwords-dir: \(error)")
            }
        }
    }

    struct Apply: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare every exchange, queue and binding, and the broker users (idempotent).",
            discussion: """
                Exchanges, queues and bindings are declared over AMQP. The topology's broker users and \
                their permissions (in the AMQP URL's vhost) are created or updated through the management \
                API, which needs --management-url and --passwords-dir; without them apply says that the \
                users were not applied.
                """)
        @OptionGroup var topology: FileOption
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var users: UsersOptions

        func run() async throws {
            let loaded = try topology.load()
            let plan = loaded.plan
            let configuration = try broker.configuration(connectionName: "whsync topology apply")
            try await users.withClient(for: configuration) { management in
                // Read before anything is declared: a missing password file changes nothing.
                let passwords = management == nil ? nil : try users.passwords(for: loaded.users)
                try await broker.withConnection(name: "whsync topology apply") { connection in
                    try await TopologyDeployer(plan: plan).apply(on: connection)
                }
                print("applied: \(plan.exchanges.count) exchanges, \(plan.queues.count) queues, \(plan.bindings.count) bindings")
                guard !loaded.users.isEmpty else { return }
                let vhost = configuration.virtualHost
                if let management, let passwords {
                    let summary = try await BrokerUserDeployer(users: loaded.users, vhost: vhost).apply(
                        management: management, passwords: passwords)
                    print("applied: \(loaded.users.count) broker users with their permissions in vhost '\(vhost)' (\(summary))")
                } else {
                    let missing =
                        management == nil
                        ? "no management URL (--management-url or RABBITMQ_MANAGEMENT_URL)"
                        : "no passwords directory (--passwords-dir or BROKER_PASSWORDS_DIR)"
                    printError("whsync: broker users NOT applied (\(loaded.users.count) in the topology): \(missing)")
                }
            }
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report every missing or different object; exit 1 on drift.",
            discussion: """
                Exchanges and queues are checked over AMQP. Bindings, broker users and their permissions \
                are invisible to AMQP: they are checked through the management API when --management-url \
                (or $RABBITMQ_MANAGEMENT_URL) is set; passwords too when --passwords-dir is.
                """)
        @OptionGroup var topology: FileOption
        @OptionGroup var broker: BrokerOptions
        @OptionGroup var users: UsersOptions

        func run() async throws {
            let loaded = try topology.load()
            let plan = loaded.plan
            let configuration = try broker.configuration(connectionName: "whsync topology verify")
            try await users.withClient(for: configuration) { management in
                let passwords = try users.passwords(for: loaded.users)
                var drift = try await broker.withConnection(name: "whsync topology verify") { connection in
                    try await TopologyDeployer(plan: plan).verify(on: connection, management: management)
                }
                if let management {
                    drift += try await BrokerUserDeployer(users: loaded.users, vhost: configuration.virtualHost).verify(
                        management: management, passwords: passwords)
                }
                for item in drift { print(item) }
                let scope =
                    management == nil
                    ? "exchanges and queues (bindings and broker users not checked: no management URL)"
                    : "exchanges, queues, bindings and broker users"
                        + (passwords == nil && !loaded.users.isEmpty ? " (passwords not checked: no passwords directory)" : "")
                if drift.isEmpty {
                    print("topology matches: \(scope)")
                } else {
                    printError("whsync: \(drift.count) difference(s) from the topology file in \(scope)")
                    throw ExitCode(1)
                }
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
                definitions: for rabbitmqctl import_definitions or the management UI; the broker users \
                with their password hashes only with --passwords-dir. k8s: Exchange, Queue, Binding, User \
                and Permission resources of the RabbitMQ messaging-topology-operator (docs/deploy.md); the \
                users' passwords come from their Secrets.
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
        @Option(
            name: .customLong("passwords-dir"),
            help: "definitions: directory with the broker users' password files; without it the users are left out. Default: $BROKER_PASSWORDS_DIR")
        var passwordsDirectory: String?

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
                let passwords = try UsersOptions.passwords(for: loaded.users, directory: passwordsDirectory)
                if passwords == nil && !loaded.users.isEmpty {
                    printError(
                        "whsync: the \(loaded.users.count) broker users and their permissions are left out: no passwords "
                            + "directory (--passwords-dir or BROKER_PASSWORDS_DIR); importing a user without its password would lock it out")
                }
                let users = loaded.users.compactMap { user in
                    passwords?[user.name].map { (user: user, passwordHash: BrokerPasswordHash.sha256(password: $0)) }
                }
                data = loaded.plan.definitions(vhost: vhost, users: users)
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
