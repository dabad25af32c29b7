// bench/held-key: what one decision costs on a key that holds many events, against a real store.
//
//   held-key STORE_URL N...
//
// For each N, on a fresh key: N events (sequences 2…N+1) arrive in reverse order and are held,
// each decided the pipeline's way (a snapshot that reads the sequence decided on, the gate, one
// commit with the held message); then sequence 1 arrives and the N held events are released and
// settled one by one. Prints µs per hold and per release: flat as N grows when a decision's cost
// does not depend on how many events the key holds (the bounded view, docs/store.md).
import Foundation
import Logging
import WarehouseSyncCore
import WarehouseSyncProcessKit
import WarehouseSyncStore

let arguments = CommandLine.arguments.dropFirst()
guard let url = arguments.first, arguments.count >= 2, let sizes = Optional(arguments.dropFirst().compactMap { Int64($0) }),
    sizes.count == arguments.count - 1
else {
    FileHandle.standardError.write(Data("usage: held-key STORE_URL N...\n".utf8))
    exit(64)
}

var logger = Logger(label: "held-key")
logger.logLevel = .warning
let store = try await StoreLocation(url: url).open(logger: logger)
let gate = SequenceGate(policy: SequencingPolicy(gapTimeout: .seconds(3600)))
let clock = ContinuousClock()
let run = UUID().uuidString.prefix(8)

enum Fingerprints {
    static func of(_ n: Int64) -> EventFingerprint {
        let digits = String(UInt64(bitPattern: n), radix: 16)
        return EventFingerprint(hex: String(repeating: "0", count: 64 - digits.count) + digits)!
    }
}

print("held   hold_us_per_event  release_us_per_event")
for count in sizes {
    let key = "WH1/HELD-\(run)-\(count)"
    let ids = { (sequence: Int64) in "\(key)#\(sequence)" }
    let body = Array(String(repeating: "x", count: 280).utf8)

    let holdStart = clock.now
    for sequence in stride(from: count + 1, through: 2, by: -1) {
        let event = IncomingEvent(eventId: ids(sequence), sequence: sequence, fingerprint: Fingerprints.of(sequence), isReplay: false)
        try await store.commitDecision(stream: .inventory, key: key, eventId: event.eventId, sequence: sequence) { snapshot in
            let now = Date()
            let decision = gate.decide(snapshot.state, event: event, record: snapshot.record, now: now)
            precondition(decision.action == .hold, "sequence \(sequence) was not held: \(decision.action)")
            let message = HeldMessage(
                sequence: sequence, eventId: event.eventId, heldAt: now, routingKey: "inventory.WH1", headers: [:], body: body)
            return (KeyChange(
                stream: .inventory, key: key, expectedVersion: snapshot.version, newState: decision.updatedState,
                records: [DedupWrite(eventId: event.eventId, record: .held(event.fingerprint), sequence: sequence)],
                insertHeld: [message], now: now), ())
        }
    }
    let holdTime = clock.now - holdStart

    // Sequence 1, then every release, settled on a snapshot read for it (the worst case: the
    // pipeline settles a release chain on the snapshot in hand while it reaches).
    let releaseStart = clock.now
    var next: Release? = Release(sequence: 1, eventId: ids(1))
    var released: Int64 = 0
    while let release = next {
        next = try await store.commitDecision(stream: .inventory, key: key, eventId: release.eventId) { snapshot in
            let state = snapshot.state ?? KeyState(nextExpected: 1)
            let settled = gate.settle(state, sequence: release.sequence)
            return (KeyChange(
                stream: .inventory, key: key, expectedVersion: snapshot.version, newState: settled.updatedState,
                records: [DedupWrite(eventId: release.eventId, record: .posted(Fingerprints.of(release.sequence)), sequence: release.sequence)],
                deleteHeldSequence: release.sequence, now: Date()), settled.release)
        }
        if next != nil { released += 1 }
    }
    let releaseTime = clock.now - releaseStart
    precondition(released == count, "released \(released) of \(count)")
    func perEvent(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return String(format: "%.1f", seconds * 1e6 / Double(count))
    }
    print("\(count)\t\(perEvent(holdTime))\t\(perEvent(releaseTime))")
}
await store.close()
