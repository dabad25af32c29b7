import Foundation
import Synchronization
import WarehouseSyncCore

/// The faults in force and the random draws that decide which request meets one.
///
/// Draws come from one seeded generator in request order, so a seeded run that sends the same
/// requests one after another meets the same faults every time. (Concurrent requests draw in the
/// order they arrive, which the client decides.)
final class FaultInjector: Sendable {
    /// What to do with one request before handling it.
    struct Decision: Sendable, Equatable {
        var latency: Duration?
        /// Answer with this status (503 for an outage, an injected error otherwise) and stop.
        var failure: Int?
        /// `failure` is the 503 of an outage (not an injected error).
        var outage = false
        /// The `Retry-After` to send with `failure`.
        var retryAfterSeconds: Int?
    }

    enum Route: Sendable {
        case posting
        case other
    }

    private struct State {
        var settings: FaultSettings
        var random: SplitMix64
        /// Outages as absolute windows; `end == nil` lasts until cleared.
        var outages: [(start: ContinuousClock.Instant, end: ContinuousClock.Instant?)]
    }

    private let state: Mutex<State>

    init(settings: FaultSettings, now: ContinuousClock.Instant = .now) {
        state = Mutex(State(
            settings: settings, random: SplitMix64(seed: settings.seed),
            outages: Self.absolute(settings.outageWindows, from: now)))
    }

    var settings: FaultSettings { state.withLock { $0.settings } }

