import Foundation
import Testing
import WarehouseSyncCore
import WarehouseSyncTesting

/// The event JSON Schemas in `schemas/` and their examples, held against the core's decoder: every
/// valid example decodes, every invalid one is rejected for the rule `expectations.json` names,
/// and the schemas' enums and limits are the core's. `scripts/check-schemas` holds the same
/// examples against the schemas themselves.
@Suite("Event schemas and their examples")
struct EventSchemaExamplesTests {
    let decoder = EventDecoder()

    @Test("a valid example decodes", arguments: SchemaExamples.validNames)
    func validExampleDecodes(name: String) throws {
        let body = try SchemaExamples.contents(of: "valid/" + name)
        let event = try decoder.decode(body)
        #expect(name.hasPrefix(event.stream.rawValue + "-"), "\(name) decodes as a \(event.stream) event")
        // The routing key the publisher would use passes too.
        _ = try decoder.decode(body, routingKey: event.routingKey)
    }

    @Test("an invalid example is rejected for the rule in expectations.json", arguments: SchemaExamples.invalidNames)
    func invalidExampleIsRejected(name: String) throws {
        let expected = try #require(try SchemaExamples.manifest.get()[name])
        let body = try SchemaExamples.contents(of: "invalid/" + name)
        let error = try #require(throws: EventValidationError.self, "\(name) must not decode") {
            try decoder.decode(body)
        }
        #expect(
            error.violations.contains { $0.field == expected.field && $0.rule.contains(expected.rule) },
            "\(name): expected '\(expected.field)' with a rule containing '\(expected.rule)', got: \(error)"
        )
        #expect(error.violations.count == 1, "\(name) must break exactly one rule, breaks: \(error)")
    }

    @Test("every example file is in valid/ or in the manifest, and every manifest entry is a file")
    func noOrphans() throws {
        let manifest = try SchemaExamples.manifest.get()
        let valid = try SchemaExamples.validFiles.get()
        let files = try SchemaExamples.exampleFiles()
        var invalidFiles: Set<String> = []
        for path in files {
            if path.hasPrefix("valid/"), !path.dropFirst(6).contains("/") {
                continue
            } else if path == "invalid/" + SchemaExamples.manifestName {
                continue
            } else if path.hasPrefix("invalid/"), manifest[String(path.dropFirst(8))] != nil {
                invalidFiles.insert(String(path.dropFirst(8)))
            } else {
                Issue.record("schemas/examples/\(path) is neither in valid/ nor in invalid/expectations.json")
            }
        }
        for name in manifest.keys.sorted() where !invalidFiles.contains(name) {
            Issue.record("invalid/expectations.json lists \(name), which is not a file in invalid/")
        }
        // The parameterised tests above run once per example: they must have examples to run.
        for stream in EventStream.allCases {
            let prefix = stream.rawValue + "-"
            #expect(valid.filter { $0.hasPrefix(prefix) }.count >= 4, "too few valid \(stream) examples")
            #expect(manifest.keys.filter { $0.hasPrefix(prefix) }.count >= 8, "too few invalid \(stream) examples")
        }
        #expect(Set(valid + manifest.keys).allSatisfy { name in
            EventStream.allCases.contains { name.hasPrefix($0.rawValue + "-") }
        }, "every example's name starts with its stream: inventory-, shipment-, receipt-")
    }

    @Test("the schema's constants, enums and limits are the core's", arguments: EventStream.allCases)
    func schemaMatchesTheCore(stream: EventStream) throws {
        let schema = try SchemaExamples.schema(of: stream)
        let properties = try #require(schema["properties"]?.objectValue, "no properties")
        let definitions = try #require(schema["$defs"]?.objectValue, "no $defs")

        #expect(properties["schema"]?["const"] == .string(stream.schema))

        let statuses = try strings(properties["status"]?["enum"], "properties.status.enum")
        let codes = StatusMapping.default.entries.filter { $0.stream == stream }.map(\.code)
        let canonical: [String]
        switch stream {
        case .inventory: canonical = InventoryStatus.allCases.map(\.rawValue)
        case .shipment: canonical = ShipmentStatus.allCases.map(\.rawValue)
        case .receipt: canonical = ReceiptStatus.allCases.map(\.rawValue)
        }
        #expect(Set(statuses) == Set(canonical + codes), "status enum: the canonical names and the default mapping's codes")
        #expect(statuses.count == Set(statuses).count, "status enum has duplicates")

        switch stream {
        case .inventory:
            let reasons = try strings(properties["reason"]?["enum"], "properties.reason.enum")
            #expect(reasons == InventoryReason.allCases.map(\.rawValue))
        case .shipment:
            // `lines` is required for `shipped` and every code the default mapping maps to it.
            let shipped = try strings(schema["if"]?["properties"]?["status"]?["enum"], "if.properties.status.enum")
            let shippedCodes = StatusMapping.default.entries
                .filter { $0.stream == .shipment && $0.canonical == ShipmentStatus.shipped.rawValue }.map(\.code)
            #expect(Set(shipped) == Set([ShipmentStatus.shipped.rawValue] + shippedCodes))
        case .receipt:
            break
        }

        #expect(properties["eventId"]?["maxLength"] == .number(EventDecoder.maxEventIdLength))
        #expect(properties["occurredAt"]?["maxLength"] == .number(EventDecoder.maxTimestampLength))
        #expect(definitions["text"]?["maxLength"] == .number(EventDecoder.maxStringLength))
        #expect(definitions["optionalText"]?["maxLength"] == .number(EventDecoder.maxStringLength))
        #expect(properties["sequence"]?["maximum"] == .number(EventDecoder.maxSequence))
        #expect(definitions["decimalNumber"]?["maximum"] == Quantity.max.jsonValue)
        #expect(definitions["decimalNumber"]?["minimum"] == Quantity.min.jsonValue)
    }

    /// The strings of a JSON array of strings.
    private func strings(_ value: JSONValue?, _ path: String) throws -> [String] {
        let elements = try #require(value?.arrayValue, "\(path) is not an array")
        return try elements.map { try #require($0.stringValue, "\(path) holds a non-string") }
    }
}

