import Testing

/// The condition a test polled for never held.
public struct ConditionNotMet: Error, CustomStringConvertible {
    public let description: String
}

/// Polls `condition` every 2 ms for at most `limit`; when it never holds, records an issue at
/// the caller and throws, so that the test stops there.
public func waitUntil(
    _ limit: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation, _ condition: () -> Bool
) async throws {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("condition not met within \(limit)", sourceLocation: sourceLocation)
            throw ConditionNotMet(description: "condition not met within \(limit)")
        }
        try await Task.sleep(for: .milliseconds(2))
    }
}