    /// Whether an outage is in force at `now`.
    func outageActive(at now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in Self.inOutage(state.outages, now) }
    }

    /// Decides the fate of one request.
    func decide(for route: Route, at now: ContinuousClock.Instant = .now) -> Decision {
        state.withLock { state in
            var decision = Decision()
            let settings = state.settings
            if let range = settings.latencyMilliseconds {
                let milliseconds = range.lowerBound == range.upperBound
                    ? range.lowerBound : Int.random(in: range, using: &state.random)
                if milliseconds > 0 { decision.latency = .milliseconds(milliseconds) }
            }
            if Self.inOutage(state.outages, now) {
                decision.failure = 503
                decision.outage = true
            } else if route == .posting, settings.errorRate > 0,
                      Double.random(in: 0..<1, using: &state.random) < settings.errorRate
            {
                decision.failure = settings.errorStatuses.randomElement(using: &state.random) ?? 503
            }
            if let failure = decision.failure, failure == 503 || failure == 429 {
                decision.retryAfterSeconds = settings.retryAfterSeconds
            }
            return decision
        }
    }

    /// Whether a committed posting's answer is to be "lost" (answered 503 instead of 201).
    func loseResponse() -> Bool {
        state.withLock { state in
            let rate = state.settings.lostResponseRate
            return rate > 0 && Double.random(in: 0..<1, using: &state.random) < rate
        }
    }

    // MARK: Runtime changes

    /// Applies a `POST /admin/faults` document. Members that are absent keep their value; see
    /// docs/reference-erp.md for the members.
    func update(with document: JSONValue, now: ContinuousClock.Instant = .now) throws(ERPRejection) {
        guard let object = document.objectValue else {
            throw .malformed("the body must be a JSON object, found \(document.typeName)")
        }
        let known: Set = [
            "reset", "latencyMs", "errorRate", "errorStatuses", "lostResponseRate", "retryAfterSeconds",
            "outage", "outageWindows", "seed",
        ]
        if let unknown = object.keys.first(where: { !known.contains($0) }) {
            throw .malformed("unknown member; expected one of \(known.sorted().joined(separator: ", "))", field: unknown)
        }
        // Everything is checked before anything changes: a bad document changes nothing.
        let reset = object["reset"]?.boolValue ?? false
        var settings = reset ? FaultSettings() : self.settings
        var clearOutages = reset
        var newOutages: [FaultSettings.OutageWindow] = []

        if let value = object["latencyMs"] {
            settings.latencyMilliseconds = try Self.latency(value)
        }
        if let value = object["errorRate"] {
            settings.errorRate = try Self.rate(value, field: "errorRate")
        }
        if let value = object["errorStatuses"] {
            let list = value.arrayValue ?? []
            let statuses = list.compactMap { $0.numberLiteral.flatMap { Int($0) } }
            guard !list.isEmpty, statuses.count == list.count,
                  statuses.allSatisfy(FaultSettings.allowedErrorStatuses.contains)
            else {
                throw .malformed("must be a non-empty array of 429, 500, 502, 503, 504", field: "errorStatuses")
            }
            settings.errorStatuses = statuses
        }
        if let value = object["lostResponseRate"] {
            settings.lostResponseRate = try Self.rate(value, field: "lostResponseRate")
        }
        if let value = object["retryAfterSeconds"] {
            if value.isNull {
                settings.retryAfterSeconds = nil
            } else {
                guard let seconds = value.numberLiteral.flatMap({ Int($0) }), seconds >= 0 else {
                    throw .malformed("must be a whole number of seconds ≥ 0, or null", field: "retryAfterSeconds")
                }
                settings.retryAfterSeconds = seconds
            }
        }
        if let value = object["seed"] {
            if value.isNull {
                settings.seed = nil
            } else {
                guard let seed = value.numberLiteral.flatMap({ UInt64($0) }) else {
                    throw .malformed("must be an integer ≥ 0, or null", field: "seed")
                }
                settings.seed = seed
            }
        }
        if let value = object["outage"] {
            switch value {
            case .bool(true):
                newOutages.append(.init(startSeconds: 0, durationSeconds: nil))
            case .bool(false):
                clearOutages = true
            case .object(let outage):
                guard let seconds = outage["seconds"]?.numberLiteral.flatMap({ Double($0) }), seconds > 0, seconds.isFinite else {
                    throw .malformed("must be a number of seconds > 0", field: "outage.seconds")
                }
                newOutages.append(.init(startSeconds: 0, durationSeconds: seconds))
            default:
                throw .malformed("must be true, false or {\"seconds\": N}", field: "outage")
            }
        }
        if let value = object["outageWindows"] {
            guard let list = value.arrayValue else { throw .malformed("must be an array", field: "outageWindows") }
            for (index, window) in list.enumerated() {
                let start = window["startSeconds"]?.numberLiteral.flatMap { Double($0) }
                let durationValue = window["durationSeconds"]
                let duration = durationValue?.numberLiteral.flatMap { Double($0) }
                guard let start, start >= 0, start.isFinite,
                      durationValue == nil || durationValue == .null || (duration.map { $0 > 0 && $0.isFinite } ?? false)
                else {
                    throw .malformed(
                        "must be {\"startSeconds\": ≥ 0, \"durationSeconds\": > 0 or null}", field: "outageWindows[\(index)]")
                }
                newOutages.append(.init(startSeconds: start, durationSeconds: duration))
            }
        }
        settings.outageWindows = []
        let reseed = object["seed"] != nil || reset
        state.withLock { state in
            state.settings = settings
            if reseed { state.random = SplitMix64(seed: settings.seed) }
            if clearOutages { state.outages = [] }
            state.outages += Self.absolute(newOutages, from: now)
        }
    }

    /// The settings and the outages in force, as `GET /admin/faults` shows them.
    func snapshot(now: ContinuousClock.Instant = .now) -> JSONValue {
        state.withLock { state in
            guard case .object(var object) = state.settings.json else { return .null }
            object["outageActive"] = .bool(Self.inOutage(state.outages, now))
            object["outages"] = .array(state.outages.compactMap { outage in
                // Windows already over are left out.
                if let end = outage.end, end <= now { return nil }
                return [
                    "startsInSeconds": .number(Self.secondsText(max(.zero, outage.start - now))),
                    "endsInSeconds": outage.end.map { .number(Self.secondsText($0 - now)) } ?? .null,
                ]
            })
            return .object(object)
        }
    }

    private static func latency(_ value: JSONValue) throws(ERPRejection) -> ClosedRange<Int>? {
        switch value {
        case .null:
            return nil
        case .number(let literal):
            guard let milliseconds = Int(literal), (0...600_000).contains(milliseconds) else {
                throw .malformed("must be whole milliseconds in 0…600000", field: "latencyMs")
            }
            return milliseconds...milliseconds
        case .object(let range):
            guard let low = range["min"]?.numberLiteral.flatMap({ Int($0) }),
                  let high = range["max"]?.numberLiteral.flatMap({ Int($0) }),
                  low >= 0, high >= low, high <= 600_000
            else {
                throw .malformed("must be {\"min\": ms, \"max\": ms} with 0 ≤ min ≤ max ≤ 600000", field: "latencyMs")
            }
            return low...high
        default:
            throw .malformed("must be milliseconds, {\"min\", \"max\"} or null", field: "latencyMs")
        }
    }

    private static func rate(_ value: JSONValue, field: String) throws(ERPRejection) -> Double {
        guard let rate = value.numberLiteral.flatMap({ Double($0) }), rate >= 0, rate <= 1 else {
            throw .malformed("must be a number in 0…1", field: field)
        }
        return rate
    }

    private static func absolute(
        _ windows: [FaultSettings.OutageWindow], from now: ContinuousClock.Instant
    ) -> [(start: ContinuousClock.Instant, end: ContinuousClock.Instant?)] {
        windows.map { window in
            let start = now + .milliseconds(Int64((window.startSeconds * 1000).rounded()))
            let end = window.durationSeconds.map { start + .milliseconds(Int64(($0 * 1000).rounded())) }
            return (start, end)
        }
    }

    private static func inOutage(
        _ outages: [(start: ContinuousClock.Instant, end: ContinuousClock.Instant?)], _ now: ContinuousClock.Instant
    ) -> Bool {
        outages.contains { outage in outage.start <= now && outage.end.map { now < $0 } ?? true }
    }

    /// Seconds with millisecond precision as a JSON number literal.
    private static func secondsText(_ duration: Duration) -> String {
        Quantity(microUnits: duration.wholeMilliseconds * 1000).description
    }
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64): good enough to pick
/// faults, and the same sequence for the same seed on every platform.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Seeded by `seed`, or by the system's generator when `nil`.
    init(seed: UInt64?) {
        var system = SystemRandomNumberGenerator()
        state = seed ?? system.next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
