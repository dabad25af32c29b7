// The load side of bench/e2e-throughput: generates `inventory.delta/1` events over a fixed set of
// keys and publishes them to `wms.events` exactly as `whsync publish` does (same properties and
// headers, mandatory, publisher confirms), either as fast as the broker confirms (a backlog) or
// paced at a steady rate with `occurredAt` stamped at the moment of publishing (for
// publish-to-posted latency). A `drain` mode consumes and acks a queue: the raw consume rate.
//
//   e2e-publisher publish --url URL --master-data FILE --keys 300 --first 0 --count 50000 \
//       --id-prefix e2e-1 [--rate 3000] [--window 1000]
//   e2e-publisher drain --url URL --queue erp.inventory --count 50000 --prefetch 100
//
// Event i (from --first) goes to key i % keys with sequence i / keys + 1, so consecutive ranges
// (0..<N, then N..<N+M) continue every key's sequence without a gap.
import AMQPClient
import Foundation
import Logging
import Synchronization

struct Arguments {
    var mode = ""
    var url = "amqp://guest:guest@127.0.0.1:5672/"
    var masterData = ""
    var keys = 300
    var first = 0
    var count = 50_000
    var idPrefix = "e2e"
    var rate = 0.0
    var window = 1000
    var queue = "erp.inventory"
    var prefetch: UInt16 = 100
    var exchange = "wms.events"

    init() {
        var iterator = CommandLine.arguments.dropFirst().makeIterator()
        guard let mode = iterator.next(), mode == "publish" || mode == "drain" else {
            fail("usage: e2e-publisher publish|drain --flag value ... (see bench/README.md)")
        }
        self.mode = mode
        while let flag = iterator.next() {
            guard let value = iterator.next() else { fail("\(flag) needs a value") }
            func int() -> Int {
                guard let n = Int(value), n >= 0 else { fail("\(flag): '\(value)' is not a whole number") }
                return n
            }
            switch flag {
            case "--url": url = value
            case "--master-data": masterData = value
            case "--keys": keys = max(1, int())
            case "--first": first = int()
            case "--count": count = int()
            case "--id-prefix": idPrefix = value
            case "--rate":
                guard let r = Double(value), r >= 0 else { fail("--rate: '\(value)' is not a rate") }
                rate = r
            case "--window": window = max(1, int())
            case "--queue": queue = value
            case "--prefetch": prefetch = UInt16(clamping: max(1, int()))
            case "--exchange": exchange = value
            default: fail("unknown flag \(flag)")
            }
        }
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("e2e-publisher: \(message)\n".utf8))
    exit(1)
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

// MARK: - Events

/// Warehouses and SKUs (with their unit of measure) from the reference ERP's seed file, so every
/// generated event posts.
struct Catalogue {
    struct SKU {
        let code: String
        let uom: String
    }

    let warehouses: [String]
    let skus: [SKU]

    init(path: String) {
        guard let data = FileManager.default.contents(atPath: path),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let warehouses = root["warehouses"] as? [[String: Any]],
            let skus = root["skus"] as? [[String: Any]]
        else { fail("--master-data: cannot read warehouses and skus from '\(path)'") }
        self.warehouses = warehouses.compactMap { $0["code"] as? String }
        self.skus = skus.compactMap { entry in
            guard let code = entry["sku"] as? String, let uom = entry["uom"] as? String else { return nil }
            return SKU(code: code, uom: uom)
        }
        guard !self.warehouses.isEmpty, !self.skus.isEmpty else { fail("--master-data: no warehouses or no skus in '\(path)'") }
    }
}

struct Key {
    let warehouse: String
    let sku: Catalogue.SKU
    var sequencingKey: String { "\(warehouse)/\(sku.code)" }
}

/// `keys` distinct warehouse/SKU pairs, spread over every warehouse.
func makeKeys(_ catalogue: Catalogue, count: Int) -> [Key] {
    let w = catalogue.warehouses.count
    let available = w * catalogue.skus.count
    guard count <= available else { fail("--keys \(count): the master data has only \(available) warehouse/SKU pairs") }
    return (0..<count).map { k in Key(warehouse: catalogue.warehouses[k % w], sku: catalogue.skus[k / w]) }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds) of the current wall-clock time.
func nowRFC3339() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var seconds = ts.tv_sec
    var parts = tm()
    gmtime_r(&seconds, &parts)
    let micros = Int(ts.tv_nsec) / 1000
    func pad(_ n: Int32, _ width: Int = 2) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    let fraction = String(micros)
    return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T"
        + "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))."
        + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
}

