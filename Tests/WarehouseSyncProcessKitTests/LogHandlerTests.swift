import Foundation
import Logging
import Testing
import WarehouseSyncLogging

@Suite struct LogHandlerTests {
    private let date = Date(timeIntervalSince1970: 1_763_850_000.25)

    @Test func jsonLineShape() throws {
        let line = WarehouseSyncLogHandler.line(
            format: .json, timestamp: date, level: .warning, label: "inventory-worker", message: "held \"gap\"",
            metadata: [
                LogMetadataKey.eventId.rawValue: "e-1", LogMetadataKey.sequence.rawValue: .stringConvertible(42),
                "nested": .dictionary(["a": .array(["x", "y"])]), "message": "shadowed",
            ])
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["timestamp"] as? String == "2025-11-22T22:20:00.250Z")
        #expect(object["level"] as? String == "warning")
        #expect(object["label"] as? String == "inventory-worker")
        #expect(object["message"] as? String == "held \"gap\"")
        #expect(object["whsync.eventId"] as? String == "e-1")
        #expect(object["whsync.sequence"] as? String == "42")
        #expect((object["nested"] as? [String: Any])?["a"] as? [String] == ["x", "y"])
        #expect(Set(object.keys) == ["timestamp", "level", "label", "message", "whsync.eventId", "whsync.sequence", "nested"])
        // The fixed members come first, so a person scanning raw lines sees them.
        #expect(line.hasPrefix("{\"timestamp\":"))
    }

    @Test func textLine() {
        let line = WarehouseSyncLogHandler.line(
            format: .text, timestamp: date, level: .info, label: "reference-erp", message: "posted",
            metadata: ["whsync.stream": "inventory", "b": "2"])
        #expect(line == "2025-11-22T22:20:00.250Z info reference-erp: posted b=2 whsync.stream=inventory")
        let bare = WarehouseSyncLogHandler.line(
            format: .text, timestamp: date, level: .error, label: "x", message: "m", metadata: [:])
        #expect(bare == "2025-11-22T22:20:00.250Z error x: m")
    }

    @Test func factoryBuildsConfiguredHandlers() {
        let handler = LogHandlerFactory.make(format: .json, level: .debug)("label")
        #expect(handler.logLevel == .debug)
        let concrete = handler as? WarehouseSyncLogHandler
        #expect(concrete?.format == .json)
        #expect(concrete?.label == "label")
    }

    @Test func metadataKeysShareThePrefix() {
        #expect(LogMetadataKey.allCases.count == 6)
        for key in LogMetadataKey.allCases {
            #expect(key.rawValue.hasPrefix(LogMetadataKey.prefix))
        }
        var metadata: Logger.Metadata = [:]
        metadata[.correlationId] = "c-1"
        #expect(metadata["whsync.correlationId"] == "c-1")
    }
}
