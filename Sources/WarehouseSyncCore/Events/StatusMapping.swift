/// Per stream, which WMS status codes mean which canonical status (DESIGN §2). Canonical names
/// are always accepted; any other code must be mapped, or it is invalid. Codes match exactly
/// (case-sensitive).
///
/// ``default`` maps:
///
/// | stream | codes | canonical |
/// |---|---|---|
/// | inventory | `AVAIL`, `AVAILABLE` | `available` |
/// | inventory | `ALLOC`, `ALLOCATED` | `allocated` |
/// | inventory | `QUAR`, `QUARANTINED` | `quarantined` |
/// | inventory | `TRANSIT`, `IN_TRANSIT` | `in-transit` |
/// | inventory | `DMG`, `DAMAGED` | `damaged` |
/// | inventory | `QC`, `QA`, `HOLD`, `QUALITY_HOLD` | `quality-hold` |
/// | shipment | `PACKED`, `SHIPPED`, `DELIVERED`, `CANCELLED` | the same in lower case |
/// | receipt | `RECEIVED`, `PUTAWAY_COMPLETE` | `received`, `putaway-complete` |
///
/// Operators extend it with configuration text such as `inventory.QC=quality-hold,shipment.SHP=shipped`:
/// `StatusMapping.default.merging(try StatusMapping(parsing: text))`.
public struct StatusMapping: Sendable, Equatable, CustomStringConvertible {
    /// One mapping: on `stream`, `code` means the canonical status named `canonical`.
    public struct Entry: Sendable, Hashable, CustomStringConvertible {
        public let stream: EventStream
        public let code: String
        public let canonical: String

        /// On `Status.stream`, `code` means `status`.
        public init<Status: CanonicalStatus>(code: String, status: Status) {
            self.init(stream: Status.stream, code: code, canonical: status.rawValue)
        }

        init(stream: EventStream, code: String, canonical: String) {
            self.stream = stream
            self.code = code
            self.canonical = canonical
        }

        /// `inventory.QC=quality-hold`.
        public var description: String { "\(stream.rawValue).\(code)=\(canonical)" }
    }

    /// code → canonical name, per stream.
    private var codes: [EventStream: [String: String]]

    /// Canonical names only.
    public init() {
        codes = [:]
    }

    /// The built-in mapping documented on the type.
    public static let `default`: StatusMapping = {
        var mapping = StatusMapping()
        let table: [(EventStream, String, String)] = [
            (.inventory, "AVAIL", "available"), (.inventory, "AVAILABLE", "available"),
            (.inventory, "ALLOC", "allocated"), (.inventory, "ALLOCATED", "allocated"),
            (.inventory, "QUAR", "quarantined"), (.inventory, "QUARANTINED", "quarantined"),
            (.inventory, "TRANSIT", "in-transit"), (.inventory, "IN_TRANSIT", "in-transit"),
            (.inventory, "DMG", "damaged"), (.inventory, "DAMAGED", "damaged"),
            (.inventory, "QC", "quality-hold"), (.inventory, "QA", "quality-hold"),
            (.inventory, "HOLD", "quality-hold"), (.inventory, "QUALITY_HOLD", "quality-hold"),
            (.shipment, "PACKED", "packed"), (.shipment, "SHIPPED", "shipped"),
            (.shipment, "DELIVERED", "delivered"), (.shipment, "CANCELLED", "cancelled"),
            (.receipt, "RECEIVED", "received"), (.receipt, "PUTAWAY_COMPLETE", "putaway-complete"),
        ]
        for (stream, code, canonical) in table {
            mapping.codes[stream, default: [:]][code] = canonical
        }
        return mapping
    }()

