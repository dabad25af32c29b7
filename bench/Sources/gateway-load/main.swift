// The load side of bench/gateway-load: CLIENTS concurrent clients, each posting batches of BATCH
// `inventory.delta/1` events as JSON lines to wms-gateway's `POST /events:batch`, signed with
// HMAC-SHA256 (or a bearer token), one request in flight per client, until COUNT events are sent
// or the time limit passes. Every answer must be 202 with `accepted` equal to the batch's size;
// anything else is counted and the first few printed, and the run exits 1 if any event was not
// accepted.
//
//   gateway-load --url http://127.0.0.1:PORT --hmac-secret-file FILE [--clients 8] [--batch 100]
//       [--count 100000] [--time-limit 300] [--keys 300] [--id-prefix load-1]
//   gateway-load --url http://127.0.0.1:PORT --token-file FILE ...
//
// Client c owns the keys k with k % clients == c and sends its events over them in order (event n
// of client c: key n % its key count, sequence n / its key count + 1), and the batches
// c, c + clients, c + 2 clients, ... of the run; as each client has one request in flight, every
// key's sequence reaches the exchange in order. All bodies are built before the clock starts, so
// the timed part costs the client only signing, sending and checking the answers.
//
// Output: one line per run on stdout (accepted events/s, requests/s, request latency p50/p99/max,
// errors), then a machine-readable `RESULT key=value ...` line; diagnostics go to stderr.
import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import WarehouseSyncCore
import WarehouseSyncGateway
import WarehouseSyncSettings

