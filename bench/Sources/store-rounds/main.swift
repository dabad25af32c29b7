// bench/store-rounds: what rounds save the store, against a real store (docs/store.md, "Rounds").
//
//   store-rounds STORE_URL [KEYS [EVENTS [ROUND...]]]     (defaults: 256 keys, 20480 events, rounds 1 16 64 256)
//
// EVENTS in-order events over KEYS keys, each decided the pipeline's way (the gate lets it
// through: key claimed, record `posting`) and then settled (record `posted`, the key moved on):
// two decisions per event. Each mode runs on keys of its own:
//   - `calls`: KEYS tasks, one per key, each calling commitDecision per decision (how the
//     pipeline used the store before rounds: concurrent single calls, which SQLite's group
//     commit already shares fsyncs between);
//   - `round N`: waves of up to N keys, one commitDecisions call per wave for the decisions and
//     one for the settles (a round of the worker's DecisionRounds).
// Prints events/s per mode (each decision durable when its call returns).
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncProcessKit
import WarehouseSyncStore

let arguments = Array(CommandLine.arguments.dropFirst())
guard let url = arguments.first else {
    FileHandle.standardError.write(Data("usage: store-rounds STORE_URL [KEYS [EVENTS [ROUND...]]]\n".utf8))
    exit(64)
}
let numbers = arguments.dropFirst().map { Int($0) }
guard numbers.allSatisfy({ ($0 ?? 0) > 0 }) else {
    FileHandle.standardError.write(Data("store-rounds: KEYS, EVENTS and ROUND must be positive integers\n".utf8))
    exit(64)
}
let keyCount = numbers.first.flatMap { $0 } ?? 256
let eventCount = numbers.dropFirst().first.flatMap { $0 } ?? 20_480
let roundSizes = numbers.count > 2 ? numbers.dropFirst(2).map { $0! } : [1, 16, 64, 256]

var logger = Logger(label: "store-rounds")
logger.logLevel = .warning
let store = try await StoreLocation(url: url).open(logger: logger)
let gate = SequenceGate(policy: SequencingPolicy(acceptFirstSeen: false, gapTimeout: .seconds(3600)))
let clock = ContinuousClock()
let run = UUID().uuidString.prefix(8)

@Sendable func fingerprint(_ n: Int) -> EventFingerprint {
    let digits = String(UInt64(n), radix: 16)
    return EventFingerprint(hex: String(repeating: "0", count: 64 - digits.count) + digits)!
}

/// The gate's decision on event `n` of `key` (sequence `sequence`), as the pipeline makes it.
@Sendable func decision(key: String, n: Int, sequence: Int64) -> KeyDecision {
    let event = IncomingEvent(eventId: "\(key)#\(sequence)", sequence: sequence, fingerprint: fingerprint(n), isReplay: false)
    return KeyDecision(stream: .inventory, key: key, eventId: event.eventId, sequence: sequence) { snapshot in
        let now = Date()
        let decision = gate.decide(snapshot.state, event: event, record: snapshot.record, now: now)
        precondition(decision.action == .apply, "\(event.eventId): \(decision.action)")
        let change = KeyChange(
            stream: .inventory, key: key, expectedVersion: snapshot.version, newState: decision.updatedState,
            records: [DedupWrite(eventId: event.eventId, record: decision.updatedRecord!, sequence: sequence)], now: now)
        return (change, KeySnapshot(state: decision.updatedState ?? snapshot.state, version: snapshot.version + (decision.updatedState == nil ? 0 : 1), record: decision.updatedRecord!))
    }
}

/// The settle of event `n` of `key` on the snapshot its decision left.
@Sendable func settle(key: String, n: Int, sequence: Int64, after: KeySnapshot) -> KeyDecision {
    let eventId = "\(key)#\(sequence)"
    return KeyDecision(stream: .inventory, key: key, eventId: eventId, assumed: after) { snapshot in
        let settlement = gate.settle(snapshot.state!, sequence: sequence)
        let change = KeyChange(
            stream: .inventory, key: key, expectedVersion: snapshot.version, newState: settlement.updatedState,
            records: [DedupWrite(eventId: eventId, record: .posted(fingerprint(n)), sequence: sequence)], now: Date())
        return (change, ())
    }
}

func check(_ results: [Result<any Sendable, any Error>]) throws -> [KeySnapshot] {
    try results.map { try $0.get() as? KeySnapshot ?? KeySnapshot(state: nil, version: 0, record: .notSeen) }
}

print("mode        events  events_per_s")
for mode in [0] + roundSizes {
    let keys = (0..<keyCount).map { "WH1/R\(run)-\(mode)-\($0)" }
    let perKey = eventCount / keyCount
    let start = clock.now
    if mode == 0 {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for key in keys {
                group.addTask {
                    for sequence in 1...Int64(perKey) {
                        let n = Int(sequence)
                        let decided = decision(key: key, n: n, sequence: sequence)
                        let after = try await store.commitDecision(
                            stream: .inventory, key: key, eventId: decided.eventId, sequence: sequence
                        ) { decided.decide($0) }
                        let settled = settle(key: key, n: n, sequence: sequence, after: after as! KeySnapshot)
                        _ = try await store.commitDecisions([settled])
                    }
                }
            }
            try await group.waitForAll()
        }
    } else {
        for sequence in 1...Int64(perKey) {
            for wave in stride(from: 0, to: keys.count, by: mode) {
                let waveKeys = keys[wave..<min(wave + mode, keys.count)]
                let after = try check(try await store.commitDecisions(waveKeys.map { decision(key: $0, n: Int(sequence), sequence: sequence) }))
                _ = try check(try await store.commitDecisions(zip(waveKeys, after).map {
                    settle(key: $0.0, n: Int(sequence), sequence: sequence, after: $0.1)
                }))
            }
        }
    }
    let seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
    let events = perKey * keyCount
    print("\(mode == 0 ? "calls" : "round \(mode)")".padding(toLength: 10, withPad: " ", startingAt: 0), String(format: "%8d  %12.0f", events, Double(events) / seconds))
}
await store.close()
