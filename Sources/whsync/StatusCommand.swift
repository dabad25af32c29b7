import AMQPClient
import ArgumentParser
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncStore
import WarehouseSyncWorker

/// `whsync status`: is anything stuck? Queue depths and consumers from the broker; parked keys,
/// waiting keys and pending dead letters from the store (when `STORE_URL` is set).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Queue depths and consumers, parked keys and pending dead letters, per stream.")
    @Option(help: "Topology file. Default: topology/topology.json here or in a parent.") var file: String?
    @OptionGroup var erp: ERPOptions
    @Flag(help: "One JSON object on stdout.") var json = false
    @Option(
        name: .customLong("warehouse"),
        help: "The business view of a warehouse (repeatable; `all`: every warehouse with something waiting). Needs STORE_URL.")
    var warehouses: [String] = []
    @OptionGroup var store: StoreOptions
    @OptionGroup var broker: BrokerOptions

    struct Queue: Encodable {
        let name: String
        let messages: UInt32
        let consumers: UInt32
    }

    struct StreamStatus: Encodable {
        let stream: String
        let workQueues: [Queue]
        let retryQueues: [Queue]
        let parkedKeys: Int?
        let waitingKeys: Int?
        /// Events held (arrived before a missing predecessor), over all keys.
        let heldEvents: Int?
        /// When the oldest held event arrived: how long the oldest unposted event has waited.
        let oldestHeldSince: String?
        let pendingDeadLetters: Int?
    }

    struct Status: Encodable {
        let streams: [StreamStatus]
        let deadLetterQueue: Queue
        /// Pending dead letters in the store by reason; `nil` without `STORE_URL`.
        let pendingDeadLettersByReason: [String: Int]?
        /// `up` or `down` by the ERP's `GET /health`; `nil` without `ERP_BASE_URL`.
        let erp: String?
    }

    func run() async throws {
        let topology = try TopologyCommand.FileOption.load(file: file)
        let logger = try broker.logger()
        let names = topology.streams.flatMap { stream in
            stream.workQueues + topology.retry.tiers.map { topology.retryQueue(stream: stream.name, tier: $0) }
        } + [topology.deadLetter.queue]
        let depths: [String: Queue] = try await broker.withConnection(name: "whsync status") { connection in
            try await connection.withChannel { channel in
                var depths: [String: Queue] = [:]
                for name in names {
                    let state = try channel.checkQueue(name)
                    depths[name] = Queue(name: name, messages: state.messageCount, consumers: state.consumerCount)
                }
                return depths
            }
        }

        if !warehouses.isEmpty {
            return try await runWarehouseView(topology: topology, depths: depths, logger: logger)
        }

        var gaps: [GapsCommand.KeyGap]?
        var pending: [DeadLetterRecord]?
        if store.url != nil {
            (gaps, pending) = try await store.withStore(logger: logger) { store in
                (try await GapsCommand.gaps(store, streams: EventStream.allCases),
                 try await DLQCommand.all(store, DeadLetterFilter(status: .pending)))
            }
        }
        let streams = topology.streams.map { stream in
            let held = gaps?.filter { $0.stream == stream.name }
            return StreamStatus(
                stream: stream.name,
                workQueues: stream.workQueues.compactMap { depths[$0] },
                retryQueues: topology.retry.tiers.compactMap { depths[topology.retryQueue(stream: stream.name, tier: $0)] },
                parkedKeys: gaps?.filter { $0.stream == stream.name && $0.parked }.count,
                waitingKeys: gaps?.filter { $0.stream == stream.name && !$0.parked }.count,
                heldEvents: held?.reduce(0) { $0 + $1.heldCount },
                oldestHeldSince: held?.compactMap(\.oldestHeldAt).min(),
                pendingDeadLetters: pending?.filter { $0.stream?.rawValue == stream.name }.count)
        }
        let byReason = pending.map { Dictionary(grouping: $0, by: \.reason.rawValue).mapValues(\.count) }
        // Asked only when the ERP is named: GET /health answers 2xx within 3 s, with the workers' token.
        var erpState: String?
        if erp.url != nil {
            erpState = try await erp.withClient(timeout: .seconds(3)) { await $0.health() } ? "up" : "down"
        }
        let status = Status(
            streams: streams, deadLetterQueue: depths[topology.deadLetter.queue]!, pendingDeadLettersByReason: byReason, erp: erpState)
        if json { return try printJSON(status) }

        // Business terms first.
        for stream in streams {
            let waiting = stream.workQueues.reduce(0) { $0 + Int($1.messages) }
            let retrying = stream.retryQueues.reduce(0) { $0 + Int($1.messages) }
            var line = "\(stream.stream): \(waiting) event\(waiting == 1 ? "" : "s") waiting, \(retrying) in retry"
            if let parked = stream.parkedKeys, let held = stream.heldEvents {
                line += ", \(parked) key\(parked == 1 ? "" : "s") parked, \(held) event\(held == 1 ? "" : "s") held"
                if let since = stream.oldestHeldSince { line += " (oldest since \(since))" }
            }
            if let letters = stream.pendingDeadLetters { line += ", \(letters) dead letter\(letters == 1 ? "" : "s") to look at" }
            print(line)
        }
        if let erpState { print("ERP: \(erpState)") }
        print()
        print("stream     queue                          ready  consumers  in retry  parked  waiting  dead letters")
        for stream in streams {
            for queue in stream.workQueues {
                let retrying = stream.retryQueues.reduce(0) { $0 + Int($1.messages) }
                print(
                    "\(pad(stream.stream, 10)) \(pad(queue.name, 30)) \(pad(queue.messages, 6)) \(pad(queue.consumers, 10)) "
                        + "\(pad(retrying, 9)) \(pad(stream.parkedKeys.map(String.init) ?? "?", 7)) "
                        + "\(pad(stream.waitingKeys.map(String.init) ?? "?", 8)) \(stream.pendingDeadLetters.map(String.init) ?? "?")")
            }
        }
        let letters = status.deadLetterQueue
        print("\(letters.name): \(letters.messages) waiting for the replay worker (\(letters.consumers) consumer\(letters.consumers == 1 ? "" : "s"))")
        if let byReason {
            let text = byReason.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            print("pending dead letters: \(byReason.isEmpty ? "none" : text)")
        } else {
            printError("(set STORE_URL or --store-url to see parked keys and stored dead letters)")
        }
        for stream in streams where stream.workQueues.contains(where: { $0.consumers == 0 }) {
            printError("warning: no consumer on a \(stream.stream) work queue: is the \(stream.stream)-worker running?")
        }
    }

    func validate() throws {
        for warehouse in warehouses where warehouse != "all" && !RoutingKey.isValidWarehouse(warehouse) {
            throw ValidationError("--warehouse: '\(warehouse)' is not a warehouse name ([A-Za-z0-9_-]{1,64}) nor `all`")
        }
    }

    private func runWarehouseView(topology: Topology, depths: [String: Queue], logger: Logger) async throws {
        guard store.url != nil else {
            throw ValidationError("--warehouse reads the workers' store: set STORE_URL or --store-url")
        }
        let streams = topology.streams.compactMap { EventStream(rawValue: $0.name) }
        let report = try await store.withStore(logger: logger) { store in
            try await Self.warehouses(warehouses, store: store, streams: streams)
        }
        var erpState: String?
        if erp.url != nil {
            erpState = try await erp.withClient(timeout: .seconds(3)) { await $0.health() } ? "up" : "down"
        }
        let queues = topology.streams.map { stream in
            StreamQueues(
                stream: stream.name,
                waiting: stream.workQueues.reduce(0) { $0 + Int(depths[$1]?.messages ?? 0) },
                inRetry: topology.retry.tiers.reduce(0) {
                    $0 + Int(depths[topology.retryQueue(stream: stream.name, tier: $1)]?.messages ?? 0)
                })
        }
        let result = WarehouseReport(warehouses: report, queues: queues, erp: erpState)
        if json { return try printJSON(result) }
        Self.printWarehouses(result)
    }
}