struct GatewayLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway-load",
        abstract: "Load test for wms-gateway: concurrent clients posting signed batches to POST /events:batch.")

    @Option(help: "The gateway's base URL (loopback only).")
    var url = "http://127.0.0.1:8080"
    @Option(help: "Concurrent clients, each with one request in flight (the connection pool has as many connections).")
    var clients = 8
    @Option(help: "Events per request.")
    var batch = 100
    @Option(help: "Events to send in all.")
    var count = 100_000
    @Option(help: "Seconds after which no new request is started (the run is bounded in count and time).")
    var timeLimit = 300.0
    @Option(help: "Distinct warehouse/SKU keys (at least --clients).")
    var keys = 300
    @Option(help: "Warehouses the keys are spread over.")
    var warehouses = 5
    @Option(help: "Prefix of the eventIds (give each round its own).")
    var idPrefix = "load"
    @Option(help: "File holding the gateway's HMAC secret (GATEWAY_HMAC_SECRET_FILE): requests are signed.")
    var hmacSecretFile: String?
    @Option(help: "File holding the gateway's bearer token (GATEWAY_TOKEN_FILE): requests carry Authorization: Bearer.")
    var tokenFile: String?
    @Option(help: "Seconds one request may take before it counts as an error.")
    var requestTimeout = 60
    @Option(help: "Errors printed in full (the rest are only counted).")
    var showErrors = 5

    func validate() throws {
        guard clients >= 1, batch >= 1, count >= 1, keys >= 1, warehouses >= 1, requestTimeout >= 1 else {
            throw ValidationError("--clients, --batch, --count, --keys, --warehouses and --request-timeout must be at least 1")
        }
        guard keys >= clients else { throw ValidationError("--keys (\(keys)) must be at least --clients (\(clients))") }
        guard timeLimit > 0 else { throw ValidationError("--time-limit must be positive") }
        guard count <= 5_000_000 else { throw ValidationError("--count is at most 5000000 (the bodies are built in memory first)") }
        guard (hmacSecretFile == nil) != (tokenFile == nil) else {
            throw ValidationError("give exactly one of --hmac-secret-file and --token-file")
        }
        guard let parsed = URL(string: url), parsed.scheme == "http", let host = parsed.host,
            ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host)
        else { throw ValidationError("--url must be http:// on loopback (127.0.0.1, localhost or ::1), not '\(url)'") }
    }

    func run() async throws {
        let credentials = try Credentials(hmacSecretFile: hmacSecretFile, tokenFile: tokenFile)
        let endpoint = url.hasSuffix("/") ? String(url.dropLast()) : url
        let plan = Plan(clients: clients, batch: batch, count: count, keys: keys, warehouses: warehouses, idPrefix: idPrefix)

        let buildStart = ContinuousClock.now
        let work = plan.buildBodies()
        let bodyBytes = work.reduce(0) { $0 + $1.reduce(0) { $0 + $1.bytes.count } }
        log(
            String(
                format: "built %d events in %d requests (%.1f MB, %d B per event) in %.2f s", count, plan.totalBatches,
                Double(bodyBytes) / 1_048_576, bodyBytes / count, buildStart.duration(to: .now).timeInterval))

        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: clients)
        configuration.httpVersion = .http1Only
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(Int64(requestTimeout)))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let outcome: Outcome
        do {
            // Opens the pool's connections (one per client) before the clock starts.
            try await warmUp(client, endpoint: endpoint)
            let cpuBefore = processCPUSeconds()
            var result = await load(client, endpoint: endpoint, work: work, credentials: credentials)
            result.clientCPU = processCPUSeconds() - cpuBefore
            outcome = result
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        report(outcome, plan: plan)
        if outcome.accepted != outcome.sent || outcome.errors > 0 { throw ExitCode(1) }
    }

    // MARK: Running

    func warmUp(_ client: HTTPClient, endpoint: String) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    let response = try await client.execute(HTTPClientRequest(url: endpoint + "/healthz"), timeout: .seconds(10))
                    _ = try await response.body.collect(upTo: 1 << 16)
                    guard response.status.code == 200 else {
                        throw Failure("GET \(endpoint)/healthz answered \(response.status.code): is the gateway there?")
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func load(_ client: HTTPClient, endpoint: String, work: [[Plan.Body]], credentials: Credentials) async -> Outcome {
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .seconds(timeLimit)
        let timeout = TimeAmount.seconds(Int64(requestTimeout))
        let target = endpoint + "/events:batch"
        let keep = showErrors
        var total = Outcome()
        await withTaskGroup(of: Outcome.self) { group in
            for bodies in work {
                group.addTask {
                    var outcome = Outcome()
                    outcome.latencies.reserveCapacity(bodies.count)
                    for body in bodies {
                        guard clock.now < deadline else {
                            outcome.stoppedByTime = true
                            break
                        }
                        var request = HTTPClientRequest(url: target)
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/x-ndjson")
                        credentials.sign(&request, body: body.bytes)
                        request.body = .bytes(body.buffer)
                        let sentAt = clock.now
                        outcome.sent += body.events
                        outcome.requests += 1
                        let problem: String?
                        do {
                            let response = try await client.execute(request, timeout: timeout)
                            let answer = try await response.body.collect(upTo: 16 << 20)
                            outcome.latencies.append(sentAt.duration(to: clock.now))
                            let (accepted, issue) = Self.check(status: response.status.code, answer: answer, events: body.events)
                            outcome.accepted += accepted
                            problem = issue
                        } catch {
                            outcome.latencies.append(sentAt.duration(to: clock.now))
                            problem = "request failed: \(error)"
                        }
                        if let problem {
                            outcome.errors += 1
                            if outcome.samples.count < keep { outcome.samples.append("batch \(body.index): \(problem)") }
                        }
                    }
                    outcome.end = clock.now
                    return outcome
                }
            }
            for await outcome in group { total.merge(outcome, keep: keep) }
        }
        total.elapsed = start.duration(to: total.end ?? clock.now)
        return total
    }

    struct Answer: Decodable {
        let accepted: Int
        let invalid: Int
        let failed: Int
    }

    /// Events accepted by one answer, and what was wrong with it (nil: 202 with all accepted).
    static func check(status: UInt, answer: ByteBuffer, events: Int) -> (accepted: Int, problem: String?) {
        let bytes = Data(answer.readableBytesView)
        let parsed = try? JSONDecoder().decode(Answer.self, from: bytes)
        let accepted = parsed?.accepted ?? 0
        if status == 202, accepted == events { return (accepted, nil) }
        var text = String(decoding: bytes.prefix(400), as: UTF8.self)
        if bytes.count > 400 { text += "..." }
        let counts = parsed.map { " (accepted \($0.accepted), invalid \($0.invalid), failed \($0.failed) of \(events))" } ?? ""
        return (accepted, "HTTP \(status)\(counts): \(text)")
    }

    // MARK: Reporting

    func report(_ outcome: Outcome, plan: Plan) {
        let elapsed = max(outcome.elapsed.timeInterval, 1e-9)
        let sorted = outcome.latencies.sorted()
        func percentile(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            // nearest rank
            let rank = min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))
            return sorted[rank].timeInterval * 1000
        }
        let eventsPerSecond = Double(outcome.accepted) / elapsed
        let requestsPerSecond = Double(outcome.requests) / elapsed
        let (p50, p99, pmax) = (percentile(0.50), percentile(0.99), sorted.last.map { $0.timeInterval * 1000 } ?? 0)
        for sample in outcome.samples { log("error: \(sample)") }
        if outcome.errors > outcome.samples.count { log("... and \(outcome.errors - outcome.samples.count) more errors") }
        if outcome.stoppedByTime { log("time limit (\(timeLimit) s) reached: sent \(outcome.sent) of \(count) events") }
        print(
            String(
                format: "gateway-load: %d of %d events accepted in %.2f s (%d clients, batches of %d): %.0f events/s, %.1f requests/s, "
                    + "latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; errors %d (events not accepted %d); client CPU %.2f s",
                outcome.accepted, outcome.sent, elapsed, clients, batch, eventsPerSecond, requestsPerSecond, p50, p99, pmax,
                outcome.errors, outcome.sent - outcome.accepted, outcome.clientCPU))
        print(
            String(
                format: "RESULT events_per_s=%.0f requests_per_s=%.1f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f errors=%d accepted=%d sent=%d "
                    + "planned=%d requests=%d seconds=%.3f clients=%d batch=%d stopped_by_time=%d client_cpu_s=%.2f",
                eventsPerSecond, requestsPerSecond, p50, p99, pmax, outcome.errors, outcome.accepted, outcome.sent, plan.count,
                outcome.requests, elapsed, clients, batch, outcome.stoppedByTime ? 1 : 0, outcome.clientCPU))
    }
}