/// Event `index`: its message as `whsync publish` would send it (DESIGN §2).
func message(index: Int, keys: [Key], arguments: Arguments) -> OutboundMessage {
    let key = keys[index % keys.count]
    let sequence = index / keys.count + 1
    let eventId = "\(arguments.idPrefix)-\(index)"
    // Alternating signs keep balances near zero; KG goods carry three fraction digits and a lot.
    let magnitude = index % 7 + 1
    let sign = index % 2 == 0 ? "" : "-"
    let isKG = key.sku.uom == "KG"
    let quantity = isKG ? "\(sign)\(magnitude).250" : "\(sign)\(magnitude)"
    let lot = isKG ? ",\"lot\":\"LOT-\(index % 13)\"" : ""
    let correlationId = "MV-\(arguments.idPrefix)-\(index)"
    let body = "{\"schema\":\"inventory.delta/1\",\"eventId\":\"\(eventId)\",\"occurredAt\":\"\(nowRFC3339())\","
        + "\"warehouse\":\"\(key.warehouse)\",\"sequence\":\(sequence),\"correlationId\":\"\(correlationId)\","
        + "\"source\":\"e2e-bench\",\"sku\":\"\(key.sku.code)\",\"quantity\":\(quantity),\"uom\":\"\(key.sku.uom)\","
        + "\"status\":\"available\",\"reason\":\"adjustment\",\"location\":\"A-\(index % 40 + 1)-\(index % 5 + 1)\"\(lot)}"
    return OutboundMessage(
        exchange: arguments.exchange,
        routingKey: "inventory.\(key.warehouse)",
        body: Array(body.utf8),
        properties: AMQPProperties(
            contentType: "application/json",
            headers: ["partition-key": .string(key.sequencingKey)],
            deliveryMode: .persistent,
            correlationId: correlationId,
            messageId: eventId,
            type: "inventory.delta/1"),
        mandatory: true)
}

// MARK: - Publish

/// Confirms outstanding and failures, shared with the connection thread's completions.
final class Confirms: Sendable {
    private struct State {
        var pending = 0
        var failed = 0
        var firstError: String?
        var waiter: CheckedContinuation<Void, Never>?
        var waitBelow = 0
    }

    private let state = Mutex(State())

    func sent() { state.withLock { $0.pending += 1 } }

    func done(_ result: Result<Void, AMQPError>) {
        let resume = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.pending -= 1
            if case .failure(let error) = result {
                s.failed += 1
                if s.firstError == nil { s.firstError = "\(error)" }
            }
            guard let waiter = s.waiter, s.pending < s.waitBelow else { return nil }
            s.waiter = nil
            return waiter
        }
        resume?.resume()
    }

    /// Suspends until fewer than `limit` confirms are outstanding.
    func wait(below limit: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if s.pending < limit { return true }
                s.waiter = continuation
                s.waitBelow = limit
                return false
            }
            if ready { continuation.resume() }
        }
    }

    var failures: (Int, String?) { state.withLock { ($0.failed, $0.firstError) } }
}

