import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncSimulation

@Suite("Disturbances and the manifest")
struct DisturbanceTests {
    let decoder = EventDecoder()

    @Test("every message but the invalid ones is a valid event of the day, published under its own routing key")
    func validMessages() throws {
        for day in Days.all {
            let bodies = Dictionary(uniqueKeysWithValues: day.events.map { ($0.eventId, $0.body) })
            var valid = 0
            for message in day.messages where message.kind != .invalid {
                let event = try decoder.decode(message.body, routingKey: message.routingKey)
                #expect(event.eventId == message.eventId)
                #expect(bodies[event.eventId] == message.body, "a message must be an event of the day, verbatim")
                valid += 1
            }
            #expect(valid == day.manifest.counts.publishable)
            #expect(day.manifest.counts.messages == day.messages.count)
        }
    }

    @Test("the events file is the messages a line can carry, in order, one per line")
    func eventsFile() throws {
        for day in Days.all {
            let lines = day.fileLines
            #expect(lines == day.messages.filter(\.isLine).map(\.body))
            #expect(lines.count == day.manifest.counts.lines)
            #expect(day.eventsFile().last == UInt8(ascii: "\n"))
            let publishable = lines.count { (try? decoder.decode($0)) != nil }
            #expect(publishable == day.manifest.counts.publishable)
        }
    }