/// A run that cannot go on (exit 1, without the usage text a ValidationError brings).
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What the clients did, summed.
struct Outcome: Sendable {
    var sent = 0
    var accepted = 0
    var requests = 0
    var errors = 0
    var samples: [String] = []
    var latencies: [Duration] = []
    var stoppedByTime = false
    /// When the last answer came.
    var end: ContinuousClock.Instant?
    var elapsed = Duration.zero
    /// This process's user + system CPU seconds over the timed part.
    var clientCPU = 0.0

    mutating func merge(_ other: Outcome, keep: Int) {
        sent += other.sent
        accepted += other.accepted
        requests += other.requests
        errors += other.errors
        samples += other.samples.prefix(max(0, keep - samples.count))
        latencies += other.latencies
        stoppedByTime = stoppedByTime || other.stoppedByTime
        if let e = other.end { end = end.map { max($0, e) } ?? e }
    }
}

/// How each request proves who sent it.
enum Credentials: Sendable {
    case hmac(secret: [UInt8])
    case bearer(header: String)

    init(hmacSecretFile: String?, tokenFile: String?) throws {
        func read(_ path: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read '\(path)'") }
            return SecretFile.contents(data)
        }
        if let hmacSecretFile {
            self = .hmac(secret: try read(hmacSecretFile))
        } else if let tokenFile {
            self = .bearer(header: "Bearer " + String(decoding: try read(tokenFile), as: UTF8.self))
        } else {
            throw ValidationError("no credentials")
        }
    }

