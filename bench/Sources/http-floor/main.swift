// The floor of one posting's HTTP exchange in this stack, for bench/http-floor: the worker's
// client (AsyncHTTPClient, configured as HTTPERPClient configures it) against a server that does
// no work but answer `201` with a small JSON document, built three ways:
//
//   hummingbird  Hummingbird 2 (what reference-erp runs on): a route that collects the body
//   nio          a bare SwiftNIO HTTP/1.1 handler that answers on its event loop
//   nio-task     the same handler, but each request goes through a Swift Task that waits for
//                another thread (as a route awaiting its database thread does) before answering
//
//   http-floor serve --mode nio            # prints "listening PORT", serves until killed
//   http-floor load --url http://127.0.0.1:PORT --count 40000 [--concurrency 32]
//   http-floor relay --amqp-url URL --queue erp.inventory --url http://127.0.0.1:PORT --count N \
//       [--prefetch 100] [--map] [--batch N] [--pids beam=PID,...]
//
// `load` warms up, then sends `count` POSTs of about 300 bytes over `concurrency` keep-alive
// connections (one request in flight on each) and prints one machine-readable line:
// `RESULT requests_per_s=… client_ms_per_request=… server_ms_per_request=…`. CPU is process CPU
// time (CLOCK_PROCESS_CPUTIME_ID) over the timed part; the server reports its own on `GET /cpu`.
//
// `relay` is a skeleton of the worker under the fixed contracts and nothing else (the floors of
// bench/e2e-throughput): it consumes `count` messages from a queue, POSTs each once over as many
// connections as the worker's ERP client keeps, waits for the answer, then acks. No sequencing,
// and no store unless `--durable` (below). Plain, it posts the body as it came to a floor server: what one event costs the
// consumer, the broker and the server with no work on either side. With `--map` it decodes and
// maps each event as the worker does and posts it with the worker's own ERP client, to
// reference-erp: the worker without its store, against the real stand-in. With `--batch N` the
// deliveries are gathered as the worker's PostingBatcher gathers them (its RoundGatherer: at most N
// items, two requests in flight, one item per sequencing key when mapped) and posted to
// `/postings:batch`: raw bodies as `{"items":[…]}` to the floor server, mapped documents with the
// worker's ERP client's batch call to reference-erp (DESIGN §3a). It prints
// `RESULT events_per_s=… relay_ms_per_event=… LABEL_ms_per_event=…` (CPU per event of each
// `--pids` process), timed from the first delivery to the last ack.
//
// `--durable PATH` (with `--map`) adds the worker's two durable steps around each post and no
// more: the claim before the post (docs/worker.md: the replica race on a re-emitted sequence)
// and the record before the ack (DESIGN §5), each one row of a SQLite table at PATH
// (`synchronous = FULL`, as the worker's store), written in rounds gathered as the worker's
// DecisionRounds gathers its decisions (one round in flight, at most 256 = ROUND_MAX's default,
// claims and records together). No reads, no sequencing, no per-key queue: the ceiling of this
// design with this store, this ERP and `prefetch` deliveries in hand.
import AMQPClient
import AsyncHTTPClient
import Dispatch
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ProcessMemory
import Synchronization
import WarehouseSyncCore
import WarehouseSyncERP
import WarehouseSyncSQLite
import WarehouseSyncWorker

/// The body every server answers with: the size of a reference-erp 201.
let answer = ByteBuffer(string: #"{"documentId":"IM-00000001","type":"inventory-movement","idempotencyKey":"e2e-1-1","eventId":"e2e-1-1","sequence":1,"warehouse":"WH01","key":"WH01/SKU-00001","hasDiscrepancy":false,"postedAt":"2026-11-23T08:00:00.000Z"}"# + "\n")

/// This process's CPU time so far, in microseconds.
func processCPUMicroseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Int64(time.tv_sec) * 1_000_000 + Int64(time.tv_nsec) / 1000
}

