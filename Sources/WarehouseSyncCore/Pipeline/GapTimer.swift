import Foundation

/// How long each key's oldest held event has waited for its predecessors, measured so that a
/// wall-clock jump (an NTP step, a VM resumed, a hand-set clock) neither parks keys early nor
/// keeps them waiting late.
///
/// The store dates held events with the wall clock (the date outlives the process and is shared
/// between replicas). At a key's first look in this process the wait so far is read off the
/// wall clock (never below zero); from then on only the monotonic clock adds to it. A jump
/// between the hold and that first look still counts: nothing better is known then.
///
/// Pure: both clocks' readings come in as arguments. Generic over the monotonic instant so that
/// the worker passes `ContinuousClock.Instant` and tests their own.
public struct GapTimer<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    private struct Watch: Sendable {
        var oldestHeldAt: Date
        var firstLook: Instant
        var waitedBefore: Duration
    }

    private var watches: [String: Watch] = [:]

    public init() {}

    /// How long `key`'s oldest held event (held at `oldestHeldAt`, by the wall clock) has
    /// waited, as of the wall-clock `wallNow` and the monotonic `now`. A new oldest event (the
    /// old one settled or skipped) starts a new watch.
    public mutating func waited(key: String, oldestHeldAt: Date, wallNow: Date, now: Instant) -> Duration {
        if let watch = watches[key], watch.oldestHeldAt == oldestHeldAt {
            return watch.waitedBefore + watch.firstLook.duration(to: now)
        }
        let waitedBefore = Duration.seconds(max(0, wallNow.timeIntervalSince(oldestHeldAt)))
        watches[key] = Watch(oldestHeldAt: oldestHeldAt, firstLook: now, waitedBefore: waitedBefore)
        return waitedBefore
    }

    /// Forgets every key but `keys` (those still holding events), so that the watches stay as
    /// few as the keys with held events.
    public mutating func retain(only keys: Set<String>) {
        watches = watches.filter { keys.contains($0.key) }
    }

    /// The keys watched now.
    public var watchedKeys: Set<String> { Set(watches.keys) }
}
