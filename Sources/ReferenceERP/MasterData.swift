import Foundation
import WarehouseSyncCore

/// The warehouses and SKUs the ERP knows, loaded once at start from the seed file. A posting that
/// names anything else is answered 422.
///
/// Seed file (JSON):
/// ```json
/// {
///   "warehouses": [{"code": "WH1", "name": "Main DC"}],
///   "skus": [{"sku": "SKU-0001", "uom": "EA", "description": "Widget"}]
/// }
/// ```
public struct MasterData: Sendable, Equatable {
    public struct Warehouse: Sendable, Equatable {
        public let code: String
        public let name: String

        public init(code: String, name: String) {
            self.code = code
            self.name = name
        }
    }

    public struct SKU: Sendable, Equatable {
        public let sku: String
        /// The unit of measure every posting of this SKU must use, compared exactly.
        public let uom: String
        public let description: String

        public init(sku: String, uom: String, description: String = "") {
            self.sku = sku
            self.uom = uom
            self.description = description
        }
    }

    public let warehouses: [String: Warehouse]
    public let skus: [String: SKU]

    /// Master data from lists; a code listed twice keeps the last entry.
    public init(warehouses: [Warehouse], skus: [SKU]) {
        self.warehouses = Dictionary(warehouses.map { ($0.code, $0) }, uniquingKeysWith: { $1 })
        self.skus = Dictionary(skus.map { ($0.sku, $0) }, uniquingKeysWith: { $1 })
    }

    /// Parses a seed document. Errors name the entry and field at fault.
    public init(seedJSON bytes: some Collection<UInt8>) throws(MasterDataError) {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: bytes)
        } catch {
            throw MasterDataError(message: "not valid JSON: \(error)")
        }
        guard let root = document.objectValue else { throw MasterDataError(message: "the seed must be a JSON object") }
        guard let warehouseList = root["warehouses"]?.arrayValue else {
            throw MasterDataError(message: "'warehouses' must be an array")
        }
        guard let skuList = root["skus"]?.arrayValue else { throw MasterDataError(message: "'skus' must be an array") }

        var warehouses: [Warehouse] = []
        var seenWarehouses = Set<String>()
        for (index, entry) in warehouseList.enumerated() {
            let path = "warehouses[\(index)]"
            let code = try Self.requiredString(entry, "code", path)
            guard Self.isWarehouseCode(code) else {
                throw MasterDataError(message: "\(path).code '\(code)' must match [A-Za-z0-9_-]{1,64}")
            }
            guard seenWarehouses.insert(code).inserted else { throw MasterDataError(message: "\(path): warehouse '\(code)' is listed twice") }
            warehouses.append(Warehouse(code: code, name: entry["name"]?.stringValue ?? code))
        }
        var skus: [SKU] = []
        var seenSKUs = Set<String>()
        for (index, entry) in skuList.enumerated() {
            let path = "skus[\(index)]"
            let sku = try Self.requiredString(entry, "sku", path)
            let uom = try Self.requiredString(entry, "uom", path)
            guard seenSKUs.insert(sku).inserted else { throw MasterDataError(message: "\(path): SKU '\(sku)' is listed twice") }
            skus.append(SKU(sku: sku, uom: uom, description: entry["description"]?.stringValue ?? ""))
        }
        guard !warehouses.isEmpty else { throw MasterDataError(message: "the seed lists no warehouses") }
        self.init(warehouses: warehouses, skus: skus)
    }

    /// Reads and parses the seed file at `path`.
    public init(contentsOfFile path: String) throws(MasterDataError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MasterDataError(message: "cannot read \(path)")
        }
        do throws(MasterDataError) {
            try self.init(seedJSON: data)
        } catch {
            throw MasterDataError(message: "\(path): \(error.message)")
        }
    }

    private static func requiredString(_ entry: JSONValue, _ key: String, _ path: String) throws(MasterDataError) -> String {
        guard let value = entry[key]?.stringValue, !value.isEmpty else {
            throw MasterDataError(message: "\(path).\(key) must be a non-empty string")
        }
        return value
    }

    /// DESIGN §2: warehouse codes match `[A-Za-z0-9_-]{1,64}`.
    static func isWarehouseCode(_ code: String) -> Bool {
        (1...64).contains(code.utf8.count) && code.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7a) || byte == 0x5f || byte == 0x2d
        }
    }
}

/// A seed file that cannot be used; the message names the file, entry and field.
public struct MasterDataError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
