import Synchronization

/// Named readiness checks (broker connected, store open, circuit closed, ...). `/readyz` answers
/// 200 only when every registered check passes.
public final class ReadinessChecks: Sendable {
    public typealias Check = @Sendable () async -> Bool

    private let checks = Mutex<[(name: String, check: Check)]>([])

    public init() {}

    /// The name of the check that fails while a worker has no consumer of its own on `queue`
    /// (`consumer:erp.inventory`).
    public static func consumerCheckName(_ queue: String) -> String {
        "consumer:\(queue)"
    }

    /// Registers `check` under `name`, replacing an earlier check of that name.
    public func register(_ name: String, _ check: @escaping Check) {
        checks.withLock { checks in
            if let index = checks.firstIndex(where: { $0.name == name }) {
                checks[index].check = check
            } else {
                checks.append((name, check))
            }
        }
    }

    public func remove(_ name: String) {
        checks.withLock { $0.removeAll { $0.name == name } }
    }

    public var names: [String] {
        checks.withLock { $0.map(\.name) }
    }

    /// The names of the checks that fail now, in registration order.
    public func failing() async -> [String] {
        let snapshot = checks.withLock { $0 }
        var failing: [String] = []
        for (name, check) in snapshot where await !check() {
            failing.append(name)
        }
        return failing
    }
}
