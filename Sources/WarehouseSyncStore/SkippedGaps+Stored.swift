import WarehouseSyncCore

/// How ``KeyState/skipped`` is stored in the `keys.skipped` column: `lower:upper` pairs joined by
/// commas (`2:4,9:9`), oldest first; `NULL` when the key never had a gap skipped.
public enum StoredSkippedGaps {
    /// The column's value for `gaps`; `nil` for none.
    public static func text(_ gaps: [ClosedRange<Int64>]) -> String? {
        gaps.isEmpty ? nil : gaps.map { "\($0.lowerBound):\($0.upperBound)" }.joined(separator: ",")
    }

    /// The gaps stored as `text`; throws ``StoreError/Code-swift.struct/corrupt`` for anything
    /// ``text(_:)`` does not write.
    public static func gaps(_ text: String?, key: String) throws(StoreError) -> [ClosedRange<Int64>] {
        guard let text, !text.isEmpty else { return [] }
        var gaps: [ClosedRange<Int64>] = []
        for pair in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = pair.split(separator: ":", omittingEmptySubsequences: false)
            guard bounds.count == 2, let lower = Int64(bounds[0]), let upper = Int64(bounds[1]), lower <= upper else {
                throw StoreError(code: .corrupt, message: "key \(key.prefix(128)) has malformed skipped gaps '\(text.prefix(64))'")
            }
            gaps.append(lower...upper)
        }
        return gaps
    }
}
