import AMQPClient
import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation

#if canImport(FoundationNetworking)
import FoundationNetworking
import WarehouseSyncProcessKit
import WarehouseSyncWorker
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncSettings
import WarehouseSyncOps
#endif

/// A long-running child process (the reference ERP, a worker) with its output in a log file.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let logFile: URL
    private let process: Process

    init(name: String, executable: String, arguments: [String] = [], environment: [String: String], logFile: URL) throws {
        self.name = name
        self.logFile = logFile
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let output = try FileHandle(forWritingTo: logFile)
        output.seekToEndOfFile()
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the exit and returns the status; `nil` if it is still running at the deadline.
    func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            guard ContinuousClock.now < deadline else { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return process.terminationStatus
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    func stop(grace: Duration = .seconds(10)) async {
        signal(SIGTERM)
        if await waitForExit(timeout: grace) == nil {
            signal(SIGKILL)
            _ = await waitForExit(timeout: .seconds(5))
        }
    }

    /// Waits until the log has a line matching `pattern` and returns its first capture group.
    func awaitLog(_ pattern: String, timeout: Duration = .seconds(30)) async throws -> String {
        let regex = try NSRegularExpression(pattern: pattern)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let text = log
            if let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) {
                let range = match.numberOfRanges > 1 ? match.range(at: 1) : match.range
                return String(text[Range(range, in: text)!])
            }
            guard isRunning else {
                throw TestBroker.ProcessFailure(description: "\(name) exited (\(process.terminationStatus)) before logging /\(pattern)/:\n\(text.suffix(3000))")
            }
            guard ContinuousClock.now < deadline else {
                throw TestBroker.ProcessFailure(description: "\(name) did not log /\(pattern)/ within \(timeout):\n\(text.suffix(3000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

/// A message as a WMS would publish it to `wms.events`.
struct RawMessage: Sendable {
    var routingKey: String
    var body: [UInt8]
}

/// A whole system on loopback for one test: a fresh virtual host with the topology applied, the
/// `reference-erp` executable with its own ledger, and worker executables, each started as a
/// real process; everything in one temp directory, removed by ``shutdown()``.
final class WorkerSystem: @unchecked Sendable {
    let directory: URL
    let amqpURL: String
    let amqp: AMQPConfiguration
    let vhost: String
    /// The virtual host is on the scratch broker, not the main one.
    let onScratch: Bool
    let erp: ChildProcess
    let erpURL: String
    /// The bearer token the ERP's own queries need, when the test started it with one.
    var erpToken: String?
    private(set) var workers: [EventStream: ChildProcess] = [:]
    /// Further processes of one stream (``startReplica(_:)``), beside ``workers``.
    private(set) var replicas: [ChildProcess] = []
    private var retired: [ChildProcess] = []
    let workerEnvironment: [String: String]
    let topologyFile: String
    /// The store every process of the system shares (`STORE_URL`): a SQLite file in the
    /// directory, as on one machine, unless the system was made with a PostgreSQL URL.
    let storeURL: String

    /// The SQLite file of the system's store (every test store but PostgreSQL's is one).
    func storePath() throws -> String {
        guard storeURL.hasPrefix("sqlite:") else { throw TestBroker.ProcessFailure(description: "not a SQLite store: \(storeURL)") }
        return String(storeURL.dropFirst("sqlite:".count))
    }

    /// Starts everything but the workers, runs `body`, and always shuts everything down (an
    /// unstructured cleanup task could outlive the test process and leave children behind).
    static func with(
        masterData: Catalogue? = nil, erpArguments: [String] = [], workerEnvironment: [String: String] = [:],
        inventoryPartitions: Int = 0, storeURL: String? = nil, onScratch: Bool = false,
        _ body: (WorkerSystem) async throws -> Void
    ) async throws {
        let system = try await WorkerSystem(
            masterData: masterData, erpArguments: erpArguments, workerEnvironment: workerEnvironment,
            inventoryPartitions: inventoryPartitions, storeURL: storeURL, onScratch: onScratch)
        do {
            try await body(system)
        } catch {
            await system.shutdown()
            throw error
        }
        await system.shutdown()
    }

    /// Starts everything but the workers. `masterData` seeds the ERP (default: the repository's
    /// seed file); `erpArguments` add fault flags.
    private init(
        masterData: Catalogue?, erpArguments: [String], workerEnvironment: [String: String], inventoryPartitions: Int,
        storeURL: String?, onScratch: Bool
    ) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("workers-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.storeURL = storeURL ?? "sqlite:" + directory.appendingPathComponent("store.db").path
        let host = try await TestBroker.makeVirtualHost(onScratch: onScratch)
        (amqp, amqpURL, vhost) = host
        self.onScratch = onScratch
        var topologyFile = TestBroker.repoRoot().appendingPathComponent("topology/topology.json").path
        if inventoryPartitions > 0 {
            // The repository's topology with the inventory stream split into partitions.
            var text = try String(contentsOfFile: topologyFile, encoding: .utf8)
            let original = #""queue": "erp.inventory",\#n      "partitions": 0"#
            guard text.contains(original) else { throw TestBroker.ProcessFailure(description: "topology.json changed shape") }
            text = text.replacingOccurrences(of: original, with: #""queue": "erp.inventory",\#n      "partitions": \#(inventoryPartitions)"#)
            topologyFile = directory.appendingPathComponent("topology.json").path
            try text.write(toFile: topologyFile, atomically: true, encoding: .utf8)
        }
        self.topologyFile = topologyFile
        try await TestBroker.applyTopology(amqpURL: amqpURL, file: topologyFile)

        var seed = TestBroker.repoRoot().appendingPathComponent("deploy/reference-erp/seed.json")
        if let masterData {
            seed = directory.appendingPathComponent("master-data.json")
            try Data(masterData.referenceERPSeed.serializedBytes()).write(to: seed)
        }
        erp = try ChildProcess(
            name: "reference-erp", executable: try TestBroker.executablePath("reference-erp"),
            arguments: ["--port", "0", "--db", directory.appendingPathComponent("erp.db").path, "--seed-file", seed.path] + erpArguments,
            environment: ["LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin"],
            logFile: directory.appendingPathComponent("erp.log"))
        erpURL = "http://" + (try await erp.awaitLog(#"erp\.address=(127\.0\.0\.1:[0-9]+)"#))
        self.workerEnvironment = [
            "AMQP_URL": amqpURL,
            "ERP_BASE_URL": erpURL,
            "METRICS_PORT": "0",
            "TOPOLOGY_FILE": self.topologyFile,
            "LOG_LEVEL": "info",
            "PATH": "/usr/bin:/bin",
        ].merging(workerEnvironment) { _, new in new }
    }

    /// Starts (or restarts) the worker of `stream` and waits until it consumes.
    @discardableResult
    func startWorker(_ stream: EventStream, environment: [String: String] = [:]) async throws -> ChildProcess {
        if let old = workers[stream] { retired.append(old) }
        let worker = try await launchWorker(stream, name: "\(stream)-worker", log: "\(stream)-worker.log", environment: environment)
        workers[stream] = worker
        return worker
    }

    /// Stops the worker of `stream` gracefully (it must exit 0) and starts it again with
    /// `environment`, as an operator does after mending its configuration.
    @discardableResult
    func restartWorker(_ stream: EventStream, environment: [String: String] = [:]) async throws -> ChildProcess {
        let old = try #require(workers[stream], "no \(stream) worker to restart")
        old.signal(SIGTERM)
        let status = await old.waitForExit(timeout: .seconds(30))
        #expect(status == 0, "\(old.name) did not exit 0 on SIGTERM:\n\(old.log.suffix(2000))")
        return try await startWorker(stream, environment: environment)
    }

    /// Starts one more process of `stream`'s worker beside the others, and waits until it consumes.
    @discardableResult
    func startReplica(_ stream: EventStream) async throws -> ChildProcess {
        let number = replicas.count + 1
        let replica = try await launchWorker(
            stream, name: "\(stream)-worker replica \(number)", log: "\(stream)-worker-\(number).log", environment: [:])
        replicas.append(replica)
        return replica
    }

    private func launchWorker(
        _ stream: EventStream, name: String, log: String, environment: [String: String]
    ) async throws -> ChildProcess {
        var variables = workerEnvironment.merging(environment) { _, new in new }
        variables["STORE_URL"] = storeURL
        let worker = try ChildProcess(
            name: name, executable: try TestBroker.executablePath("\(stream)-worker"), environment: variables,
            logFile: directory.appendingPathComponent(log))
        _ = try await worker.awaitLog("worker starting")
        return worker
    }

    /// Runs the `replay-worker` executable on the system's store (started and consuming before
    /// `body`), and always stops it gracefully afterwards, whether `body` stopped it or not.
    func withReplayWorker(
        environment: [String: String] = [:], _ body: (ChildProcess) async throws -> Void
    ) async throws {
        var variables = workerEnvironment.merging(environment) { _, new in new }
        variables["STORE_URL"] = storeURL
        let worker = try ChildProcess(
            name: "replay-worker", executable: try TestBroker.executablePath("replay-worker"), environment: variables,
            logFile: directory.appendingPathComponent("replay-worker.log"))
        do {
            _ = try await worker.awaitLog("replay worker starting")
            try await body(worker)
        } catch {
            await worker.stop()
            throw error
        }
        await worker.stop()
    }

    /// A fresh database on the test PostgreSQL server, as a `STORE_URL`.
    static func makePostgresDatabase() async throws -> String {
        let server = try TestBroker.env("WHSYNC_TEST_POSTGRES_URL")
        let name = "workers_\(UUID().uuidString.prefix(8).lowercased())"
        let created = try await TestBroker.run("/usr/bin/psql", [server, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE \(name)"])
        guard created.status == 0 else { throw TestBroker.ProcessFailure(description: "CREATE DATABASE failed: \(created.stderr)") }
        guard let slash = server.lastIndex(of: "/") else { throw TestBroker.ProcessFailure(description: "odd URL \(server)") }
        return String(server[...slash]) + name
    }

    /// The worker's operations endpoint, from its log.
    func metricsURL(_ stream: EventStream) async throws -> String {
        let worker = try #require(workers[stream])
        return "http://" + (try await worker.awaitLog(#"ops\.address=([0-9.]+:[0-9]+)"#))
    }

    /// The worker's `/readyz`: its status and the checks it names as failing.
    func readiness(_ stream: EventStream) async throws -> (status: Int, failing: [String]) {
        let url = URL(string: try await metricsURL(stream) + "/readyz")!
        let (data, response) = try await URLSession.shared.data(from: url)
        let body = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return ((response as! HTTPURLResponse).statusCode, body?["failing"] as? [String] ?? [])
    }

    /// The value of a counter in the worker's `/metrics` (0 when it has no sample yet).
    func metric(_ stream: EventStream, _ name: String, labels: String = "") async throws -> Double {
        try await metricSample(stream, name, labels: labels) ?? 0
    }

    /// The value of a metric in the worker's `/metrics`; `nil` when it has no sample.
    func metricSample(_ stream: EventStream, _ name: String, labels: String = "") async throws -> Double? {
        let text = String(decoding: try await Self.get(try await metricsURL(stream) + "/metrics"), as: UTF8.self)
        let prefix = name + "{stream=\"\(stream)\"\(labels.isEmpty ? "" : ",\(labels)")} "
        for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
            return Double(line.dropFirst(prefix.count))
        }
        return nil
    }

    /// The sum of the samples of `name` whose labels are the stream's and include every one of
    /// `labels` (`warehouse="WH1"`): one series or all of them.
    func metricSum(_ stream: EventStream, _ name: String, _ labels: String...) async throws -> Double {
        let text = String(decoding: try await Self.get(try await metricsURL(stream) + "/metrics"), as: UTF8.self)
        var sum = 0.0
        for line in text.split(separator: "\n") where line.hasPrefix(name + "{stream=\"\(stream)\"") {
            guard let end = line.lastIndex(of: "}") else { continue }
            let labelText = line[..<end]
            guard labels.allSatisfy({ labelText.contains($0) }) else { continue }
            sum += Double(line[line.index(after: end)...].trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return sum
    }

    /// Publishes raw messages to `wms.events` with confirms: valid events with the contract's
    /// properties (stamped `whsync-published-at`, as `whsync publish` and the gateway do),
    /// anything else as it is (what a misbehaving WMS would send).
    func publish(_ messages: [SimulatedMessage]) async throws {
        try await publish(messages.map { RawMessage(routingKey: $0.routingKey, body: $0.body) })
    }

    func publish(_ messages: [RawMessage]) async throws {
        let connection = try await TestBroker.connect(amqp, confirms: true)
        defer { Task { await connection.close() } }
        let decoder = EventDecoder()
        let outbound = messages.map { message -> OutboundMessage in
            if let event = try? decoder.decode(message.body, routingKey: message.routingKey) {
                return OutboundMessage(event: event, body: message.body).stampedPublished()
            }
            return OutboundMessage(
                exchange: "wms.events", routingKey: message.routingKey, body: message.body,
                properties: AMQPProperties(contentType: "application/json", deliveryMode: .persistent))
        }
        for chunk in stride(from: 0, to: outbound.count, by: 500) {
            let results = await connection.publish(Array(outbound[chunk..<min(chunk + 500, outbound.count)]))
            for result in results { try result.get() }
        }
    }

    /// `GET` on the ERP, parsed as a JSON object.
    func erpJSON(_ path: String) async throws -> [String: Any] {
        let data = try await Self.get(erpURL + path, bearer: erpToken)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Every document the ERP booked, in booking order (`GET /documents`, page by page).
    func erpDocuments() async throws -> [[String: Any]] {
        var documents: [[String: Any]] = []
        var after = 0
        while true {
            let rows = try await erpJSON("/documents?limit=10000&after=\(after)")["documents"] as? [[String: Any]] ?? []
            guard let last = rows.last else { return documents }
            documents += rows
            after = try #require(last["position"] as? Int, "a document without a position")
        }
    }

    /// Documents the ERP has booked (its ledger, not request counts).
    func erpDocumentCount() async throws -> Int {
        let documents = try await erpJSON("/stats")["documents"] as? [String: Int] ?? [:]
        return documents.values.reduce(0, +)
    }

    /// Every balance row as `warehouse/sku/status → quantity`.
    func erpBalances() async throws -> [String: String] {
        let rows = try await erpJSON("/balances")["balances"] as? [[String: Any]] ?? []
        var balances: [String: String] = [:]
        for row in rows {
            let key = "\(row["warehouse"]!)/\(row["sku"]!)/\(row["status"]!)"
            balances[key] = "\(row["quantity"]!)"
        }
        return balances
    }

    /// Every dead letter in `whsync.dead-letters`, consumed until `count` arrived or `timeout`.
    func deadLetters(count: Int, timeout: Duration = .seconds(30)) async throws -> [AMQPDelivery] {
        let connection = try await TestBroker.connect(amqp)
        defer { Task { await connection.close() } }
        let consumer = try await connection.consume(queue: "whsync.dead-letters", prefetch: 500)
        return await receive(consumer, count: count, timeout: timeout)
    }

    /// Messages ready in `queue` (AMQP passive declare).
    func queueDepth(_ queue: String) async throws -> UInt32 {
        try await TestBroker.queueDepth(amqp, queue)
    }

    /// Polls `condition` until it holds or `timeout` passes; then fails with `explanation`.
    func waitUntil(
        _ explanation: @autoclosure () -> String, timeout: Duration, _ condition: () async throws -> Bool
    ) async throws {
        try await TestBroker.waitUntil(explanation(), timeout: timeout, context: {
            (Array(workers.values) + replicas).map { "--- \($0.name):\n\($0.log.suffix(4000))" }.joined(separator: "\n")
        }, condition)
    }

    /// Stops every process gracefully, removes the virtual host and the directory (kept with
    /// `KEEP_TEST_DIR=1` for inspection).
    func shutdown() async {
        for worker in Array(workers.values) + replicas { await worker.stop() }
        await erp.stop()
        await TestBroker.deleteVirtualHost(vhost, onScratch: onScratch)
        if ProcessInfo.processInfo.environment["KEEP_TEST_DIR"] == nil {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    static func get(_ url: String, bearer token: String? = nil) async throws -> Data {
        var request = URLRequest(url: URL(string: url)!)
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as! HTTPURLResponse).statusCode
        guard (200..<300).contains(status) else {
            throw TestBroker.ProcessFailure(description: "GET \(url) answered HTTP \(status)")
        }
        return data
    }
}