    /// Parses configuration text: entries `<stream>.<code>=<canonical>` separated by commas or
    /// newlines, with optional spaces around entries and `=`. Empty text is an empty mapping. Only
    /// the given entries (plus canonical names) are in the result; merge it into ``default`` to
    /// extend the defaults.
    ///
    /// Errors name the entry: an entry without `.` or `=`, an empty or over-long (> 64) code,
    /// an unknown stream, a canonical status the stream does not have, a code that is itself a
    /// canonical name of the stream mapped elsewhere, or the same code given two meanings.
    public init(parsing text: String) throws(StatusMappingError) {
        codes = [:]
        let entries = text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == "\r" })
        for rawEntry in entries {
            let entry = rawEntry.statusMappingTrimmed()
            guard !entry.isEmpty else { continue }
            guard let equals = entry.firstIndex(of: "="), let dot = entry[..<equals].firstIndex(of: ".") else {
                throw StatusMappingError(code: .malformedEntry, entry: entry)
            }
            let streamName = String(entry[..<dot]).statusMappingTrimmed()
            let code = String(entry[entry.index(after: dot)..<equals]).statusMappingTrimmed()
            let canonical = String(entry[entry.index(after: equals)...]).statusMappingTrimmed()
            guard !code.isEmpty, code.count <= 64, !code.contains(where: \.isWhitespace), !canonical.isEmpty else {
                throw StatusMappingError(code: .malformedEntry, entry: entry)
            }
            guard let stream = EventStream(rawValue: streamName) else {
                throw StatusMappingError(code: .unknownStream, entry: entry)
            }
            let names = Self.canonicalNames(of: stream)
            guard names.contains(canonical) else {
                throw StatusMappingError(code: .unknownStatus, entry: entry)
            }
            if names.contains(code), code != canonical {
                throw StatusMappingError(code: .remapsCanonicalStatus, entry: entry)
            }
            if let existing = codes[stream]?[code], existing != canonical {
                throw StatusMappingError(code: .conflictingEntry, entry: entry)
            }
            codes[stream, default: [:]][code] = canonical
        }
    }

    /// This mapping with `other`'s entries added; where both map a code, `other` wins.
    public func merging(_ other: StatusMapping) -> StatusMapping {
        var merged = self
        for (stream, otherCodes) in other.codes {
            merged.codes[stream, default: [:]].merge(otherCodes) { _, new in new }
        }
        return merged
    }

    /// The canonical status `code` means (a canonical name means itself), or `nil` when the code
    /// is unknown.
    public func status<Status: CanonicalStatus>(for code: String, as type: Status.Type = Status.self) -> Status? {
        if let status = Status(rawValue: code) { return status }
        guard let canonical = codes[Status.stream]?[code] else { return nil }
        return Status(rawValue: canonical)
    }

    /// All mapped codes (canonical names not included), by stream and then code.
    public var entries: [Entry] {
        EventStream.allCases.flatMap { stream in
            (codes[stream] ?? [:]).sorted { $0.key < $1.key }.map {
                Entry(stream: stream, code: $0.key, canonical: $0.value)
            }
        }
    }

    /// The entries as configuration text that ``init(parsing:)`` reads back.
    public var description: String {
        entries.map(\.description).joined(separator: ",")
    }

    static func canonicalNames(of stream: EventStream) -> [String] {
        switch stream {
        case .inventory: InventoryStatus.allCases.map(\.rawValue)
        case .shipment: ShipmentStatus.allCases.map(\.rawValue)
        case .receipt: ReceiptStatus.allCases.map(\.rawValue)
        }
    }
}

/// A status mapping configuration entry that cannot be used. The description names the entry
/// and what is wrong with it.
public struct StatusMappingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Sendable {
            case malformedEntry = "malformed entry"
            case unknownStream = "unknown stream"
            case unknownStatus = "unknown canonical status"
            case remapsCanonicalStatus = "remaps a canonical status"
            case conflictingEntry = "conflicting entry"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Not `<stream>.<code>=<canonical>`, or an empty, over-long or spaced code.
        public static let malformedEntry = Code(.malformedEntry)
        /// The stream is not `inventory`, `shipment` or `receipt`.
        public static let unknownStream = Code(.unknownStream)
        /// The target is not a canonical status of the stream.
        public static let unknownStatus = Code(.unknownStatus)
        /// The code is a canonical name of the stream, mapped to another status.
        public static let remapsCanonicalStatus = Code(.remapsCanonicalStatus)
        /// The same code mapped to two statuses.
        public static let conflictingEntry = Code(.conflictingEntry)

        public var description: String { base.rawValue }
    }

    public let code: Code
    /// The entry as written (trimmed).
    public let entry: String

    public init(code: Code, entry: String) {
        self.code = code
        self.entry = entry
    }

    public var description: String {
        let shown = entry.count > 100 ? String(entry.prefix(100)) + "…" : entry
        let hint: String
        switch code {
        case .malformedEntry:
            hint = "expected <stream>.<code>=<canonical status>, e.g. inventory.QC=quality-hold"
        case .unknownStream:
            hint = "the stream must be one of " + EventStream.allCases.map(\.rawValue).joined(separator: ", ")
        case .unknownStatus, .remapsCanonicalStatus:
            let streamName = shown.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
            let names = EventStream(rawValue: streamName).map { StatusMapping.canonicalNames(of: $0) } ?? []
            hint = code == .unknownStatus
                ? "the status must be one of " + names.joined(separator: ", ")
                : "a canonical status name cannot be mapped to another status"
        default:
            hint = "the code is already mapped to another status"
        }
        return "status mapping entry '\(shown)': \(code): \(hint)"
    }
}

private extension StringProtocol {
    func statusMappingTrimmed() -> String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