/// Unbuffered: the script reads the line from a file while the server runs.
func announce(port: Int?) {
    FileHandle.standardOutput.write(Data("listening \(port ?? 0)\n".utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("http-floor: \(message)\n".utf8))
    exit(2)
}

// MARK: Servers

func serveHummingbird() async throws {
    let router = Router()
    router.post("/inventory-movements") { request, context -> Response in
        var request = request
        _ = try await request.collectBody(upTo: 1 << 20)
        return Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
    }
    router.get("/cpu") { _, _ in "\(processCPUMicroseconds())" }
    let application = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in announce(port: channel.localAddress?.port) })
    try await application.runService()
}

/// Answers each request once its end arrived; with `hop`, only after a Task waited for another
/// thread, then back on the channel's event loop.
final class FloorHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let otherThread = DispatchQueue(label: "http-floor.database")
    let hop: Bool
    private var isCPURequest = false

    init(hop: Bool) { self.hop = hop }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            isCPURequest = head.uri == "/cpu"
        case .body:
            break
        case .end:
            if isCPURequest {
                respond(context, status: .ok, body: ByteBuffer(string: "\(processCPUMicroseconds())"))
            } else if hop {
                let loop = context.eventLoop
                let bound = NIOLoopBound(context, eventLoop: loop)
                Task {
                    await withCheckedContinuation { continuation in Self.otherThread.async { continuation.resume() } }
                    loop.execute { self.respond(bound.value, status: .created, body: answer) }
                }
            } else {
                respond(context, status: .created, body: answer)
            }
        }
    }

    private func respond(_ context: ChannelHandlerContext, status: HTTPResponseStatus, body: ByteBuffer) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

func serveNIO(hop: Bool) async throws {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(FloorHandler(hop: hop))
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    announce(port: channel.localAddress?.port)
    try await channel.closeFuture.get()
}

// MARK: Load

/// The client as HTTPERPClient configures it, with `connections` keep-alive connections.
func makeClient(connections: Int) -> HTTPClient {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections + 1)
    configuration.redirectConfiguration = .disallow
    configuration.decompression = .disabled
    configuration.tracing.tracer = nil
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}

/// The server's CPU time so far (its `GET /cpu`), in microseconds.
func serverCPU(_ client: HTTPClient, url: String) async throws -> Int64 {
    let response = try await client.execute(HTTPClientRequest(url: url + "/cpu"), deadline: .now() + .seconds(10))
    let text = String(buffer: try await response.body.collect(upTo: 1024))
    guard let value = Int64(text) else { fail("GET /cpu answered '\(text)'") }
    return value
}

/// Milliseconds per item of `microseconds` spread over `count` items.
func perItem(_ microseconds: Int64, _ count: Int) -> String { String(format: "%.4f", Double(microseconds) / 1000 / Double(count)) }

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func load(url: String, count: Int, concurrency: Int) async throws {
    let client = makeClient(connections: concurrency)
    let body = ByteBuffer(string: #"{"eventId":"e2e-1-00000001","sequence":1,"warehouse":"WH01","sku":"SKU-00001","quantity":"5","uom":"EA","status":"available","reason":"adjustment","occurredAt":"2026-11-23T08:00:00.000Z","correlationId":"bench-correlation-0001","lot":null,"source":"wms-simulator"}"#)

    func post(_ number: Int) async throws {
        var request = HTTPClientRequest(url: url + "/inventory-movements")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: "floor-\(number)")
        request.headers.add(name: "X-Correlation-ID", value: "bench-correlation-0001")
        request.body = .bytes(body)
        let response = try await client.execute(request, deadline: .now() + .seconds(30))
        guard response.status == .created else { fail("POST answered \(response.status)") }
        for try await _ in response.body {}
    }
    func run(_ total: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<concurrency {
                group.addTask {
                    for number in stride(from: lane, to: total, by: concurrency) { try await post(number) }
                }
            }
            try await group.waitForAll()
        }
    }

    try await run(min(count, 2000))  // warm-up: connections open, caches warm
    let serverBefore = try await serverCPU(client, url: url)
    let clientBefore = processCPUMicroseconds()
    let started = ContinuousClock.now
    try await run(count)
    let elapsed = ContinuousClock.now - started
    let clientAfter = processCPUMicroseconds()
    let serverAfter = try await serverCPU(client, url: url)
    try await client.shutdown()
    print(
        "RESULT requests_per_s=\(Int(Double(count) / seconds(elapsed))) client_ms_per_request=\(perItem(clientAfter - clientBefore, count))"
            + " server_ms_per_request=\(perItem(serverAfter - serverBefore, count))")
}

