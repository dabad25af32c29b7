import ArgumentParser
import Foundation
import WarehouseSyncCore
import WarehouseSyncSimulation

@main
struct WMSSimulatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wms-simulator",
        abstract: "Deterministic WMS event simulator: a seeded day of warehouse events, and what a correct pipeline makes of it.",
        version: "0.1.0",
        subcommands: [Day.self, Check.self]
    )
}

struct Day: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a simulated day of events (one JSON object per line) and its manifest.",
        discussion: """
            The same options always give byte-identical files. The events file holds every message \
            a line can carry, in stream order: events, duplicates and invalid lines (which \
            `whsync publish` reports and skips). Routing mismatches need a wrong routing key, which \
            a line cannot carry: they are only in the manifest, with the routing key to use. \
            See docs/simulator.md.
            """)

    @Option(help: "Seed of every random choice.")
    var seed: UInt64 = 1
    @Option(help: "Warehouses WH1…WH<n> (1-99).")
    var warehouses = 5
    @Option(help: "SKUs SKU-0001… (1-9999).")
    var skus = 50
    @Option(help: "Events of the undisturbed day (before duplicates and invalid ones are added).")
    var events = 2000
    @Option(help: "The day, YYYY-MM-DD (UTC).")
    var date = "2025-01-15"
    @Option(name: .customLong("out-of-order"), help: "Fraction of events swapped with a later event of the same key (0-1).")
    var outOfOrder = 0.0
    @Option(name: .customLong("out-of-order-window"), help: "How many events of the same key ahead a swap may reach.")
    var outOfOrderWindow = 3
    @Option(help: "Verbatim re-emissions, as a fraction of --events (0-1).")
    var duplicates = 0.0
    @Option(help: "Deliberately invalid messages, as a fraction of --events (0-1).")
    var invalid = 0.0
    @Option(help: "Keys with one event withheld for good (the key parks).")
    var gaps = 0
    @Option(help: "The events' source field.")
    var source = "wms-sim"
    @Option(name: .shortAndLong, help: "Events file, or - for stdout.")
    var output = "events.jsonl"
    @Option(help: "Manifest file (JSON): counts and the expected outcome.")
    var manifest: String?
    @Option(name: .customLong("master-data"), help: "Also write the reference ERP's seed file (warehouses and SKUs).")
    var masterData: String?
    @Option(help: "Also write the WMS's snapshot at the end of the day, for whsync reconcile (JSON lines).")
    var snapshot: String?
    @Flag(help: "No summary on stderr.")
    var quiet = false

    func run() throws {
        let options = SimulationOptions(
            seed: seed, warehouses: warehouses, skus: skus, events: events, date: date, outOfOrder: outOfOrder,
            outOfOrderWindow: outOfOrderWindow, duplicates: duplicates, invalid: invalid, gaps: gaps, source: source)
        let day: SimulatedDay
        do {
            day = try SimulatedDay(options: options)
        } catch {
            throw ValidationError(error.description)
        }
        if output == "-" {
            try day.writeEventsFile(to: .standardOutput)
        } else {
            try writeStreaming(to: output) { try day.writeEventsFile(to: $0) }
        }
        if let manifest {
            try write(day.manifest.encoded(), to: manifest)
        }
        if let masterData {
            var seedFile = Data(day.catalogue.referenceERPSeed.serializedBytes(pretty: true))
            seedFile.append(UInt8(ascii: "\n"))
            try write(seedFile, to: masterData)
        }
        if let snapshot {
            try write(Data(day.snapshot()), to: snapshot)
        }
        if !quiet { printSummary(day) }
    }

    /// Whether `path` exists and is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO): it
    /// is written in place, never replaced by a rename (run as root, a rename over `/dev/null`
    /// leaves the machine without one).
    private func isSpecialFile(_ path: String) -> Bool {
        guard let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType else { return false }
        return type != .typeRegular
    }

    /// Writes through `body` to a temporary file next to `path`, then renames it into place; a
    /// special file (``isSpecialFile(_:)``) is written directly.
    private func writeStreaming(to path: String, _ body: (FileHandle) throws -> Void) throws {
        if isSpecialFile(path) {
            guard let handle = FileHandle(forWritingAtPath: path) else { throw ValidationError("cannot write \(path)") }
            do {
                try body(handle)
                try handle.close()
            } catch {
                throw ValidationError("cannot write \(path): \(error.localizedDescription)")
            }
            return
        }
        let temporary = path + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
            let handle = FileHandle(forWritingAtPath: temporary)
        else {
            throw ValidationError("cannot write \(path)")
        }
        do {
            try body(handle)
            try handle.close()
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: temporary, toPath: path)
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
    }

    private func write(_ data: Data, to path: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path), options: isSpecialFile(path) ? [] : .atomic)
        } catch {
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
    }

    private func printSummary(_ day: SimulatedDay) {
        let counts = day.manifest.counts
        let expected = day.manifest.expected
        var text = "wms-simulator: seed \(day.options.seed), \(day.catalogue.warehouses.count) warehouses, "
        text += "\(day.catalogue.skus.count) SKUs, \(day.options.date)\n"
        for stream in EventStream.allCases {
            guard let s = counts.byStream[stream.rawValue] else { continue }
            text += "  \(stream.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)) \(s.generated) events"
            text += ", \(s.duplicates) duplicates, \(s.invalid) invalid, \(s.withheld) withheld; \(s.publishable) publishable, \(s.posted) to post\n"
        }
        let kinds = counts.invalidByKind.sorted { $0.key < $1.key }.filter { $0.value > 0 }
            .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        text += "  invalid: \(counts.invalid)\(kinds.isEmpty ? "" : " (\(kinds))")"
        if let mismatches = counts.invalidByKind[InvalidKind.routingMismatch.rawValue], mismatches > 0 {
            text += "; the \(mismatches) routing mismatches are in the manifest only"
        }
        text += "\n  out of order: \(counts.displaced) events displaced; gaps: \(expected.parkedKeys.count) keys to park\n"
        text += "  \(output == "-" ? "stdout" : output): \(counts.lines) lines (\(counts.publishable) valid events)"
        if let manifest { text += "; manifest: \(manifest)" }
        if let masterData { text += "; master data: \(masterData)" }
        if let snapshot { text += "; snapshot: \(snapshot)" }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// `wms-simulator check`: the ledger audit (``LedgerAudit``) of an ERP's documents against a
/// day's manifest: what the integration tests check, for scripts (`scripts/proof`).
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit an ERP's documents: lost, posted twice, unexpected, out of sequence order. Exit 1 when any.",
        discussion: """
            DOCUMENTS holds the reference ERP's GET /documents rows, one JSON object per line (or \
            whole answers, {"documents": [...]}, one per line), read as a stream: a ledger of 10^6 \
            rows in position order is audited keeping one count per eventId. With --manifest, its \
            expected.postedEventIds must each be booked exactly once and nothing else; with \
            --expected, the eventIds listed in that file (one per line) are added to them. \
            Without either, only "twice" and "order" are checked. With --replayed, postings of \
            those eventIds (dead letters replayed, e.g. retries-exhausted ones) below their key's \
            position are counted as "replayed out of order" (by design, DESIGN §6), not as \
            order violations.
            """)

    @Option(help: "The ERP's documents as JSON lines; '-' reads stdin.")
    var documents: String
    @Option(help: "A day's manifest (wms-simulator day --manifest).")
    var manifest: String?
    @Option(help: "A file of further expected eventIds, one per line.")
    var expected: String?
    @Option(help: "A file of eventIds replayed from dead letters, one per line.")
    var replayed: String?
    @Flag(help: "The audit as one JSON object on stdout.")
    var json = false

    func run() throws {
        var expectedIds: Set<String>?
        if let manifest {
            let data = try readAll(manifest)
            expectedIds = Set(try SimulationManifest.decode(data).expected.postedEventIds)
        }
        if let expected {
            expectedIds = (expectedIds ?? []).union(try idLines(expected))
        }
        let replayedIds = try replayed.map(idLines) ?? []
        var accumulator = LedgerAudit.Accumulator()
        try forEachDocument { accumulator.add($0) }
        let audit: LedgerAudit
        if accumulator.unsorted == 0 {
            audit = accumulator.audit(expectedEventIds: expectedIds, replayedEventIds: replayedIds)
        } else {
            // not in position order: read them again, all at once, and sort
            var rows: [LedgerAudit.Document] = []
            try forEachDocument { rows.append($0) }
            audit = LedgerAudit(documents: rows, expectedEventIds: expectedIds, replayedEventIds: replayedIds)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            FileHandle.standardOutput.write(try encoder.encode(audit) + Data("\n".utf8))
        } else {
            var text = "booked \(audit.booked)"
            if let expected = audit.expected { text += ", expected \(expected)" }
            text += ", lost \(audit.lost.count), posted twice \(audit.postedTwice.count)"
            text += ", unexpected \(audit.unexpected.count), order violations \(audit.orderViolations.count)"
            text += ", replayed out of order \(audit.replayedOutOfOrder.count)\n"
            for (name, list) in [("lost", audit.lost), ("posted twice", audit.postedTwice), ("unexpected", audit.unexpected),
                ("order", audit.orderViolations), ("replayed out of order", audit.replayedOutOfOrder)] where !list.isEmpty {
                text += "  \(name): \(list.prefix(10).joined(separator: ", "))\(list.count > 10 ? ", ..." : "")\n"
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if !audit.isClean { throw ExitCode(1) }
    }

    /// The eventIds of a file, one per line (blank lines skipped).
    private func idLines(_ path: String) throws -> Set<String> {
        var ids = Set<String>()
        try forEachLine(path) { line, _ in
            let id = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            if !id.isEmpty { ids.insert(id) }
        }
        return ids
    }

    /// Each document of DOCUMENTS in file order.
    private func forEachDocument(_ body: (LedgerAudit.Document) -> Void) throws {
        try forEachLine(documents) { line, number in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw ValidationError("\(documents):\(number): not a JSON object")
            }
            for row in (object["documents"] as? [[String: Any]]) ?? [object] {
                guard let document = LedgerAudit.Document(row: row) else {
                    throw ValidationError("\(documents):\(number): a document without eventId, type, key or sequence")
                }
                body(document)
            }
        }
    }

    /// Each non-empty line of `path` ('-': stdin) with its number, read 1 MiB at a time.
    private func forEachLine(_ path: String, _ body: (ArraySlice<UInt8>, Int) throws -> Void) throws {
        let handle: FileHandle
        if path == "-" {
            handle = FileHandle.standardInput
        } else {
            guard let file = FileHandle(forReadingAtPath: path) else { throw ValidationError("cannot read \(path)") }
            handle = file
        }
        defer { if path != "-" { try? handle.close() } }
        var pending: [UInt8] = []
        var number = 0
        func lines(final: Bool) throws {
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                number += 1
                var line = pending[start..<newline]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                if !line.isEmpty { try body(line, number) }
                start = newline + 1
            }
            if final, start < pending.endIndex {
                number += 1
                try body(pending[start...], number)
                start = pending.endIndex
            }
            pending.removeSubrange(..<start)
        }
        while true {
            let chunk: Data
            do {
                guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { break }
                chunk = data
            } catch {
                throw ValidationError("cannot read \(path): \(error.localizedDescription)")
            }
            pending.append(contentsOf: chunk)
            try lines(final: false)
        }
        try lines(final: true)
    }

    private func readAll(_ path: String) throws -> Data {
        if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("cannot read \(path): \(error.localizedDescription)")
        }
    }
}
