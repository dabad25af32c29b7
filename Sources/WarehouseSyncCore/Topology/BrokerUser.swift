import Foundation

/// One broker user of the topology's `users` section: a role (the WMS, a stream's worker, the
/// operator…) with its tags and the permissions it holds in the virtual host the topology is
/// applied to. Its password is never in the topology: it is the file ``passwordFile`` in the
/// passwords directory the runtime is given (topology/README.md, "Broker users").
public struct BrokerUser: Sendable, Hashable {
    /// RabbitMQ's configure, write and read permissions: each a regular expression a resource
    /// name must match (anywhere: anchor it with `^…$`). `^$` grants nothing.
    public struct Permissions: Sendable, Hashable {
        public var configure: String
        public var write: String
        public var read: String

        public init(configure: String, write: String, read: String) {
            self.configure = configure
            self.write = write
            self.read = read
        }

        /// What an AMQP operation needs on a resource (declare/delete: configure; publish to an
        /// exchange or bind to a queue: write; consume or get from a queue: read).
        public enum Access: String, Sendable, CaseIterable {
            case configure, write, read
        }

        public func pattern(for access: Access) -> String {
            switch access {
            case .configure: configure
            case .write: write
            case .read: read
            }
        }

        /// Whether the permission for `access` covers the exchange or queue `name`, as the broker
        /// decides it (an unanchored match of the regular expression).
        public func allows(_ access: Access, _ name: String) -> Bool {
            guard let expression = try? NSRegularExpression(pattern: pattern(for: access)) else { return false }
            return expression.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        }
    }

    /// How the password hashes of a definitions export are made: base64 of a 4-byte salt followed
    /// by SHA-256 of the salt and the UTF-8 password (RabbitMQ's default since 3.6).
    public static let passwordHashingAlgorithm = "rabbit_password_hashing_sha256"

    /// The user tags RabbitMQ knows; any other is refused as a typo.
    public static let knownTags: Set<String> = ["administrator", "monitoring", "policymaker", "management", "impersonator"]

    public let name: String
    /// Sorted, without repeats.
    public let tags: [String]
    public let permissions: Permissions
    /// The file in the passwords directory that holds this user's password; by default its name.
    public let passwordFile: String

    public init(name: String, tags: [String] = [], permissions: Permissions, passwordFile: String? = nil) {
        self.name = name
        self.tags = Array(Set(tags)).sorted()
        self.permissions = permissions
        self.passwordFile = passwordFile ?? name
    }
}

extension BrokerUser {
    /// The `users` object of the document: `{"<name>": {"tags": [...], "configure": "…",
    /// "write": "…", "read": "…", "passwordFile": "…"}, …}`; none when the key is absent.
    static func parse(_ top: TopologyObjectReader) throws(TopologyError) -> [BrokerUser] {
        guard let value = top.value("users") else { return [] }
        guard case .object(let fields) = value else { throw top.wrongType("users", value, expected: "an object of users") }
        let names = fields.keys.filter { $0 != "description" }.sorted()
        let section = try TopologyObjectReader(path: top.childPath("users"), fields: fields, allowed: names)
        var users: [BrokerUser] = []
        for name in names {
            let path = section.childPath(name)
            try checkName(name, keyPath: path)
            guard
                let object = try section.object(name, allowed: ["tags", "configure", "write", "read", "passwordFile"])
            else {
                throw TopologyError(code: .wrongType, keyPath: path, message: "expected an object (tags, configure, write, read)")
            }
            let tags = try object.strings("tags") ?? []
            if let unknown = tags.first(where: { !knownTags.contains($0) }) {
                throw TopologyError(
                    code: .invalidValue, keyPath: object.childPath("tags"),
                    message: "unknown tag \"\(unknown)\"; RabbitMQ's tags are \(knownTags.sorted().joined(separator: ", "))")
            }
            var patterns: [String] = []
            for access in Permissions.Access.allCases {
                patterns.append(try permission(object, access.rawValue))
            }
            let passwordFile = try object.string("passwordFile")
            if let passwordFile, passwordFile.isEmpty || passwordFile.contains("/") || passwordFile == "." || passwordFile == ".." {
                throw TopologyError(
                    code: .invalidValue, keyPath: object.childPath("passwordFile"),
                    message: "\"\(passwordFile)\" is not a file name (a name in the passwords directory, without /)")
            }
            users.append(
                BrokerUser(
                    name: name, tags: tags,
                    permissions: Permissions(configure: patterns[0], write: patterns[1], read: patterns[2]),
                    passwordFile: passwordFile))
        }
        return users
    }

    /// A user name doubles as a file name and a Kubernetes name: letters, digits, `.` `_` `-`.
    private static func checkName(_ name: String, keyPath: String) throws(TopologyError) {
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "." || $0 == "_" || $0 == "-"
        }
        guard allowed, !name.isEmpty, name.utf8.count <= 255, name != ".", name != ".." else {
            throw TopologyError(
                code: .invalidName, keyPath: keyPath,
                message: "\"\(name)\" is not a user name; use letters, digits and . _ - (at most 255 bytes)")
        }
    }

    private static func permission(_ object: TopologyObjectReader, _ key: String) throws(TopologyError) -> String {
        guard let pattern = try object.string(key) else {
            throw object.missing(key, "a regular expression (\"^$\" grants nothing)")
        }
        guard !pattern.isEmpty else {
            throw TopologyError(
                code: .invalidValue, keyPath: object.childPath(key), message: "empty; write \"^$\" to grant nothing")
        }
        do {
            _ = try NSRegularExpression(pattern: pattern)
        } catch {
            throw TopologyError(code: .invalidValue, keyPath: object.childPath(key), message: "\"\(pattern)\" is not a regular expression")
        }
        return pattern
    }
}

extension TopologyObjectReader {
    func string(_ key: String) throws(TopologyError) -> String? {
        guard let value = value(key) else { return nil }
        guard case .string(let text) = value else { throw wrongType(key, value, expected: "a string") }
        return text
    }

    func strings(_ key: String) throws(TopologyError) -> [String]? {
        guard let value = value(key) else { return nil }
        guard case .array(let elements) = value else { throw wrongType(key, value, expected: "an array of strings") }
        var result: [String] = []
        for (index, element) in elements.enumerated() {
            guard case .string(let text) = element else {
                throw TopologyError(
                    code: .wrongType, keyPath: "\(childPath(key))[\(index)]", message: "expected a string, found \(element.typeName)")
            }
            result.append(text)
        }
        return result
    }
}