/// CPU time (utime + stime) of process `pid` so far, in microseconds, from /proc.
func processCPUMicroseconds(pid: Int32) -> Int64 {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let afterName = stat.lastIndex(of: ")")
    else { fail("cannot read /proc/\(pid)/stat") }
    // Fields after the name start at field 3 (state); utime and stime are fields 14 and 15.
    let fields = stat[stat.index(after: afterName)...].split(separator: " ")
    guard fields.count > 13, let user = Int64(fields[11]), let system = Int64(fields[12]) else { fail("unexpected /proc/\(pid)/stat") }
    let ticksPerSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))
    return (user + system) * 1_000_000 / ticksPerSecond
}

/// How the relay posts a delivery.
enum RelayPosting {
    /// The body as it came, with the worker's headers, to `/inventory-movements` of a floor server.
    case raw(HTTPClient, url: String)
    /// Decoded and mapped as the worker does (EventDecoder, PostingDocument) and posted with the
    /// worker's own ERP client, to reference-erp.
    case mapped(HTTPERPClient)

    func post(_ delivery: AMQPDelivery) async {
        switch self {
        case .raw(let client, let url):
            var request = HTTPClientRequest(url: url + "/inventory-movements")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Idempotency-Key", value: delivery.properties.messageId ?? "relay")
            request.headers.add(name: "X-Correlation-ID", value: delivery.properties.correlationId ?? "relay")
            request.body = .bytes(delivery.body)
            do {
                let response = try await client.execute(request, deadline: .now() + .seconds(30))
                for try await _ in response.body {}
                guard response.status == .created else { fail("POST answered \(response.status)") }
            } catch {
                fail("POST failed: \(error)")
            }
        case .mapped(let erp):
            let event: WarehouseEvent
            do {
                event = try EventDecoder().decode(delivery.body, routingKey: delivery.routingKey)
            } catch {
                fail("invalid event: \(error)")
            }
            switch await erp.post(PostingDocument(event: event)) {
            case .posted: break
            case let answer: fail("the ERP answered \(answer)")
            }
        }
    }

    /// A delivery as an item of a batch request, and the sequencing key that keeps it apart
    /// from its key's other items (none for a raw body: the floor server looks at nothing).
    func batchItem(_ delivery: AMQPDelivery) -> (item: RelayBatchItem, key: String?) {
        switch self {
        case .raw: return (.raw(delivery.body), nil)
        case .mapped:
            let event: WarehouseEvent
            do {
                event = try EventDecoder().decode(delivery.body, routingKey: delivery.routingKey)
            } catch {
                fail("invalid event: \(error)")
            }
            return (.mapped(PostingDocument(event: event)), event.sequencingKey)
        }
    }

    /// Posts `items` as one batch request; every item must be posted.
    func post(batch items: [RelayBatchItem]) async {
        switch self {
        case .raw(let client, let url):
            var body = Array(#"{"items":["#.utf8)
            for (index, item) in items.enumerated() {
                guard case .raw(let bytes) = item else { fail("a mapped item in a raw batch") }
                if index > 0 { body.append(UInt8(ascii: ",")) }
                body += bytes
            }
            body += Array("]}".utf8)
            var request = HTTPClientRequest(url: url + "/postings:batch")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
            do {
                let response = try await client.execute(request, deadline: .now() + .seconds(30))
                for try await _ in response.body {}
                guard (200..<300).contains(response.status.code) else { fail("POST answered \(response.status)") }
            } catch {
                fail("POST failed: \(error)")
            }
        case .mapped(let erp):
            let documents = items.map { item -> PostingDocument in
                guard case .mapped(let document) = item else { fail("a raw item in a mapped batch") }
                return document
            }
            for answer in await erp.post(batch: PostingBatch(documents)) {
                guard case .posted = answer else { fail("the ERP answered an item \(answer)") }
            }
        }
    }

    func shutdown() async throws {
        switch self {
        case .raw(let client, _): try await client.shutdown()
        case .mapped(let erp): try await erp.shutdown()
        }
    }
}

/// The contract's two durable steps around a post (`--durable`): the claim before it, the record
/// after it, each a row written in the next store round.
final class DurableChain: Sendable {
    enum Step: Sendable {
        case claim(eventId: String)
        case record(eventId: String)
    }

