import Foundation
import Logging

/// One retention pass: deletes through `prune` what is older than `retention` (named by its
/// `setting`), logs how many `rows` went, and logs a failure, which the caller's next pass retries.
func pruneExpired(
    _ rows: String, setting: String, retention: Duration, logger: Logger, _ prune: (Date) async throws -> Int
) async {
    do {
        let pruned = try await prune(Date().addingTimeInterval(-retention.timeInterval))
        if pruned > 0 {
            logger.info("deleted \(rows) past \(setting)", metadata: ["pruned": "\(pruned)"])
        }
    } catch {
        logger.warning("pruning \(rows) failed; trying again later", metadata: ["error": "\(error)"])
    }
}