    func sign(_ request: inout HTTPClientRequest, body: [UInt8]) {
        switch self {
        case .hmac(let secret):
            let timestamp = String(Int(Date().timeIntervalSince1970))
            request.headers.add(name: GatewayAuthentication.timestampHeader, value: timestamp)
            request.headers.add(
                name: GatewayAuthentication.signatureHeader,
                value: GatewayAuthentication.signature(secret: secret, timestamp: timestamp, body: body))
        case .bearer(let header):
            request.headers.add(name: "Authorization", value: header)
        }
    }
}

/// The events of the run, split over the clients.
struct Plan {
    struct Body: Sendable {
        /// The batch's number in the run, from 0.
        let index: Int
        let events: Int
        let bytes: [UInt8]
        let buffer: ByteBuffer
    }

    let clients: Int
    let batch: Int
    let count: Int
    let keys: Int
    let warehouses: Int
    let idPrefix: String

    var totalBatches: Int { (count + batch - 1) / batch }

    /// Per client, its requests' bodies (JSON lines) in the order it sends them.
    func buildBodies() -> [[Body]] {
        let stamp = Timestamp(Date(), fractionDigits: 3).text
        var perClient: [[Body]] = Array(repeating: [], count: clients)
        var nextEvent = Array(repeating: 0, count: clients)
        let owned: [[Int]] = (0..<clients).map { c in Array(stride(from: c, to: keys, by: clients)) }
        for index in 0..<totalBatches {
            let c = index % clients
            let events = min(batch, count - index * batch)
            var text = ""
            text.reserveCapacity(events * 340)
            for _ in 0..<events {
                let n = nextEvent[c]
                nextEvent[c] += 1
                let ownKeys = owned[c]
                text += event(client: c, number: n, key: ownKeys[n % ownKeys.count], sequence: n / ownKeys.count + 1, occurredAt: stamp)
                text += "\n"
            }
            let bytes = Array(text.utf8)
            perClient[c].append(Body(index: index, events: events, bytes: bytes, buffer: ByteBuffer(bytes: bytes)))
        }
        return perClient
    }

    /// One valid `inventory.delta/1` event (as bench/Sources/e2e-publisher writes them).
    func event(client: Int, number n: Int, key: Int, sequence: Int, occurredAt: String) -> String {
        let warehouse = "WH-\(key % warehouses + 1)"
        let isKG = key % 4 == 0
        let sku = "SKU-\(String(key + 100_000).dropFirst())"
        let magnitude = n % 7 + 1
        let sign = n % 2 == 0 ? "" : "-"
        let quantity = isKG ? "\(sign)\(magnitude).250" : "\(sign)\(magnitude)"
        let lot = isKG ? ",\"lot\":\"LOT-\(n % 13)\"" : ""
        let eventId = "\(idPrefix)-\(client)-\(n)"
        return "{\"schema\":\"inventory.delta/1\",\"eventId\":\"\(eventId)\",\"occurredAt\":\"\(occurredAt)\","
            + "\"warehouse\":\"\(warehouse)\",\"sequence\":\(sequence),\"correlationId\":\"MV-\(eventId)\","
            + "\"source\":\"gateway-load\",\"sku\":\"\(sku)\",\"quantity\":\(quantity),\"uom\":\"\(isKG ? "KG" : "EA")\","
            + "\"status\":\"available\",\"reason\":\"adjustment\",\"location\":\"A-\(n % 40 + 1)-\(n % 5 + 1)\"\(lot)}"
    }
}

/// User + system CPU time of this process so far (all threads), in seconds.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func log(_ message: String) {
    FileHandle.standardError.write(Data("gateway-load: \(message)\n".utf8))
}

// main.swift cannot carry @main, and in top-level code `await GatewayLoad.main()` (and
// `command.run()`) resolve to the synchronous overloads: an async function picks the async ones.
func runCommand() async {
    do {
        let command = try GatewayLoad.parse()
        try await command.run()
    } catch {
        GatewayLoad.exit(withError: error)
    }
}

await runCommand()