    private let database: SQLiteDatabase
    private let rounds: RoundGatherer<Step, Bool>

    init(path: String) async {
        let database: SQLiteDatabase
        do {
            database = try await SQLiteDatabase(path: path)
        } catch {
            fail("cannot open \(path): \(error)")
        }
        do {
            try await database.write { db in
                try db.execute("CREATE TABLE IF NOT EXISTS chain (event_id TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID")
            }
        } catch {
            await database.close()
            fail("cannot set up \(path): \(error)")
        }
        self.database = database
        // As the worker's DecisionRounds: one round in flight while the next gathers.
        rounds = RoundGatherer(
            maxInFlight: 1, maxItems: WorkerService.defaultRoundMax,
            handle: { steps in
                do {
                    try await database.write { db in
                        for step in steps {
                            switch step {
                            case .claim(let eventId):
                                try db.execute(
                                    "INSERT INTO chain (event_id, state) VALUES (?, 'posting') ON CONFLICT (event_id) DO UPDATE SET state = 'posting'",
                                    [.text(eventId)])
                            case .record(let eventId):
                                guard try db.execute("UPDATE chain SET state = 'posted' WHERE event_id = ?", [.text(eventId)]) == 1 else {
                                    fail("the record of \(eventId) found no claim")
                                }
                            }
                        }
                    }
                } catch {
                    fail("the chain's store failed: \(error)")
                }
                return steps.map { _ in true }
            },
            unanswered: { _ in false })
    }

    /// Returns once `step` is committed.
    func commit(_ step: Step) async {
        let eventId = switch step { case .claim(let id), .record(let id): id }
        guard await rounds.submit(step, tokens: [eventId]) else { fail("a store round answered short") }
    }

