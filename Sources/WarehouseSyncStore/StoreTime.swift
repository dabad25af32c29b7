import Foundation

/// Instants as stored: whole microseconds since 1970 (PostgreSQL's `timestamptz` precision), so
/// every implementation reads back the same `Date`.
public enum StoreTime {
    public static func microseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    public static func date(microseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    }

    /// `date` as it reads back from a store.
    public static func stored(_ date: Date) -> Date {
        self.date(microseconds: microseconds(date))
    }
}
