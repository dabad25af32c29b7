/// The members of a JSON object, in the order they were written, each key at most once.
///
/// Lookup by key is a linear scan, which is the fastest choice for the small objects events are.
/// Two objects are equal when they have the same members in any order (RFC 8259 objects are
/// unordered); serialization keeps the order.
public struct JSONObject: Sendable, Equatable, RandomAccessCollection {
    /// One member: a key and its value.
    public struct Member: Sendable, Equatable {
        public let key: String
        public var value: JSONValue

        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    public private(set) var members: [Member]

    /// An empty object.
    public init() {
        members = []
    }

    /// Members from pairs whose keys are unique. A repeated key is a programming error and traps;
    /// untrusted input goes through the parser, which reports duplicate keys as errors.
    public init(uniqueKeysWithValues pairs: some Sequence<(String, JSONValue)>) {
        members = []
        for (key, value) in pairs {
            precondition(self[key] == nil, "duplicate key '\(key)' in JSONObject")
            members.append(Member(key: key, value: value))
        }
    }

    /// Members already known to have unique keys (the parser checks).
    init(uncheckedMembers: [Member]) {
        members = uncheckedMembers
    }

    public var startIndex: Int { members.startIndex }
    public var endIndex: Int { members.endIndex }
    public subscript(position: Int) -> Member { members[position] }

    /// The keys in order.
    public var keys: [String] { members.map(\.key) }

    /// The value of `key`, or `nil` when there is no such member. Setting a value replaces the
    /// member in place or appends a new one; setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            for member in members where member.key == key {
                return member.value
            }
            return nil
        }
        set {
            let position = members.firstIndex { $0.key == key }
            switch (position, newValue) {
            case (let position?, let value?): members[position].value = value
            case (let position?, nil): members.remove(at: position)
            case (nil, let value?): members.append(Member(key: key, value: value))
            case (nil, nil): break
            }
        }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        // Keys are unique on both sides, so equal counts plus every left member found equal on
        // the right means the member sets are equal.
        for member in lhs.members {
            guard let other = rhs[member.key], other == member.value else { return false }
        }
        return true
    }
}