    func close() async { await database.close() }
}

/// An item of the relay's batch requests.
enum RelayBatchItem: Sendable {
    case raw([UInt8])
    case mapped(PostingDocument)
}

/// Consume → POST → 201 → ack for `count` messages of `queue`, every delivery in flight at once
/// (the broker's `prefetch` bounds them, as it bounds a worker's). A failed POST stops the relay
/// at once: its delivery would stay unacked and stall the consumer at `prefetch`. `others` are
/// processes (label, pid) whose CPU per event over the same window is reported too.
@concurrent
func relay(
    amqpURL: String, queue: String, count: Int, prefetch: UInt16, posting: RelayPosting, batchMax: Int, chain: DurableChain?,
    others: [(String, Int32)]
) async throws {
    // As the worker's PostingBatcher gathers its postings (two batch requests in flight).
    let gatherer = batchMax > 0
        ? RoundGatherer<RelayBatchItem, Bool>(
            maxInFlight: 2, maxItems: batchMax,
            handle: { items in
                await posting.post(batch: items)
                return items.map { _ in true }
            },
            unanswered: { _ in false })
        : nil
    let configuration = try AMQPConfiguration(url: amqpURL, connectionName: "http-floor-relay")
    let connection = try await AMQPConnection.connect(configuration, options: .init(reconnect: nil), logger: Logger(label: "relay"))
    let consumer = try await connection.consume(queue: queue, prefetch: prefetch)
    final class Acked: Sendable { let count = Atomic<Int>(0) }
    let acked = Acked()
    var received = 0
    var started: (clock: ContinuousClock.Instant, cpu: Int64, others: [Int64])?
    await withDiscardingTaskGroup { group in
        for await delivery in consumer.deliveries {
            if started == nil {
                started = (.now, processCPUMicroseconds(), others.map { processCPUMicroseconds(pid: $0.1) })
            }
            received += 1
            group.addTask {
                // The event's row: its message id (the eventId, as the WMS and e2e-publisher set it).
                let eventId = chain == nil ? "" : delivery.properties.messageId ?? "tag-\(delivery.deliveryTag)"
                if let chain { await chain.commit(.claim(eventId: eventId)) }
                if let gatherer {
                    let (item, key) = posting.batchItem(delivery)
                    guard await gatherer.submit(item, tokens: key.map { [$0] } ?? []) else { fail("a batch answered short") }
                } else {
                    await posting.post(delivery)
                }
                if let chain { await chain.commit(.record(eventId: eventId)) }
                delivery.ack()
                acked.count.add(1, ordering: .relaxed)
            }
            if received == count { break }
        }
    }
    guard let started else { fail("no delivery from \(queue)") }
    let elapsed = ContinuousClock.now - started.clock
    let cpu = processCPUMicroseconds() - started.cpu
    let othersCPU = zip(others, started.others).map { processCPUMicroseconds(pid: $0.0.1) - $0.1 }
    await consumer.cancel()
    await connection.close()
    await chain?.close()
    try await posting.shutdown()
    let posted = acked.count.load(ordering: .relaxed)
    guard posted == count else { fail("relayed \(posted) of \(count)") }
    var line = "RESULT events_per_s=\(Int(Double(count) / seconds(elapsed))) relay_ms_per_event=\(perItem(cpu, count))"
    for ((label, _), microseconds) in zip(others, othersCPU) {
        line += " \(label)_ms_per_event=\(perItem(microseconds, count))"
    }
    print(line)
}

// MARK: Main

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

// The floors are measured with the allocator set as the product's processes set it.
ProcessMemory.configureAllocator(environment: ProcessInfo.processInfo.environment)

switch arguments.first {
case "serve":
    switch option("mode") {
    case "hummingbird": try await serveHummingbird()
    case "nio": try await serveNIO(hop: false)
    case "nio-task": try await serveNIO(hop: true)
    default: fail("serve --mode hummingbird|nio|nio-task")
    }
case "load":
    guard let url = option("url"), let count = Int(option("count") ?? "40000"), count > 0,
          let concurrency = Int(option("concurrency") ?? "32"), concurrency > 0
    else { fail("load --url URL [--count N] [--concurrency N]") }
    try await load(url: url, count: count, concurrency: concurrency)
case "relay":
    let usage = "relay --amqp-url URL --queue NAME --url URL --count N [--prefetch N] [--map [--durable PATH]] [--batch N] [--pids LABEL=PID,...]"
    guard let amqpURL = option("amqp-url"), let queue = option("queue"), let url = option("url"),
          let count = Int(option("count") ?? ""), count > 0, let prefetch = UInt16(option("prefetch") ?? "100"), prefetch > 0,
          let batchMax = Int(option("batch") ?? "0"), (0...PostingBatch.maxItems).contains(batchMax)
    else { fail(usage) }
    let others: [(String, Int32)] = (option("pids") ?? "").split(separator: ",").map { entry in
        let parts = entry.split(separator: "=")
        guard parts.count == 2, let pid = Int32(parts[1]) else { fail(usage) }
        return (String(parts[0]), pid)
    }
    // As many connections as the worker's ERP client keeps (one per posting slot).
    let connections = ERPClientConfiguration.defaultMaxConcurrentPosts
    let posting: RelayPosting
    if arguments.contains("--map") {
        posting = .mapped(HTTPERPClient(configuration: try ERPClientConfiguration(baseURL: url, maxConcurrentPosts: connections)))
    } else {
        posting = .raw(makeClient(connections: connections), url: url)
    }
    let durablePath = option("durable")
    if durablePath != nil, !arguments.contains("--map") { fail("--durable needs --map: " + usage) }
    var chain: DurableChain?
    if let durablePath { chain = await DurableChain(path: durablePath) }
    try await relay(
        amqpURL: amqpURL, queue: queue, count: count, prefetch: prefetch, posting: posting, batchMax: batchMax, chain: chain,
        others: others)
default:
    fail("usage: http-floor serve --mode hummingbird|nio|nio-task | http-floor load --url URL [--count N] [--concurrency N]"
        + " | http-floor relay --amqp-url URL --queue NAME --url URL --count N [--prefetch N] [--map [--durable PATH]] [--batch N]"
        + " [--pids LABEL=PID,...]")
}
