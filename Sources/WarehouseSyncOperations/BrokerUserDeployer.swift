import Foundation
import WarehouseSyncCore

/// Creates or updates the topology's broker users and their permissions in one vhost through the
/// management API (AMQP cannot), and reports how the broker differs from them.
public struct BrokerUserDeployer: Sendable {
    public let users: [BrokerUser]
    public let vhost: String

    public init(users: [BrokerUser], vhost: String) {
        self.users = users
        self.vhost = vhost
    }

    /// What `apply` did, user by user.
    public struct Summary: Sendable, Equatable, CustomStringConvertible {
        public var created: [String] = []
        public var updated: [String] = []
        public var unchanged: [String] = []

        public var description: String {
            "\(created.count) created, \(updated.count) updated, \(unchanged.count) unchanged"
        }
    }

    /// Puts every user whose absence, tags or password differ, then every permission that
    /// differs; touches nothing that already matches, so applying twice changes nothing the
    /// second time. `passwords` holds every user's (``BrokerPasswords/load(for:directory:)``).
    public func apply(management: ManagementClient, passwords: [String: String]) async throws -> Summary {
        var summary = Summary()
        for user in users {
            guard let password = passwords[user.name] else {
                throw BrokerPasswordsError(problems: ["no password for broker user '\(user.name)'"])
            }
            let existing = try await management.user(user.name)
            var changed = false
            if existing.map({ !Self.same(user, $0, password: password) }) ?? true {
                try await management.putUser(user.name, password: password, tags: user.tags)
                changed = true
            }
            if try await management.permissions(vhost: vhost, user: user.name) != user.permissions {
                try await management.putPermissions(vhost: vhost, user: user.name, user.permissions)
                changed = true
            }
            if existing == nil {
                summary.created.append(user.name)
            } else if changed {
                summary.updated.append(user.name)
            } else {
                summary.unchanged.append(user.name)
            }
        }
        return summary
    }

    /// Every user that is missing or has other tags, every permission that is missing or
    /// different in the vhost, and with `passwords` every password that is not its file's.
    public func verify(management: ManagementClient, passwords: [String: String]? = nil) async throws -> [TopologyDrift] {
        var drift: [TopologyDrift] = []
        for user in users {
            if let existing = try await management.user(user.name) {
                if existing.tags != user.tags {
                    drift.append(
                        .different(
                            kind: "user", name: user.name,
                            detail: "tags \(Self.list(existing.tags)), the topology says \(Self.list(user.tags))"))
                }
                if let password = passwords?[user.name],
                    BrokerPasswordHash.matches(hash: existing.passwordHash, algorithm: existing.hashingAlgorithm, password: password) == false
                {
                    drift.append(.different(kind: "user", name: user.name, detail: "the password is not the one in \(user.passwordFile)"))
                }
            } else {
                drift.append(.missing(kind: "user", name: user.name))
            }
            let permissions = try await management.permissions(vhost: vhost, user: user.name)
            guard let permissions else {
                drift.append(.missing(kind: "permissions", name: "\(user.name) in vhost '\(vhost)'"))
                continue
            }
            let differences = BrokerUser.Permissions.Access.allCases.compactMap { access -> String? in
                let found = permissions.pattern(for: access)
                let wanted = user.permissions.pattern(for: access)
                return found == wanted ? nil : "\(access.rawValue) '\(found)', the topology says '\(wanted)'"
            }
            if !differences.isEmpty {
                drift.append(
                    .different(
                        kind: "permissions", name: user.name,
                        detail: "in vhost '\(vhost)': " + differences.joined(separator: "; ")))
            }
        }
        return drift
    }

    private static func same(_ user: BrokerUser, _ existing: ManagementClient.User, password: String) -> Bool {
        existing.tags == user.tags
            && BrokerPasswordHash.matches(hash: existing.passwordHash, algorithm: existing.hashingAlgorithm, password: password) == true
    }

    private static func list(_ tags: [String]) -> String {
        tags.isEmpty ? "none" : tags.joined(separator: ",")
    }
}
