import Foundation
import WarehouseSyncCore

extension ManagementClient {
    /// A user as `GET /api/users/NAME` shows it.
    public struct User: Sendable, Decodable {
        public let name: String
        public let passwordHash: String
        public let hashingAlgorithm: String
        /// Sorted; RabbitMQ 3.10 answers a comma-separated string, 3.13 and later an array.
        public let tags: [String]

        enum CodingKeys: String, CodingKey {
            case name, tags
            case passwordHash = "password_hash"
            case hashingAlgorithm = "hashing_algorithm"
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            passwordHash = try container.decodeIfPresent(String.self, forKey: .passwordHash) ?? ""
            hashingAlgorithm = try container.decodeIfPresent(String.self, forKey: .hashingAlgorithm) ?? ""
            let tags =
                if let list = try? container.decode([String].self, forKey: .tags) {
                    list
                } else {
                    (try container.decodeIfPresent(String.self, forKey: .tags) ?? "").split(separator: ",").map(String.init)
                }
            self.tags = Set(tags.filter { !$0.isEmpty }).sorted()
        }
    }

    private struct PermissionsBody: Codable {
        let configure: String
        let write: String
        let read: String
    }

    /// The user, or nil when the broker has none of that name.
    public func user(_ name: String) async throws -> User? {
        guard let data = try await send("GET", "api/users/\(Self.segment(name))", notFoundIsNil: true) else { return nil }
        return try JSONDecoder().decode(User.self, from: data)
    }

    /// Creates or replaces the user: the broker hashes `password` with its own algorithm.
    public func putUser(_ name: String, password: String, tags: [String]) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["password": password, "tags": tags.joined(separator: ",")])
        try await send("PUT", "api/users/\(Self.segment(name))", body: body)
    }

    /// The user's permissions in `vhost`, or nil when it has none there.
    public func permissions(vhost: String, user: String) async throws -> BrokerUser.Permissions? {
        guard let data = try await send("GET", "api/permissions/\(Self.segment(vhost))/\(Self.segment(user))", notFoundIsNil: true)
        else { return nil }
        let body = try JSONDecoder().decode(PermissionsBody.self, from: data)
        return BrokerUser.Permissions(configure: body.configure, write: body.write, read: body.read)
    }

    public func putPermissions(vhost: String, user: String, _ permissions: BrokerUser.Permissions) async throws {
        let body = try JSONEncoder().encode(
            PermissionsBody(configure: permissions.configure, write: permissions.write, read: permissions.read))
        try await send("PUT", "api/permissions/\(Self.segment(vhost))/\(Self.segment(user))", body: body)
    }
}
