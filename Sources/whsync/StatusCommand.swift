import AMQPClient
import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncRuntime
import WarehouseSyncStore

/// `whsync status`: is anything stuck? Queue depths and consumers from the broker; parked keys,
/// waiting keys and pending dead letters from the store (when `STORE_URL` is set).
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Queue depths and consumers, parked keys and pending dead letters, per stream.")
    @Option(help: "Topology file. Default: topology/topology.json here or in a parent.") var file: String?
    @Flag(help: "One JSON object on stdout.") var json = false
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
        let pendingDeadLetters: Int?
    }

    struct Status: Encodable {
        let streams: [StreamStatus]
        let deadLetterQueue: Queue
        /// Pending dead letters in the store by reason; `nil` without `STORE_URL`.
        let pendingDeadLettersByReason: [String: Int]?
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

        var gaps: [GapsCommand.KeyGap]?
        var pending: [DeadLetterRecord]?
        if store.url != nil {
            (gaps, pending) = try await store.withStore(logger: logger) { store in
                (try await GapsCommand.gaps(store, streams: EventStream.allCases),
                 try await DLQCommand.all(store, DeadLetterFilter(status: .pending)))
            }
        }
        let streams = topology.streams.map { stream in
            StreamStatus(
                stream: stream.name,
                workQueues: stream.workQueues.compactMap { depths[$0] },
                retryQueues: topology.retry.tiers.compactMap { depths[topology.retryQueue(stream: stream.name, tier: $0)] },
                parkedKeys: gaps?.filter { $0.stream == stream.name && $0.parked }.count,
                waitingKeys: gaps?.filter { $0.stream == stream.name && !$0.parked }.count,
                pendingDeadLetters: pending?.filter { $0.stream?.rawValue == stream.name }.count)
        }
        let byReason = pending.map { Dictionary(grouping: $0, by: \.reason.rawValue).mapValues(\.count) }
        let status = Status(
            streams: streams, deadLetterQueue: depths[topology.deadLetter.queue]!, pendingDeadLettersByReason: byReason)
        if json { return try printJSON(status) }

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
}
