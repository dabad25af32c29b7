import ArgumentParser
import Foundation
import Synchronization
import WarehouseSyncOperations
import WarehouseSyncProcessKit
import WarehouseSyncPublisher
import WarehouseSyncSettings
import WarehouseSyncTracing
import WarehouseSyncWorker

struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish events (one JSON object per line) to wms.events with publisher confirms.",
        discussion: """
            Each line is validated as the workers will validate it; an invalid line is reported with \
            its line number and reason and not published. Exit status: 0 when every line was \
            published, 1 when any line was rejected or not confirmed. With TRACEPARENT (and \
            TRACESTATE) set, every event carries that W3C trace on (docs/tracing.md).
            """)

    @Argument(help: "File of events, or - for stdin.")
    var input: String
    @Option(help: "Exchange to publish to.")
    var exchange = RoutingKey.contractExchange
    @Option(help: "Extra WMS status codes, e.g. inventory.QC=quality-hold,shipment.SHP=shipped (default: $STATUS_MAP)")
    var statusMap: String?
    @OptionGroup var broker: BrokerOptions

    func run() async throws {
        var mapping = StatusMapping.default
        if let text = statusMap ?? environmentValue("STATUS_MAP") {
            mapping = try mapping.merging(StatusMapping(parsing: text))
        }
        let handle = try openInput(input)
        let progress = ProgressLine()
        // The file is one trace (docs/tracing.md): a child of $TRACEPARENT when the caller set it
        // (OpenTelemetry's environment carrier), exported when OTEL_EXPORTER_OTLP_ENDPOINT is set.
        try ProcessTracing.bootstrap(serviceName: "whsync", logger: broker.logger())
        let environment = ProcessInfo.processInfo.environment
        let parent = TraceHeaders.context(from: [
            TraceHeaders.traceparent: environment["TRACEPARENT"], TraceHeaders.tracestate: environment["TRACESTATE"],
        ].compactMapValues { $0 })
        let publisher = try await EventPublisher.connect(
            .init(
                amqp: broker.configuration(connectionName: "whsync publish"), exchange: exchange,
                decoder: EventDecoder(statusMapping: mapping)),
            logger: broker.logger())
        let summary: EventFilePublisher.Summary
        do {
            summary = try await ProcessTracing.withExporter(logger: broker.logger()) {
                try await TraceSpans.run("whsync publish", context: parent, kind: .producer) {
                    try await EventFilePublisher(publisher: publisher).publish(
                        lines: LineReader(handle: handle),
                        report: { problem in
                            progress.clear()
                            printError(problem.description)
                        },
                        progress: { progress.show($0) })
                }
            }
        } catch {
            await publisher.close()
            throw error
        }
        await publisher.close()
        progress.clear()
        let seconds = summary.elapsed.timeInterval
        printError(
            "published \(summary.published), rejected \(summary.rejected) (invalid), failed \(summary.failed) "
                + "in \(String(format: "%.1f", seconds)) s (\(Int(summary.rate)) events/s)")
        if summary.rejected > 0 || summary.failed > 0 { throw ExitCode(1) }
    }
}

/// A self-overwriting progress line on stderr, only when stderr is a terminal.
final class ProgressLine: Sendable {
    private let enabled = isatty(STDERR_FILENO) != 0
    private let lastShown = Mutex<ContinuousClock.Instant?>(nil)

    func show(_ summary: EventFilePublisher.Summary) {
        guard enabled else { return }
        let due = lastShown.withLock { last -> Bool in
            let now = ContinuousClock.now
            if let last, last.duration(to: now) < .milliseconds(250) { return false }
            last = now
            return true
        }
        if due {
            FileHandle.standardError.write(Data("\r\u{1B}[Kpublished \(summary.published), rejected \(summary.rejected), failed \(summary.failed), \(Int(summary.rate))/s".utf8))
        }
    }

    func clear() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
