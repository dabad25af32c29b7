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
//
// `load` warms up, then sends `count` POSTs of about 300 bytes over `concurrency` keep-alive
// connections (one request in flight on each) and prints one machine-readable line:
// `RESULT requests_per_s=… client_ms_per_request=… server_ms_per_request=…`. CPU is process CPU
// time (CLOCK_PROCESS_CPUTIME_ID) over the timed part; the server reports its own on `GET /cpu`.
import AsyncHTTPClient
import Dispatch
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOPosix

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

func load(url: String, count: Int, concurrency: Int) async throws {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency + 1)
    configuration.redirectConfiguration = .disallow
    configuration.decompression = .disabled
    configuration.tracing.tracer = nil
    let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
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
    func serverCPU() async throws -> Int64 {
        let response = try await client.execute(HTTPClientRequest(url: url + "/cpu"), deadline: .now() + .seconds(10))
        let text = String(buffer: try await response.body.collect(upTo: 1024))
        guard let value = Int64(text) else { fail("GET /cpu answered '\(text)'") }
        return value
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
    let serverBefore = try await serverCPU()
    let clientBefore = processCPUMicroseconds()
    let started = ContinuousClock.now
    try await run(count)
    let elapsed = ContinuousClock.now - started
    let clientAfter = processCPUMicroseconds()
    let serverAfter = try await serverCPU()
    try await client.shutdown()

    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    func perRequest(_ microseconds: Int64) -> String { String(format: "%.4f", Double(microseconds) / 1000 / Double(count)) }
    print(
        "RESULT requests_per_s=\(Int(Double(count) / seconds)) client_ms_per_request=\(perRequest(clientAfter - clientBefore))"
            + " server_ms_per_request=\(perRequest(serverAfter - serverBefore))")
}

// MARK: Main

let arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: "--\(name)"), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

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
default:
    fail("usage: http-floor serve --mode hummingbird|nio|nio-task | http-floor load --url URL [--count N] [--concurrency N]")
}