/// The repository's `schemas/` folder, found from this file's path, and its examples.
enum SchemaExamples {
    struct Expectation: Sendable {
        let field: String
        let rule: String
    }

    struct LoadError: Error, CustomStringConvertible {
        let description: String
    }

    static let manifestName = "expectations.json"

    static var directory: URL {
        TestRepository.root
            .appendingPathComponent("schemas")
    }

    static var examples: URL { directory.appendingPathComponent("examples") }

    /// `examples/invalid/expectations.json`: file name → field and a fragment of the rule.
    static let manifest: Result<[String: Expectation], any Error> = Result {
        let object = try parse(examples.appendingPathComponent("invalid/" + manifestName))
        var entries: [String: Expectation] = [:]
        for member in object {
            guard let field = member.value["field"]?.stringValue, let rule = member.value["rule"]?.stringValue else {
                throw LoadError(description: "\(manifestName): \(member.key) needs string fields field and rule")
            }
            entries[member.key] = Expectation(field: field, rule: rule)
        }
        return entries
    }

    static let validFiles: Result<[String], any Error> = Result {
        try FileManager.default.contentsOfDirectory(atPath: examples.appendingPathComponent("valid").path)
            .filter { $0.hasSuffix(".json") }.sorted()
    }

    /// Empty when the folder cannot be read; ``EventSchemaExamplesTests/noOrphans()`` then fails.
    static let validNames: [String] = (try? validFiles.get()) ?? []
    static let invalidNames: [String] = ((try? manifest.get()) ?? [:]).keys.sorted()

    /// Every `.json` file under `examples/`, as a path relative to it (`valid/x.json`).
    static func exampleFiles() throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: examples.path) else {
            throw LoadError(description: "cannot list \(examples.path)")
        }
        var paths: [String] = []
        while let path = enumerator.nextObject() as? String {
            if path.hasSuffix(".json") { paths.append(path) }
        }
        return paths.sorted()
    }

    /// The bytes of `examples/<path>`.
    static func contents(of path: String) throws -> Data {
        try Data(contentsOf: examples.appendingPathComponent(path))
    }

    /// The schema file of `stream`: `inventory.delta/1` is `inventory.delta-1.schema.json`.
    static func schema(of stream: EventStream) throws -> JSONObject {
        let name = stream.schema.replacingOccurrences(of: "/", with: "-") + ".schema.json"
        return try parse(directory.appendingPathComponent(name))
    }

    private static func parse(_ file: URL) throws -> JSONObject {
        guard let object = try JSONValue(parsing: Data(contentsOf: file)).objectValue else {
            throw LoadError(description: "\(file.path) is not a JSON object")
        }
        return object
    }
}
