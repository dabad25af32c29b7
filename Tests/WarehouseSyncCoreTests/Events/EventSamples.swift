import WarehouseSyncCore

/// Valid sample events, as `whsync publish` reads them: one JSON object per line.
enum EventSamples {
    static let inventory = #"""
        {"schema":"inventory.delta/1","eventId":"evt-inv-0001","occurredAt":"2024-05-01T08:30:00.123Z","warehouse":"WH1","sequence":1,"correlationId":"corr-1","source":"acme-wms","sku":"SKU-1","quantity":12.5,"uom":"EA","status":"available","reason":"receipt","location":"A-01-01","lot":"LOT-7"}
        {"schema":"inventory.delta/1","eventId":"evt-inv-0002","occurredAt":"2024-05-01T10:30:00+02:00","warehouse":"WH1","sequence":2,"sku":"SKU-1","quantity":"-3","uom":"EA","status":"QC","reason":"adjustment"}
        {"schema":"inventory.delta/1","eventId":"evt-inv-0003","occurredAt":"2024-05-01T09:00:00Z","warehouse":"WH-2_b","sequence":7,"sku":"SKU-9","quantity":-0.000001,"uom":"KG","status":"in-transit","reason":"return","x-extension":{"ignored":[1,2,3]}}
        """#

    static let shipment = #"""
        {"schema":"shipment.event/1","eventId":"evt-shp-0001","occurredAt":"2024-05-02T14:00:00Z","warehouse":"WH1","sequence":1,"shipmentId":"SHP-100","orderRef":"SO-5000","status":"packed"}
        {"schema":"shipment.event/1","eventId":"evt-shp-0002","occurredAt":"2024-05-02T16:45:10.5Z","warehouse":"WH1","sequence":2,"correlationId":"corr-9","shipmentId":"SHP-100","orderRef":"SO-5000","status":"shipped","lines":[{"sku":"SKU-1","quantity":2,"uom":"EA"},{"sku":"SKU-2","quantity":"1.25","uom":"KG","lot":"L-9"}],"carrier":"DHL","trackingNumber":"JD0001"}
        {"schema":"shipment.event/1","eventId":"evt-shp-0003","occurredAt":"2024-05-04T09:00:00-05:00","warehouse":"WH1","sequence":3,"shipmentId":"SHP-100","orderRef":"SO-5000","status":"DELIVERED","lines":[]}
        """#

    static let receipt = #"""
        {"schema":"receipt.event/1","eventId":"evt-rcp-0001","occurredAt":"2024-05-03T07:15:00Z","warehouse":"WH1","sequence":1,"receiptId":"RCP-1","purchaseOrderRef":"PO-77","supplier":"Acme Supplies","status":"received","lines":[{"sku":"SKU-1","quantityExpected":10,"quantityReceived":9,"uom":"EA"}]}
        {"schema":"receipt.event/1","eventId":"evt-rcp-0002","occurredAt":"2024-05-03T11:00:00Z","warehouse":"WH1","sequence":2,"receiptId":"RCP-1","purchaseOrderRef":"PO-77","supplier":"Acme Supplies","status":"putaway-complete","lines":[{"sku":"SKU-1","quantityExpected":"10","quantityReceived":"10","uom":"EA","lot":"LOT-1"},{"sku":"SKU-3","quantityExpected":0,"quantityReceived":1.5e1,"uom":"EA"}]}
        {"schema":"receipt.event/1","eventId":"evt-rcp-0003","occurredAt":"2024-05-05T00:00:00.000001Z","warehouse":"WH2","sequence":1,"source":"acme-wms","receiptId":"RCP-2","purchaseOrderRef":"PO-78","supplier":"Globex","status":"RECEIVED","lines":[{"sku":"SKU-4","quantityExpected":5,"quantityReceived":0,"uom":"BOX"}]}
        """#

    /// Every sample line with its expected routing key, sequencing key and stream.
    static let all: [(line: String, routingKey: String, sequencingKey: String, stream: EventStream)] = {
        let expected: [(String, EventStream, [(String, String)])] = [
            (inventory, .inventory, [("inventory.WH1", "WH1/SKU-1"), ("inventory.WH1", "WH1/SKU-1"), ("inventory.WH-2_b", "WH-2_b/SKU-9")]),
            (shipment, .shipment, [("shipment.WH1", "WH1/SHP-100"), ("shipment.WH1", "WH1/SHP-100"), ("shipment.WH1", "WH1/SHP-100")]),
            (receipt, .receipt, [("receipt.WH1", "WH1/RCP-1"), ("receipt.WH1", "WH1/RCP-1"), ("receipt.WH2", "WH2/RCP-2")]),
        ]
        return expected.flatMap { text, stream, keys in
            zip(lines(of: text), keys).map { ($0, $1.0, $1.1, stream) }
        }
    }()

    static func lines(of text: String) -> [String] {
        text.split(separator: "\n").map(String.init)
    }

    /// The first sample of a stream as a parsed object, for building invalid variants.
    static func base(_ stream: EventStream) -> JSONObject {
        let text: String
        switch stream {
        case .inventory: text = inventory
        case .shipment: text = shipment
        case .receipt: text = receipt
        }
        // Shipment's first sample has no lines; its second (shipped, with lines) is more useful.
        let line = lines(of: text)[stream == .shipment ? 1 : 0]
        guard let object = try? JSONValue(parsing: line).objectValue else {
            preconditionFailure("sample is not a JSON object")
        }
        return object
    }
}
