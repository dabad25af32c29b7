import Foundation
import WarehouseSyncCore

/// The faults the ERP injects, for tests and benchmarks of the workers' retry, circuit breaker
/// and idempotency paths. Set at start by flags or environment, changed at runtime through
/// `POST /admin/faults`.
///
/// Latency applies to every request but `/admin/*`; the error and lost-response rates apply to
/// the four posting endpoints; an outage answers 503 to everything but `/admin/*`, `/health`
/// included.
public struct FaultSettings: Sendable, Equatable {
    /// Milliseconds to wait before handling a request: fixed when the bounds are equal, else
    /// uniform in the range. `nil` for none.
    public var latencyMilliseconds: ClosedRange<Int>?
    /// The fraction (0…1) of postings answered with one of ``errorStatuses`` before the ledger
    /// is touched.
    public var errorRate: Double
    /// The statuses an injected error picks from, uniformly: 500, 502, 503, 504 or 429.
    public var errorStatuses: [Int]
    /// The fraction (0…1) of postings that are committed but answered 503 anyway, as when the
    /// response is lost on the way: the client's retry then gets 409.
    public var lostResponseRate: Double
    /// Sent as `Retry-After` on injected 429 and 503 answers, when set.
    public var retryAfterSeconds: Int?
    /// Outages as (start, duration) in seconds after the moment the settings are applied; a
    /// `nil` duration lasts until cleared.
    public var outageWindows: [OutageWindow]
    /// Seeds the random draws, so one sequence of requests meets the same faults every run.
    /// `nil` seeds from the system's generator.
    public var seed: UInt64?

    public struct OutageWindow: Sendable, Equatable {
        public var startSeconds: Double
        /// `nil`: until cleared.
        public var durationSeconds: Double?

        public init(startSeconds: Double, durationSeconds: Double?) {
            self.startSeconds = startSeconds
            self.durationSeconds = durationSeconds
        }
    }

    public static let allowedErrorStatuses: Set<Int> = [429, 500, 502, 503, 504]

    /// No faults.
    public init(
        latencyMilliseconds: ClosedRange<Int>? = nil,
        errorRate: Double = 0,
        errorStatuses: [Int] = [503],
        lostResponseRate: Double = 0,
        retryAfterSeconds: Int? = nil,
        outageWindows: [OutageWindow] = [],
        seed: UInt64? = nil
    ) {
        self.latencyMilliseconds = latencyMilliseconds
        self.errorRate = errorRate
        self.errorStatuses = errorStatuses
        self.lostResponseRate = lostResponseRate
        self.retryAfterSeconds = retryAfterSeconds
        self.outageWindows = outageWindows
        self.seed = seed
    }

    // MARK: Text forms (flags and environment)

    /// `"50"` (fixed) or `"10-200"` (uniform), in milliseconds.
    public static func parseLatency(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard (1...2).contains(parts.count), let low = Int(parts[0]), low >= 0 else { return nil }
        let high = parts.count == 2 ? Int(parts[1]) : low
        guard let high, high >= low, high <= 600_000 else { return nil }
        return low...high
    }

    /// A fraction written as a decimal in 0…1 (`0.25`).
    public static func parseRate(_ text: String) -> Double? {
        guard let rate = Double(text.trimmingCharacters(in: .whitespaces)), rate >= 0, rate <= 1 else { return nil }
        return rate
    }

    /// `"503"` or `"503,500,429"`.
    public static func parseStatuses(_ text: String) -> [Int]? {
        let statuses = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !statuses.isEmpty, statuses.allSatisfy({ $0.map(allowedErrorStatuses.contains) ?? false }) else { return nil }
        return statuses.compactMap { $0 }
    }

    /// `"START+DURATION"` windows in seconds, comma-separated: `"10+5,60+30"` is down from 10 s
    /// to 15 s and from 60 s to 90 s after start; `"30+"` is down from 30 s on, until cleared.
    public static func parseOutageWindows(_ text: String) -> [OutageWindow]? {
        var windows: [OutageWindow] = []
        for part in text.split(separator: ",") {
            let pieces = part.split(separator: "+", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, let start = Double(pieces[0]), start >= 0, start.isFinite else { return nil }
            if pieces[1].isEmpty {
                windows.append(OutageWindow(startSeconds: start, durationSeconds: nil))
            } else {
                guard let duration = Double(pieces[1]), duration > 0, duration.isFinite else { return nil }
                windows.append(OutageWindow(startSeconds: start, durationSeconds: duration))
            }
        }
        return windows.isEmpty ? nil : windows
    }
}

extension FaultSettings {
    /// The settings as `GET /admin/faults` shows them.
    var json: JSONValue {
        let latency: JSONValue = latencyMilliseconds.map { range in
            ["min": .number(range.lowerBound), "max": .number(range.upperBound)]
        } ?? .null
        return [
            "latencyMs": latency,
            "errorRate": .number(Self.rateText(errorRate)),
            "errorStatuses": .array(errorStatuses.map { .number($0) }),
            "lostResponseRate": .number(Self.rateText(lostResponseRate)),
            "retryAfterSeconds": retryAfterSeconds.map { .number($0) } ?? .null,
            "seed": seed.map { .number($0) } ?? .null,
        ]
    }

    /// A rate as a JSON number literal: Swift's shortest round-trip text (`0.25`, `1e-05`) is one.
    static func rateText(_ rate: Double) -> String { "\(rate)" }
}
