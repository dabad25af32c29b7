import Foundation

extension Topology {
    /// Parses and validates a topology document.
    ///
    /// Every object may carry a `"description"` string as a comment; any other key the format
    /// does not define is an error, so a misspelt key is caught instead of silently defaulted.
    public init(jsonData: Data) throws(TopologyError) {
        let root: TopologyJSONValue
        do {
            root = try JSONDecoder().decode(TopologyJSONValue.self, from: jsonData)
        } catch {
            throw TopologyError(code: .invalidJSON, keyPath: "", message: "not valid JSON: \(Self.jsonProblem(in: jsonData))")
        }
        guard case .object(let fields) = root else {
            throw TopologyError(code: .invalidJSON, keyPath: "", message: "the document must be a JSON object")
        }
        let top = try TopologyObjectReader(
            path: "",
            fields: fields,
            allowed: ["eventsExchange", "deliveryLimit", "streams", "retry", "deadLetter", "users"]
        )
        let eventsExchange = try top.name("eventsExchange")
        let deliveryLimit = try top.deliveryLimit("deliveryLimit") ?? Self.defaultDeliveryLimit

        let streamsObject = try top.requiredObject("streams", allowed: Self.streamNames, unknownKeyCode: .unknownStream)
        var streams: [Stream] = []
        for name in Self.streamNames {
            guard let object = try streamsObject.object(name, allowed: ["queue", "partitions", "deliveryLimit"]) else {
                throw TopologyError(
                    code: .missingKey,
                    keyPath: streamsObject.childPath(name),
                    message: "missing; every stream needs an entry ({} takes the defaults)"
                )
            }
            let queue = try object.name("queue", default: "erp.\(name)")
            let partitions = try object.partitions("partitions") ?? 0
            let streamLimit = try object.deliveryLimit("deliveryLimit") ?? deliveryLimit
            streams.append(Stream(name: name, queue: queue, partitions: partitions, deliveryLimit: streamLimit))
        }

        let retryObject = try top.requiredObject("retry", allowed: ["exchange", "requeueExchange", "tiers"])
        let retry = Retry(
            exchange: try retryObject.name("exchange"),
            requeueExchange: try retryObject.name("requeueExchange"),
            tiers: try retryObject.tiers("tiers")
        )

        let deadObject = try top.requiredObject("deadLetter", allowed: ["exchange", "queue"])
        let deadLetter = DeadLetter(exchange: try deadObject.name("exchange"), queue: try deadObject.name("queue"))

        self.init(
            eventsExchange: eventsExchange,
            deliveryLimit: deliveryLimit,
            streams: streams,
            retry: retry,
            deadLetter: deadLetter,
            users: try BrokerUser.parse(top)
        )
        try Self.checkUniqueNames(self)
    }

    /// Two objects of one kind with one name would silently become one on the broker.
    private static func checkUniqueNames(_ topology: Topology) throws(TopologyError) {
        var exchanges: [(name: String, keyPath: String)] = [
            (topology.eventsExchange, "eventsExchange"),
            (topology.retry.exchange, "retry.exchange"),
            (topology.retry.requeueExchange, "retry.requeueExchange"),
            (topology.deadLetter.exchange, "deadLetter.exchange"),
        ]
        var queues: [(name: String, keyPath: String)] = []
        for stream in topology.streams {
            let keyPath = "streams.\(stream.name).queue"
            if let partitionExchange = stream.partitionExchange {
                exchanges.append((partitionExchange, keyPath))
            }
            queues += stream.workQueues.map { ($0, keyPath) }
        }
        for stream in topology.streams {
            for tier in topology.retry.tiers {
                queues.append((topology.retryQueue(stream: stream.name, tier: tier), "retry.exchange"))
            }
        }
        queues.append((topology.deadLetter.queue, "deadLetter.queue"))

        for (kind, entries) in [("exchange", exchanges), ("queue", queues)] {
            var seen: [String: String] = [:]
            for entry in entries {
                if entry.name.utf8.count > maximumNameLength {
                    throw TopologyError(
                        code: .invalidName,
                        keyPath: entry.keyPath,
                        message: "the derived \(kind) name \"\(entry.name)\" is longer than \(maximumNameLength) bytes"
                    )
                }
                if let first = seen[entry.name] {
                    throw TopologyError(
                        code: .duplicateName,
                        keyPath: entry.keyPath,
                        message: "\(kind) \"\(entry.name)\" is also the \(kind) of \(first); names must differ"
                    )
                }
                seen[entry.name] = entry.keyPath
            }
        }
    }