@concurrent
func publish(_ arguments: Arguments) async throws {
    let catalogue = Catalogue(path: arguments.masterData)
    let keys = makeKeys(catalogue, count: arguments.keys)
    let configuration = try AMQPConfiguration(url: arguments.url, connectionName: "e2e-publisher")
    let connection = try await AMQPConnection.connect(
        configuration, options: .init(publisherConfirms: true, reconnect: nil), logger: Logger(label: "e2e-publisher"))
    let confirms = Confirms()
    let clock = ContinuousClock()
    let start = clock.now
    let end = arguments.first + arguments.count
    var index = arguments.first
    var bytes = 0
    var maxLag = Duration.zero
    if arguments.rate <= 0 {
        // Backlog: as fast as confirms come back, `window` messages in flight.
        while index < end {
            await confirms.wait(below: arguments.window)
            let m = message(index: index, keys: keys, arguments: arguments)
            bytes += m.body.count
            confirms.sent()
            connection.publish(m) { confirms.done($0) }
            index += 1
        }
    } else {
        // Paced: every tick, publish what the rate owes by now, each stamped as it goes out.
        let tick = Duration.milliseconds(2)
        while index < end, confirms.failures.0 == 0 {
            let elapsed = seconds(start.duration(to: clock.now))
            let due = min(end, arguments.first + Int(elapsed * arguments.rate) + 1)
            if due - index > 1 {
                let lag = Duration.seconds(Double(due - index - 1) / arguments.rate)
                if lag > maxLag { maxLag = lag }
            }
            while index < due {
                await confirms.wait(below: max(arguments.window, 10_000))
                let m = message(index: index, keys: keys, arguments: arguments)
                bytes += m.body.count
                confirms.sent()
                connection.publish(m) { confirms.done($0) }
                index += 1
            }
            if index < end { try await clock.sleep(for: tick) }
        }
        if index < end {
            await confirms.wait(below: 1)
            fail("stopped at event \(index): \(confirms.failures.0) publishes not confirmed (first: \(confirms.failures.1 ?? "?"))")
        }
    }
    await confirms.wait(below: 1)
    let elapsed = seconds(start.duration(to: clock.now))
    await connection.close()
    let (failed, firstError) = confirms.failures
    let published = arguments.count - failed
    print(
        "e2e-publisher published \(published) events (\(arguments.first)..<\(end)) over \(keys.count) keys in "
            + String(format: "%.3f s: %.0f msgs/s, mean body %d B", elapsed, Double(published) / elapsed, bytes / max(1, arguments.count))
            + (arguments.rate > 0 ? String(format: ", target %.0f/s, max lag %.1f ms", arguments.rate, seconds(maxLag) * 1000) : ""))
    print("e2e-publisher publish msgs/s: \(Int(Double(published) / elapsed)) mean_body_bytes: \(bytes / max(1, arguments.count))")
    if failed > 0 { fail("\(failed) publishes not confirmed (first: \(firstError ?? "?"))") }
}

// MARK: - Drain

@concurrent
func drain(_ arguments: Arguments) async throws {
    let configuration = try AMQPConfiguration(url: arguments.url, connectionName: "e2e-drain")
    let connection = try await AMQPConnection.connect(configuration, options: .init(reconnect: nil), logger: Logger(label: "e2e-drain"))
    let start = ContinuousClock.now
    let consumer = try await connection.consume(queue: arguments.queue, prefetch: arguments.prefetch)
    var received = 0
    if arguments.count > 0 {
        for await delivery in consumer.deliveries {
            delivery.ack()
            received += 1
            if received == arguments.count { break }
        }
    }
    let elapsed = seconds(start.duration(to: .now))
    await consumer.cancel()
    await connection.close()
    guard received == arguments.count else { fail("drained only \(received) of \(arguments.count) from \(arguments.queue)") }
    print("e2e-publisher drained \(received) msgs from \(arguments.queue) with prefetch \(arguments.prefetch) in " + String(format: "%.3f s", elapsed))
    print("e2e-publisher consume-ack msgs/s: \(Int(Double(received) / elapsed))")
}

let arguments = Arguments()
do {
    if arguments.mode == "publish" {
        guard !arguments.masterData.isEmpty else { fail("publish needs --master-data FILE") }
        try await publish(arguments)
    } else {
        try await drain(arguments)
    }
} catch {
    fail("\(error)")
}
