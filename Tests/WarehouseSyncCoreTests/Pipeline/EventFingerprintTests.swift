import PropertyBased
import Testing

@testable import WarehouseSyncCore

@Suite("EventFingerprint")
struct EventFingerprintTests {
    /// Pins the canonical form: it is compared with stored fingerprints, so any change to it must
    /// be deliberate (and migrated).
    @Test("the canonical content and its hash are pinned")
    func pinnedCanonicalForm() {
        let event = PipelineFixtures.inventory()
        #expect(
            EventFingerprint.canonicalContent(of: event).serialized()
                == #"{"eventId":"evt-1","occurredAt":"1714552200.000000000","quantity":5,"reason":"adjustment","schema":"inventory.delta/1","sequence":1,"sku":"SKU-1","status":"available","uom":"EA","warehouse":"WH1"}"#
        )
        #expect(EventFingerprint(of: event).hex == "fc5d3ffbf4fb65d3f34b15d8c47f6bbedc6d6513fb6b6938bfb683cc32c3168b")
    }

    @Test("key order, whitespace, number form, offset and correlation id do not change it")
    func formDoesNotMatter() {
        let compact = PipelineFixtures.inventory(quantity: Quantity(parsing: "1.5")!, variant: 0)
        let resent = PipelineFixtures.inventory(quantity: Quantity(parsing: "1.5")!, variant: 1)
        #expect(compact != resent)  // the decoded values differ (text of occurredAt, correlationId)
        #expect(EventFingerprint(of: compact) == EventFingerprint(of: resent))
    }

    @Test("a WMS status code and its canonical status give the same fingerprint")
    func statusCodeIsMapped() {
        let canonical = PipelineFixtures.decode(Self.inventoryBody(status: "quality-hold"))
        let wmsCode = PipelineFixtures.decode(Self.inventoryBody(status: "QC"))
        #expect(EventFingerprint(of: canonical) == EventFingerprint(of: wmsCode))
    }

    @Test(
        "any change of content changes it",
        arguments: [
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00.001Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH2","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":2,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-2","quantity":5,"uom":"EA","status":"available","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5.000001,"uom":"EA","status":"available","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"KG","status":"available","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"damaged","reason":"adjustment"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"pick"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"adjustment","lot":"L1"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"adjustment","location":"A-1"}"#,
            #"{"schema":"inventory.delta/1","eventId":"evt-2","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"available","reason":"adjustment"}"#,
        ]
    )
    func contentMatters(changed: String) {
        let original = EventFingerprint(of: PipelineFixtures.inventory())
        #expect(EventFingerprint(of: PipelineFixtures.decode(changed)) != original)
    }

    @Test("shipment and receipt lines are part of it, in order")
    func linesMatter() {
        let shipment = #"{"schema":"shipment.event/1","eventId":"s-1","occurredAt":"2024-05-02T14:00:00Z","warehouse":"WH1","sequence":1,"shipmentId":"SHP-1","orderRef":"SO-1","status":"shipped","lines":[LINES]}"#
        let a = #"{"sku":"A","quantity":1,"uom":"EA"}"#
        let b = #"{"sku":"B","quantity":2,"uom":"EA"}"#
        let bAsString = #"{"uom":"EA","quantity":"2.0","sku":"B"}"#
        func fingerprint(_ lines: String) -> EventFingerprint {
            EventFingerprint(of: PipelineFixtures.decode(shipment.replacingOccurrences(of: "LINES", with: lines)))
        }
        #expect(fingerprint(a + "," + b) == fingerprint(a + "," + bAsString))
        #expect(fingerprint(a + "," + b) != fingerprint(b + "," + a))
        #expect(fingerprint(a + "," + b) != fingerprint(a))

        let receipt = #"{"schema":"receipt.event/1","eventId":"r-1","occurredAt":"2024-05-03T07:15:00Z","warehouse":"WH1","sequence":1,"receiptId":"R-1","purchaseOrderRef":"PO-1","supplier":"Acme","status":"received","lines":[{"sku":"A","quantityExpected":10,"quantityReceived":RECEIVED,"uom":"EA"}]}"#
        func receiptFingerprint(_ received: String) -> EventFingerprint {
            EventFingerprint(of: PipelineFixtures.decode(receipt.replacingOccurrences(of: "RECEIVED", with: received)))
        }
        #expect(receiptFingerprint("9") == receiptFingerprint("9.0"))
        #expect(receiptFingerprint("9") != receiptFingerprint("10"))
    }

    @Test("a stored fingerprint reads back; anything but 64 lowercase hex digits does not")
    func hexRoundTrip() {
        let fingerprint = EventFingerprint(of: PipelineFixtures.inventory())
        #expect(EventFingerprint(hex: fingerprint.hex) == fingerprint)
        #expect(fingerprint.description == fingerprint.hex)
        #expect(EventFingerprint(hex: fingerprint.hex.uppercased()) == nil)
        #expect(EventFingerprint(hex: String(fingerprint.hex.dropLast())) == nil)
        #expect(EventFingerprint(hex: String(fingerprint.hex.dropLast()) + "g") == nil)
    }

    @Test("property: every re-sent form of an event has its fingerprint, every other quantity does not")
    func propertyFormVersusContent() async {
        await propertyCheck(
            input: Gen.int64(in: -1_000_000_000...1_000_000_000), Gen.int64(in: 1...1_000_000), Gen.int(in: 1...4)
        ) { micro, sequence, delta in
            guard micro != 0 else { return }  // a zero delta is invalid
            let quantity = Quantity(microUnits: micro)
            let original = PipelineFixtures.inventory(sequence: sequence, quantity: quantity, variant: 0)
            let resent = PipelineFixtures.inventory(sequence: sequence, quantity: quantity, variant: 1)
            #expect(EventFingerprint(of: original) == EventFingerprint(of: resent))

            let other = Quantity(microUnits: micro + Int64(delta))
            guard !other.isZero else { return }
            let changed = PipelineFixtures.inventory(sequence: sequence, quantity: other, variant: 1)
            #expect(EventFingerprint(of: original) != EventFingerprint(of: changed))
        }
    }

    private static func inventoryBody(status: String) -> String {
        #"{"schema":"inventory.delta/1","eventId":"evt-1","occurredAt":"2024-05-01T08:30:00Z","warehouse":"WH1","sequence":1,"sku":"SKU-1","quantity":5,"uom":"EA","status":"\#(status)","reason":"adjustment"}"#
    }
}