    static let maximumNameLength = 255

    /// Why `data` is not JSON, with the line and column when Foundation says where.
    private static func jsonProblem(in data: Data) -> String {
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            // Foundation reports a byte offset ("Invalid value around character 33."); people read lines.
            if let range = detail.range(of: " around character "),
                let offset = Int(detail[range.upperBound...].prefix { $0.isNumber }), offset <= data.count
            {
                let before = Array(data).prefix(offset)
                let line = before.count { $0 == UInt8(ascii: "\n") } + 1
                let column = offset - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
                return "\(detail[..<range.lowerBound]) at line \(line), column \(column)"
            }
            return detail
        }
        return "a JSON value that cannot be read"
    }
}

/// A JSON document as plain values, so that unknown keys and wrong types can be reported by path.
enum TopologyJSONValue: Decodable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([TopologyJSONValue])
    case object([String: TopologyJSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([TopologyJSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode(Dictionary<String, TopologyJSONValue>.self))
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Reads one JSON object whose keys were checked against the format when it was made.
struct TopologyObjectReader {
    let path: String
    let fields: [String: TopologyJSONValue]

    /// Rejects a `description` that is not a string and any key neither `description` nor in
    /// `allowed`, before anything is read: a misspelt key is reported as itself, not as the
    /// correctly spelt key being missing.
    init(
        path: String,
        fields: [String: TopologyJSONValue],
        allowed: [String],
        unknownKeyCode: TopologyError.Code = .unknownKey
    ) throws(TopologyError) {
        self.path = path
        self.fields = fields
        if let description = fields["description"] {
            guard case .string = description else {
                throw wrongType("description", description, expected: "a string (a comment)")
            }
        }
        if let key = fields.keys.filter({ $0 != "description" && !allowed.contains($0) }).sorted().first {
            let known = (allowed + ["description"]).joined(separator: ", ")
            let message =
                unknownKeyCode == .unknownStream
                ? "unknown stream \"\(key)\"; the streams are \(allowed.joined(separator: ", "))"
                : "unknown key \"\(key)\"; allowed here: \(known)"
            throw TopologyError(code: unknownKeyCode, keyPath: childPath(key), message: message)
        }
    }

    func childPath(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    func value(_ key: String) -> TopologyJSONValue? {
        switch fields[key] {
        case .none, .null?: nil
        case let value?: value
        }
    }

    func wrongType(_ key: String, _ value: TopologyJSONValue, expected: String) -> TopologyError {
        TopologyError(code: .wrongType, keyPath: childPath(key), message: "expected \(expected), found \(value.typeName)")
    }

    func missing(_ key: String, _ what: String) -> TopologyError {
        TopologyError(code: .missingKey, keyPath: childPath(key), message: "missing; expected \(what)")
    }

    func object(
        _ key: String,
        allowed: [String],
        unknownKeyCode: TopologyError.Code = .unknownKey
    ) throws(TopologyError) -> TopologyObjectReader? {
        guard let value = value(key) else { return nil }
        guard case .object(let fields) = value else { throw wrongType(key, value, expected: "an object") }
        return try TopologyObjectReader(path: childPath(key), fields: fields, allowed: allowed, unknownKeyCode: unknownKeyCode)
    }

    func requiredObject(
        _ key: String,
        allowed: [String],
        unknownKeyCode: TopologyError.Code = .unknownKey
    ) throws(TopologyError) -> TopologyObjectReader {
        guard let object = try object(key, allowed: allowed, unknownKeyCode: unknownKeyCode) else {
            throw missing(key, "an object")
        }
        return object
    }

    /// An exchange or queue name.
    func name(_ key: String, default defaultValue: String? = nil) throws(TopologyError) -> String {
        guard let value = value(key) else {
            if let defaultValue { return defaultValue }
            throw missing(key, "an exchange or queue name")
        }
        guard case .string(let name) = value else { throw wrongType(key, value, expected: "a string") }
        let problem: String? =
            if name.isEmpty {
                "must not be empty"
            } else if name.utf8.count > Topology.maximumNameLength {
                "is longer than \(Topology.maximumNameLength) bytes"
            } else if name.hasPrefix("amq.") {
                "must not start with \"amq.\": RabbitMQ reserves those names"
            } else if !name.unicodeScalars.allSatisfy(Self.isNameCharacter) {
                "may contain only letters, digits and . _ - :"
            } else {
                nil
            }
        if let problem {
            throw TopologyError(code: .invalidName, keyPath: childPath(key), message: "\"\(name)\" \(problem)")
        }
        return name
    }

    private static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-", ":": true
        default: false
        }
    }

    private func integer(_ key: String) throws(TopologyError) -> Int? {
        guard let value = value(key) else { return nil }
        switch value {
        case .integer(let integer) where Int64(Int.min)...Int64(Int.max) ~= integer:
            return Int(integer)
        case .number(let number) where number.rounded() == number && abs(number) < 1e15:
            return Int(number)
        case .number(let number):
            throw TopologyError(code: .wrongType, keyPath: childPath(key), message: "expected a whole number, found \(number)")
        default:
            throw wrongType(key, value, expected: "a whole number")
        }
    }

    func deliveryLimit(_ key: String) throws(TopologyError) -> Int? {
        guard let limit = try integer(key) else { return nil }
        guard limit >= 1 else {
            throw TopologyError(
                code: .invalidValue,
                keyPath: childPath(key),
                message: "\(limit) is not a delivery limit; expected a whole number ≥ 1 (deliveries before the broker dead-letters a message)"
            )
        }
        return limit
    }

    func partitions(_ key: String) throws(TopologyError) -> Int? {
        guard let count = try integer(key) else { return nil }
        let range = Topology.partitionCountRange
        guard count == 0 || range.contains(count) else {
            let hint = count == 1 ? " (one partition is the same single queue behind an extra exchange: use 0)" : ""
            throw TopologyError(
                code: .invalidPartitions,
                keyPath: childPath(key),
                message: "\(count) is not a partition count; expected 0 (one queue) or \(range.lowerBound)…\(range.upperBound)\(hint)"
            )
        }
        return count
    }

    func tiers(_ key: String) throws(TopologyError) -> [Topology.RetryTier] {
        guard let value = value(key) else { throw missing(key, "an array of durations such as [\"5s\", \"30s\", \"5m\"]") }
        guard case .array(let elements) = value else { throw wrongType(key, value, expected: "an array of durations") }
        let range = Topology.retryTierCountRange
        guard range.contains(elements.count) else {
            throw TopologyError(
                code: .invalidTiers,
                keyPath: childPath(key),
                message: "\(elements.count) tiers; expected \(range.lowerBound)…\(range.upperBound)"
            )
        }
        var tiers: [Topology.RetryTier] = []
        for (index, element) in elements.enumerated() {
            let elementPath = "\(childPath(key))[\(index)]"
            guard case .string(let text) = element else {
                throw TopologyError(
                    code: .wrongType,
                    keyPath: elementPath,
                    message: "expected a duration string, found \(element.typeName)"
                )
            }
            let delay: Duration
            do throws(DurationParseError) {
                delay = try DurationParser.parse(text)
            } catch {
                throw TopologyError(code: .invalidDuration, keyPath: elementPath, message: error.description)
            }
            guard delay >= Topology.minimumRetryDelay else {
                throw TopologyError(
                    code: .invalidTiers,
                    keyPath: elementPath,
                    message: "\"\(text)\" is shorter than the minimum retry delay of \(DurationParser.format(Topology.minimumRetryDelay))"
                )
            }
            if let previous = tiers.last, delay <= previous.delay {
                throw TopologyError(
                    code: .invalidTiers,
                    keyPath: elementPath,
                    message: "\"\(text)\" is not longer than the tier before it (\(previous.name)); tiers must strictly increase"
                )
            }
            tiers.append(Topology.RetryTier(delay: delay))
        }
        return tiers
    }
}
