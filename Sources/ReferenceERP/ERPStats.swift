import Synchronization
import WarehouseSyncCore

/// Request counts since the ERP started, per endpoint, for `GET /stats`.
final class ERPStats: Sendable {
    struct Counts: Sendable, Equatable {
        var requests = 0
        /// 201.
        var posted = 0
        /// 409: the key was posted before.
        var duplicates = 0
        /// 400 and 422: business rejections.
        var rejected = 0
        /// 401.
        var unauthorized = 0
        /// 5xx and 429 the fault injector answered (outages, injected errors, lost responses).
        var injectedFaults = 0
        /// Responses by status code.
        var statuses: [Int: Int] = [:]

        mutating func record(_ status: Int, injected: Bool) {
            requests += 1
            statuses[status, default: 0] += 1
            switch status {
            case 201: posted += 1
            case 409: duplicates += 1
            case 400, 422: rejected += 1
            case 401: unauthorized += 1
            default: break
            }
            if injected { injectedFaults += 1 }
        }

        var json: JSONValue {
            [
                "requests": .number(requests), "posted": .number(posted), "duplicates": .number(duplicates),
                "rejected": .number(rejected), "unauthorized": .number(unauthorized),
                "injectedFaults": .number(injectedFaults),
                "statuses": .object(JSONObject(uniqueKeysWithValues: statuses.sorted { $0.key < $1.key }.map {
                    (String($0.key), JSONValue.number($0.value))
                })),
            ]
        }
    }

    let startedAt: String
    private let counts = Mutex<[String: Counts]>([:])

    init(startedAt: String) {
        self.startedAt = startedAt
    }

    /// Counts one answered request to `endpoint` (a path such as `/goods-issues`).
    func record(endpoint: String, status: Int, injected: Bool) {
        counts.withLock { $0[endpoint, default: Counts()].record(status, injected: injected) }
    }

    func snapshot() -> [String: Counts] {
        counts.withLock { $0 }
    }
}