    @Test("out of order: the displaced fraction is as asked, each swap within the window of its key")
    func outOfOrder() throws {
        for day in [Days.disturbed] + Days.small {
            // Per key, the sequences in arrival order (first arrivals only), against the sorted order.
            var arrivals: [String: [Int64]] = [:]
            var seen = Set<String>()
            for message in day.messages where message.kind == .event {
                let event = try decoder.decode(message.body)
                #expect(seen.insert(event.eventId).inserted)
                arrivals[event.stream.rawValue + " " + event.sequencingKey, default: []].append(event.sequence)
            }
            var displaced = 0
            for sequences in arrivals.values {
                let sorted = sequences.sorted()
                for (arrived, expected) in zip(sequences, sorted) where arrived != expected {
                    displaced += 1
                    #expect(abs(arrived - expected) <= Int64(day.options.outOfOrderWindow))
                }
            }
            #expect(displaced == day.manifest.counts.displaced)
            let asked = day.options.outOfOrder * Double(day.options.events)
            #expect(Double(displaced) >= asked * 0.9 - 2 && Double(displaced) <= asked + 2,
                    "seed \(day.options.seed): displaced \(displaced), asked \(asked)")
        }
        #expect(Days.clean.manifest.counts.displaced == 0)
    }

    @Test("duplicates: verbatim copies, as many as asked, each after its original and everything before it in its key")
    func duplicates() throws {
        for day in Days.all {
            var firstPosition: [String: Int] = [:]
            var latestOfKey: [String: [Int64: Int]] = [:]
            for (position, message) in day.messages.enumerated() where message.kind == .event {
                let event = try decoder.decode(message.body)
                firstPosition[event.eventId] = position
                latestOfKey[event.stream.rawValue + " " + event.sequencingKey, default: [:]][event.sequence] = position
            }
            var copies: [String] = []
            for (position, message) in day.messages.enumerated() where message.kind == .duplicate {
                let event = try decoder.decode(message.body, routingKey: message.routingKey)
                copies.append(event.eventId)
                let original = try #require(firstPosition[event.eventId])
                #expect(day.messages[original].body == message.body)
                let key = latestOfKey[event.stream.rawValue + " " + event.sequencingKey] ?? [:]
                for (sequence, earlier) in key where sequence <= event.sequence {
                    #expect(earlier < position, "the copy of \(event.eventId) overtakes sequence \(sequence)")
                }
            }
            #expect(copies.count == Int((day.options.duplicates * Double(day.options.events)).rounded()))
            #expect(Set(copies).count == copies.count)
            #expect(copies.sorted() == day.manifest.expected.duplicateEventIds)
            #expect(copies.count == day.manifest.expected.duplicates)
            let parked = Set(day.manifest.expected.parkedKeys.flatMap { [$0.withheldEventId] + $0.heldEventIds })
            #expect(parked.isDisjoint(with: copies), "no duplicates of parked keys")
        }
    }

    @Test("invalid messages: as many as asked, every kind, each failing on its documented field")
    func invalidMessages() throws {
        for day in Days.all {
            let entries = day.manifest.expected.invalid
            let asked = Int((day.options.invalid * Double(day.options.events)).rounded())
            #expect(entries.count == asked)
            #expect(day.manifest.counts.invalid == asked)
            #expect(day.messages.count { $0.kind == .invalid } == asked)
            if asked >= InvalidKind.allCases.count {
                #expect(Set(entries.map(\.kind)) == Set(InvalidKind.allCases.map(\.rawValue)))
            }
            let lines = day.fileLines
            for entry in entries {
                let message = day.messages[entry.position]
                #expect(message.kind == .invalid)
                #expect(message.line == entry.line)
                #expect(message.routingKey == entry.routingKey)
                #expect(message.invalidKind?.rawValue == entry.kind)
                let error = #expect(throws: EventValidationError.self) {
                    try decoder.decode(message.body, routingKey: entry.routingKey)
                }
                #expect(error?.violations.first?.field == entry.field, "\(entry.id) \(entry.kind): \(String(describing: error))")
                #expect(error?.description == entry.error)
                switch InvalidKind(rawValue: entry.kind) {
                case .routingMismatch:
                    #expect(entry.lineNumber == nil)
                    // The body itself is a valid event: only its routing is wrong.
                    let event = try decoder.decode(message.body)
                    #expect(event.routingKey != entry.routingKey)
                    #expect(event.eventId == entry.eventId)
                case .malformedJSON:
                    #expect(entry.eventId == nil)
                    #expect(entry.field == "body")
                    #expect(lines[try #require(entry.lineNumber) - 1] == message.body)
                    #expect((try? JSONValue(parsing: message.body)) == nil)
                case .missingField:
                    #expect(entry.error.hasPrefix(entry.field + ": is required"))
                    let object = try #require(try JSONValue(parsing: message.body).objectValue)
                    #expect(object[entry.field] == nil)
                default:
                    #expect(lines[try #require(entry.lineNumber) - 1] == message.body)
                    let object = try #require(try JSONValue(parsing: message.body).objectValue)
                    #expect(object["eventId"]?.stringValue == entry.eventId)
                }
                if let eventId = entry.eventId {
                    #expect(!day.events.contains { $0.eventId == eventId }, "an invalid message has an eventId of its own")
                }
            }
            #expect(entries.map(\.position) == entries.map(\.position).sorted())
        }
    }

    @Test("gaps: the withheld event is nowhere, its key's later events are held, the rest posts")
    func gaps() throws {
        for day in [Days.disturbed] + Days.small {
            let parked = day.manifest.expected.parkedKeys
            #expect(parked.count == day.options.gaps)
            #expect(day.manifest.counts.withheld == day.options.gaps)
            let published = Set(day.messages.compactMap(\.eventId))
            for key in parked {
                #expect(!published.contains(key.withheldEventId))
                let withheld = try decoder.decode(Array(key.withheldLine.utf8), routingKey: key.routingKey)
                #expect(withheld.sequencingKey == key.key)
                #expect(withheld.sequence == key.missingSequence)
                let later = day.events.filter { $0.stream.rawValue == key.stream && $0.sequencingKey == key.key && $0.sequence > key.missingSequence }
                #expect(!later.isEmpty, "a gap has later events, or nobody could see it")
                #expect(later.map(\.eventId) == key.heldEventIds)
                #expect(key.heldEventIds.allSatisfy(published.contains))
            }
            if parked.count >= 3 { #expect(Set(parked.map(\.stream)).count == 3, "gaps spread over the streams") }
        }
        #expect(Days.clean.manifest.expected.parkedKeys.isEmpty)
    }

    @Test("the manifest's ledger, postings and documents equal a recomputation from the events file")
    func ledger() throws {
        for day in Days.all {
            let manifest = day.manifest
            let held = Set(manifest.expected.parkedKeys.flatMap(\.heldEventIds))
            var byKey: [String: [WarehouseEvent]] = [:]
            var seen = Set<String>()
            var keys: [String] = []
            for line in day.fileLines {
                guard let event = try? decoder.decode(line) else { continue }
                guard seen.insert(event.eventId).inserted, !held.contains(event.eventId) else { continue }
                let key = event.stream.rawValue + " " + event.sequencingKey
                if byKey[key] == nil { keys.append(key) }
                byKey[key, default: []].append(event)
            }
            var ledger = RecomputedLedger()
            var posted: [String] = []
            for key in keys {
                let events = (byKey[key] ?? []).sorted { $0.sequence < $1.sequence }
                // What is left of a key is contiguous from 1: held events are exactly those past a gap.
                #expect(events.map(\.sequence) == Array(1...Int64(events.count)), "\(key)")
                for event in events {
                    ledger.post(event)
                    posted.append(event.eventId)
                }
            }
            #expect(posted.sorted() == manifest.expected.postedEventIds)
            #expect(ledger.documents.filter { $0.value > 0 } == manifest.expected.documents.filter { $0.value > 0 })
            #expect(manifest.expected.documents.values.reduce(0, +) == posted.count)
            let expected = try manifest.expected.ledger.dictionaries()
            #expect(ledger.balances == expected.balances)
            #expect(ledger.movements == expected.movements)
            #expect(ledger.shipped == expected.shipped)
            #expect(ledger.received == expected.received)
            let streams = manifest.counts.byStream
            #expect(streams.values.map(\.posted).reduce(0, +) == posted.count)
            #expect(streams.values.map(\.generated).reduce(0, +) == day.options.events)
            #expect(posted.count + manifest.counts.withheld + held.count == day.options.events)
        }
    }

    @Test("per stream, publishable counts are what the work queues hold after whsync publish")
    func queueDepths() throws {
        for day in Days.all {
            var depth: [String: Int] = [:]
            for line in day.fileLines {
                guard let event = try? decoder.decode(line) else { continue }
                depth[event.stream.rawValue, default: 0] += 1
            }
            for stream in EventStream.allCases {
                #expect(day.manifest.counts.byStream[stream.rawValue]?.publishable == depth[stream.rawValue, default: 0])
            }
        }
    }

    @Test("the manifest survives a JSON round trip, and its encoding is stable")
    func manifestCoding() throws {
        let data = try Days.disturbed.manifest.encoded()
        let decoded = try SimulationManifest.decode(data)
        #expect(decoded == Days.disturbed.manifest)
        #expect(try decoded.encoded() == data)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("inventory.delta/1"))
        #expect(!text.contains(#"\/"#), "slashes unescaped, for reading")
    }

    @Test("each disturbance draws on its own: more duplicates leave the gaps, swaps and invalid messages as they were")
    func independentStreams() throws {
        let base = SimulationOptions(seed: 5, events: 2_000, outOfOrder: 0.1, duplicates: 0.01, invalid: 0.02, gaps: 3)
        var more = base
        more.duplicates = 0.1
        let a = try SimulatedDay(options: base)
        let b = try SimulatedDay(options: more)
        #expect(a.events == b.events)
        #expect(a.manifest.expected.parkedKeys == b.manifest.expected.parkedKeys)
        #expect(a.manifest.expected.invalid.map(\.line) == b.manifest.expected.invalid.map(\.line))
        #expect(a.messages.filter { $0.kind == .event } == b.messages.filter { $0.kind == .event })
        #expect(a.manifest.expected.ledger == b.manifest.expected.ledger)
    }
}
