import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization
import WarehouseSyncCore

/// The ERP port's second adapter: postings become Tryton stock documents over its JSON-RPC
/// (`ERP_KIND=tryton`, docs/tryton.md).
///
/// - inventory delta → a `stock.shipment.internal` between the status's location and the
///   warehouse's lost-and-found (the sign gives the direction), waited, force-assigned, done;
/// - shipment status → transitions of the `stock.shipment.out` whose reference is the shipment
///   id (packed → pack, shipped → done, delivered → done, cancelled → cancel), created from the
///   first event that carries lines;
/// - receipt → the `stock.shipment.in` whose reference is the receipt id, received (and done).
///
/// Idempotency: an inventory delta's document carries the eventId as its reference; every
/// posting searches by reference first and resumes a document from its state, so a crash
/// between two calls never creates a second one. Outcomes are classified as the HTTP
/// adapter's: posted, already posted, rejected with Tryton's message, transient.
///
/// Call ``shutdown()`` before dropping it.
public final class TrytonERPClient: ERPClient {
    public let configuration: TrytonConfiguration
    private let httpClient: HTTPClient
    private let rpc: TrytonRPC
    private let slots: AsyncSemaphore
    private let directory: TrytonDirectory
    private let logger: Logger
    /// When this client started: the calls a killed predecessor left running inside trytond end
    /// within ``predecessorWindow`` of it.
    private let startedAt = ContinuousClock.now
    /// Documents created while a predecessor's calls may still run, looked at again once they
    /// have ended (``lookAgainLater(_:reference:warehouse:)``), and the task that will.
    private let laterLooks = Mutex<(documents: Set<LaterLook>, task: Task<Void, Never>?)>(([], nil))

    private struct LaterLook: Hashable, Sendable {
        let model: String
        let reference: String
        let warehouse: Int?
    }

    public init(configuration: TrytonConfiguration, logger: Logger = Logger(label: "whsync.erp-client.tryton")) {
        self.configuration = configuration
        self.logger = logger
        slots = AsyncSemaphore(limit: configuration.http.maxConcurrentPosts)
        var http = HTTPClient.Configuration()
        http.timeout = HTTPClient.Configuration.Timeout(
            connect: HTTPERPClient.timeAmount(configuration.http.connectTimeout),
            read: HTTPERPClient.timeAmount(configuration.http.requestTimeout))
        http.connectionPool = HTTPClient.Configuration.ConnectionPool(
            idleTimeout: HTTPERPClient.timeAmount(configuration.http.idleTimeout),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.http.maxConcurrentPosts + 1)
        http.redirectConfiguration = .disallow
        http.decompression = .disabled
        http.tracing.tracer = nil
        httpClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
        rpc = TrytonRPC(configuration: configuration, httpClient: httpClient, logger: logger)
        directory = TrytonDirectory(rpc: rpc, configuration: configuration)
    }

    public func shutdown() async throws {
        laterLooks.withLock { $0.task }?.cancel()
        try await httpClient.shutdown()
    }

    /// How long after this client's start a call of a killed predecessor may still be running
    /// inside trytond: its longest call, and the margin the delayed retry keeps.
    private var predecessorWindow: Duration { configuration.http.requestTimeout + .seconds(5) }

    /// Notes that this process created `reference` (and finished the posting that did) while a
    /// predecessor's create of the same document may still be running inside trytond: a
    /// SIGKILLed worker's redelivery searches, finds nothing and creates, and the predecessor's
    /// create commits after it. Once every such call has ended, ``find(_:reference:warehouse:)``
    /// looks again and cancels the draft it left beside the document (docs/tryton.md,
    /// "Idempotency and crashes"). Noted only once the posting is finished: a look that met this
    /// process's own document still in draft could take it for the stray one.
    private func lookAgainLater(_ document: LaterLook?) {
        let lookAt = startedAt.advanced(by: predecessorWindow)
        guard let document else { return }
        laterLooks.withLock { state in
            // Checked under the lock: the look takes the documents under it once `lookAt` has
            // passed, so a document noted before then is always among them.
            guard ContinuousClock.now < lookAt else { return }
            state.documents.insert(document)
            guard state.task == nil else { return }
            state.task = Task { [self] in
                guard (try? await Task.sleep(until: lookAt, clock: .continuous)) != nil else { return }
                let documents = laterLooks.withLock { $0.documents }
                for document in documents {
                    do throws(Stop) {
                        _ = try await find(document.model, reference: document.reference, warehouse: document.warehouse)
                    } catch {
                        logger.warning(
                            "could not look again for a document a killed predecessor may have created too",
                            metadata: ["erp.model": "\(document.model)", "erp.reference": "\(document.reference)", "erp.answer": "\(error.answer)"])
                    }
                }
            }
        }
    }

    public func post(_ document: PostingDocument) async -> ERPResponseClass {
        let result = await slots.withPermit { await self.book(document) }
        switch result {
        case .posted, .alreadyPosted:
            logger.trace("Tryton posting done", metadata: ["eventId": "\(document.idempotencyKey)", "erp.result": "\(result)"])
        case .rejected(_, let message):
            logger.debug("Tryton rejected posting", metadata: ["eventId": "\(document.idempotencyKey)", "erp.message": "\(message)"])
        case .transient(let reason, _):
            logger.debug("Tryton posting failed transiently", metadata: ["eventId": "\(document.idempotencyKey)", "erp.reason": "\(reason)"])
        }
        return result
    }

    /// A batch (DESIGN §3a; distinct keys): its inventory deltas as one `create` of all their
    /// internal shipments and one `wait`, `assign_force` and `do` over all of them, the other
    /// items concurrently on their single mappings. Any call of the shared steps that fails sends
    /// the inventory items it concerned to the single mapping, which resumes each from its
    /// state: a batch never books less, nor twice, than the items one by one would.
    public func post(batch: PostingBatch) async -> [ERPResponseClass] {
        let documents = batch.documents
        let inventory = documents.indices.filter { documents[$0].endpoint == .inventoryMovements }
        var results = [ERPResponseClass?](repeating: nil, count: documents.count)
        if inventory.count > 1 {
            let answers = await slots.withPermit { await self.bookInventory(batch: inventory.map { documents[$0] }) }
            for (position, index) in inventory.enumerated() { results[index] = answers[position] }
        }
        await withTaskGroup(of: (Int, ERPResponseClass).self) { group in
            for index in documents.indices where results[index] == nil {
                group.addTask { (index, await self.post(documents[index])) }
            }
            for await (index, answer) in group { results[index] = answer }
        }
        return results.map { $0 ?? .transient(reason: .timeout, retryAfter: nil) }
    }

    /// The shared steps of a batch's inventory deltas; `nil` for the items left to the single mapping.
    private func bookInventory(batch documents: [PostingDocument]) async -> [ERPResponseClass?] {
        let model = "stock.shipment.internal"
        var answers = [ERPResponseClass?](repeating: nil, count: documents.count)
        // What the single mapping checks first (warehouse, status, product, unit, decimals).
        var prepared: [(index: Int, values: JSONValue)] = []
        var company = 0
        do {
            company = try await companyId()
        } catch {
            return Array(repeating: error.answer, count: documents.count)
        }
        for (index, document) in documents.enumerated() {
            do {
                let body = document.body
                let warehouse = try await directory.warehouse(try field(body, "warehouse"))
                let line = try await productLine(body, path: "")
                let statusLocation = try directory.statusLocation(try field(body, "status"), of: warehouse)
                let (from, to) = line.quantity.signum > 0 ? (warehouse.lostFound, statusLocation) : (statusLocation, warehouse.lostFound)
                let move = Self.object([
                    ("product", .number(line.product.id)), ("unit", .number(line.product.unitId)),
                    ("quantity", .number(line.quantity.magnitudeText)), ("from_location", .number(from)),
                    ("to_location", .number(to)), ("company", .number(company)),
                ])
                prepared.append((index, Self.object([
                    ("reference", .string(document.idempotencyKey)), ("from_location", .number(from)), ("to_location", .number(to)),
                    ("company", .number(company)), ("moves", [["create", [move]]]),
                ])))
            } catch {
                answers[index] = error.answer
            }
        }
        guard !prepared.isEmpty else { return answers }
        // Documents a former attempt left: those go to the single mapping, which resumes them.
        let references = prepared.map { JSONValue.string(documents[$0.index].idempotencyKey) }
        guard case .result(let existing) = await rpc.model(
            model, "search_read", [[["reference", "in", .array(references)]], 0, nil, nil, ["reference"]])
        else { return answers }
        let seen = Set((existing.arrayValue ?? []).compactMap { $0["reference"]?.stringValue })
        let fresh = prepared.filter { !seen.contains(documents[$0.index].idempotencyKey) }
        guard !fresh.isEmpty,
              case .result(let created) = await rpc.model(model, "create", [.array(fresh.map(\.values))]),
              let ids = created.arrayValue?.compactMap({ $0.numberLiteral.flatMap { Int($0) } }), ids.count == fresh.count
        else { return answers }
        let idList = JSONValue.array(ids.map { .number($0) })
        for step in ["wait", "assign_force", "do"] {
            guard case .result = await rpc.model(model, step, [idList]) else { return answers }
        }
        for item in fresh { lookAgainLater(LaterLook(model: model, reference: documents[item.index].idempotencyKey, warehouse: nil)) }
        for (item, id) in zip(fresh, ids) { answers[item.index] = .posted(documentId: "\(model),\(id)") }
        return answers
    }

    /// Logged in and the database answering (`res.user.get_preferences` through the session).
    public func health() async -> Bool {
        switch await rpc.model("res.user", "get_preferences", [false], timeout: configuration.http.healthTimeout) {
        case .result: return true
        case .userError, .transient:
            await rpc.reset()
            return false
        }
    }

    // MARK: - Postings

    /// A step that failed: what the posting answers.
    struct Stop: Error {
        let answer: ERPResponseClass
    }

    private func book(_ document: PostingDocument) async -> ERPResponseClass {
        do {
            switch document.endpoint {
            case .inventoryMovements: return try await bookInventory(document)
            case .goodsIssues, .shipmentStatus: return try await bookShipment(document)
            case .goodsReceipts: return try await bookReceipt(document)
            }
        } catch {
            return error.answer
        }
    }

    private func bookInventory(_ document: PostingDocument) async throws(Stop) -> ERPResponseClass {
        let body = document.body
        let warehouse = try await directory.warehouse(try field(body, "warehouse"))
        let status = try field(body, "status")
        let line = try await productLine(body, path: "")
        let statusLocation = try directory.statusLocation(status, of: warehouse)
        let reference = document.idempotencyKey
        let model = "stock.shipment.internal"
        if let found = try await find(model, reference: reference) {
            if found.state == "done" { return .alreadyPosted }
            return try await advanceInternal(found)
        }
        let (from, to) = line.quantity.signum > 0 ? (warehouse.lostFound, statusLocation) : (statusLocation, warehouse.lostFound)
        let company = try await companyId()
        let move = Self.object([
            ("product", .number(line.product.id)), ("unit", .number(line.product.unitId)),
            ("quantity", .number(line.quantity.magnitudeText)), ("from_location", .number(from)),
            ("to_location", .number(to)), ("company", .number(company)),
        ])
        let shipment = Self.object([
            ("reference", .string(reference)), ("from_location", .number(from)), ("to_location", .number(to)),
            ("company", .number(company)), ("moves", [["create", [move]]]),
        ])
        let id = try await create(model, shipment)
        let answer = try await advanceInternal(Found(id: id, state: "draft"))
        lookAgainLater(LaterLook(model: model, reference: reference, warehouse: nil))
        return answer
    }

    /// draft → waiting → assigned (forced) → done.
    private func advanceInternal(_ found: Found) async throws(Stop) -> ERPResponseClass {
        let model = "stock.shipment.internal"
        var state = found.state
        if state == "cancelled" { throw reject("\(model) \(found.id) was cancelled in Tryton") }
        if state == "request" || state == "draft" { try await button(model, "wait", found.id); state = "waiting" }
        if state == "waiting" { try await button(model, "assign_force", found.id); state = "assigned" }
        if state == "assigned" { try await button(model, "do", found.id) }
        return .posted(documentId: "\(model),\(found.id)")
    }

    private func bookShipment(_ document: PostingDocument) async throws(Stop) -> ERPResponseClass {
        let body = document.body
        let warehouse = try await directory.warehouse(try field(body, "warehouse"))
        let shipmentId = try field(body, "shipmentId")
        let status = try field(body, "status")
        let model = "stock.shipment.out"
        var found = try await find(model, reference: shipmentId, warehouse: warehouse.id)
        var created: LaterLook?
        if status == "shipped", let existing = found, !["done", "cancelled"].contains(existing.state) {
            try await checkShippedLines(body, shipment: existing.id, shipmentId: shipmentId)
        }
        if found == nil, let lines = body["lines"]?.arrayValue, !lines.isEmpty {
            let party = try await directory.party(code: configuration.customerPartyCode)
            let company = try await companyId()
            var moves: [JSONValue] = []
            for (index, _) in lines.enumerated() {
                let line = try await productLine(lines[index], path: "lines[\(index)].")
                moves.append(Self.object([
                    ("product", .number(line.product.id)), ("unit", .number(line.product.unitId)),
                    ("quantity", .number(line.quantity.magnitudeText)), ("from_location", .number(warehouse.storage)),
                    ("to_location", .number(party.customerLocation)), ("company", .number(company)),
                    ("unit_price", Self.decimal("0")), ("currency", .number(try await directory.currency())),
                ]))
            }
            let shipment = Self.object([
                ("reference", .string(shipmentId)), ("customer", .number(party.id)),
                ("delivery_address", party.address.map { JSONValue.number($0) } ?? JSONValue.null), ("warehouse", .number(warehouse.id)),
                ("warehouse_storage", .number(warehouse.storage)), ("warehouse_output", .number(warehouse.output)),
                ("company", .number(company)), ("outgoing_moves", [["create", .array(moves)]]),
            ])
            found = Found(id: try await create(model, shipment), state: "draft")
            created = LaterLook(model: model, reference: shipmentId, warehouse: warehouse.id)
        }
        guard let found else {
            throw reject("shipmentId: shipment '\(shipmentId)' is unknown to Tryton and this \(status) event carries no lines")
        }
        var state = found.state
        let id = found.id
        let documentId = "\(model),\(id)"
        switch status {
        case "cancelled":
            if state == "cancelled" { return .posted(documentId: documentId) }
            if state == "done" { throw reject("status: shipment '\(shipmentId)' is done in Tryton and cannot be cancelled by an event") }
            try await button(model, "cancel", id)
            lookAgainLater(created)
            return .posted(documentId: documentId)
        default:
            if state == "cancelled" { throw reject("status: shipment '\(shipmentId)' is cancelled in Tryton") }
            if state == "draft" { try await button(model, "wait", id); state = "waiting" }
            if state == "waiting" { try await button(model, "assign_force", id); state = "assigned" }
            if state == "assigned" || state == "picked" { try await button(model, "pack", id); state = "packed" }
            if status != "packed", state == "packed" || state == "shipped" { try await button(model, "do", id) }
            lookAgainLater(created)
            return .posted(documentId: documentId)
        }
    }

    /// The goods that leave are the shipped event's lines: a shipment created from its packed
    /// lines must hold the same quantity of each product, or the stock would leave wrong. A WMS
    /// that ships short is refused plainly (the shipment is adjusted in Tryton, then the dead
    /// letter replayed), never booked with the packed quantities.
    private func checkShippedLines(_ body: JSONValue, shipment id: Int, shipmentId: String) async throws(Stop) {
        var shipped: [Int: Quantity] = [:]
        for (index, line) in (body["lines"]?.arrayValue ?? []).enumerated() {
            let product = try await productLine(line, path: "lines[\(index)].")
            shipped[product.product.id, default: .zero] += product.quantity
        }
        let rows = try value(await rpc.model(
            "stock.move", "search_read",
            [[["shipment", "=", .string("stock.shipment.out,\(id)")], ["state", "!=", "cancelled"]], 0, nil, nil, ["product", "quantity"]]))
        var booked: [Int: Quantity] = [:]
        for row in rows.arrayValue ?? [] {
            guard let product = row["product"]?.numberLiteral.flatMap({ Int($0) }),
                  let quantity = row["quantity"]?.numberLiteral.flatMap({ Double($0) })
            else { throw Stop(answer: .transient(reason: .misanswered(status: 200, .noJSONBody), retryAfter: nil)) }
            booked[product, default: .zero] += Quantity(microUnits: Int64((quantity * 1_000_000).rounded()))
        }
        if shipped != booked {
            throw reject(
                "lines: shipment '\(shipmentId)' ships other quantities than Tryton's shipment \(id) holds from its packed lines; adjust it in Tryton, then replay")
        }
    }

    private func bookReceipt(_ document: PostingDocument) async throws(Stop) -> ERPResponseClass {
        let body = document.body
        let warehouse = try await directory.warehouse(try field(body, "warehouse"))
        let receiptId = try field(body, "receiptId")
        let model = "stock.shipment.in"
        var found = try await find(model, reference: receiptId, warehouse: warehouse.id)
        var created: LaterLook?
        if found == nil {
            let party = try await directory.party(code: configuration.supplierPartyCode)
            let company = try await companyId()
            var moves: [JSONValue] = []
            for (index, line) in (body["lines"]?.arrayValue ?? []).enumerated() {
                let received = try quantity(line["quantityReceived"], path: "lines[\(index)].quantityReceived")
                guard !received.isZero else { continue }
                let product = try await productLine(line, path: "lines[\(index)].", quantityField: "quantityReceived")
                moves.append(Self.object([
                    ("product", .number(product.product.id)), ("unit", .number(product.product.unitId)),
                    ("quantity", .number(received.magnitudeText)), ("from_location", .number(party.supplierLocation)),
                    ("to_location", .number(warehouse.input)), ("company", .number(company)),
                    ("unit_price", Self.decimal("0")), ("currency", .number(try await directory.currency())),
                ]))
            }
            let shipment = Self.object([
                ("reference", .string(receiptId)), ("supplier", .number(party.id)), ("warehouse", .number(warehouse.id)),
                ("warehouse_input", .number(warehouse.input)), ("warehouse_storage", .number(warehouse.storage)),
                ("company", .number(company)), ("incoming_moves", [["create", .array(moves)]]),
            ])
            found = Found(id: try await create(model, shipment), state: "draft")
            created = LaterLook(model: model, reference: receiptId, warehouse: warehouse.id)
        }
        guard let found else { throw reject("receiptId: not found") }  // unreachable: created above
        let documentId = "\(model),\(found.id)"
        switch found.state {
        case "cancelled":
            throw reject("receiptId: receipt '\(receiptId)' is cancelled in Tryton")
        case "draft":
            try await button(model, "receive", found.id)
            // With input = storage, receiving is done; otherwise the inventory moves remain.
            if let after = try await find(model, reference: receiptId, warehouse: warehouse.id), after.state == "received" {
                try await button(model, "do", found.id)
            }
        case "received":
            try await button(model, "do", found.id)
        default:
            break
        }
        lookAgainLater(created)
        return .posted(documentId: documentId)
    }

    // MARK: - Balances (reconciliation)

    /// Tryton's stock of `warehouse` per product and status: the storage location alone is
    /// `available`, each status location its status. Rows with a zero quantity are left out.
    public func balances(warehouse code: String) async throws -> [StockBalance] {
        let warehouse: TrytonDirectory.Warehouse
        do {
            warehouse = try await directory.warehouse(code)
        } catch {
            throw ERPQueryError("Tryton balances of \(code): \(Self.describe(error.answer))")
        }
        var rows: [StockBalance] = []
        for status in InventoryStatus.allCases.map(\.rawValue) {
            let location: Int
            do {
                location = try directory.statusLocation(status, of: warehouse)
            } catch {
                continue
            }
            if !configuration.statusLocations, status != "available" { continue }
            let members: [(String, JSONValue)] = [
                ("locations", [.number(location)]), ("with_childs", .bool(!configuration.statusLocations)),
            ]
            let context = JSONObject(uniqueKeysWithValues: members)
            let outcome = await rpc.model(
                "product.product", "search_read",
                [[["type", "=", "goods"]], 0, nil, nil, ["code", "quantity"]],
                extraContext: context)
            guard case .result(let result) = outcome else {
                throw ERPQueryError("Tryton balances of \(code)/\(status): \(Self.describe(Self.answer(outcome)))")
            }
            for product in result.arrayValue ?? [] {
                guard let sku = product["code"]?.stringValue, let literal = product["quantity"]?.numberLiteral,
                      let value = Double(literal)
                else { continue }
                let quantity = Quantity(microUnits: Int64((value * 1_000_000).rounded()))
                if !quantity.isZero {
                    rows.append(StockBalance(warehouse: code, sku: sku, status: status, quantity: quantity))
                }
            }
        }
        return rows.sorted { $0.key < $1.key }
    }

    /// The shipments (`stock.shipment.out`) and receipts (`stock.shipment.in`) of `warehouse`
    /// whose reference is a shipment or receipt id (docs/tryton.md, "Mapping"), each with its
    /// state in our words: a done shipment is `shipped` (Tryton has no delivered state), a done or
    /// received receipt is `received`; `packed` and `cancelled` are themselves; a document left
    /// half-way (draft, waiting, assigned) answers its Tryton state, which agrees with nothing.
    public func documentStatuses(warehouse code: String, kinds: Set<DocumentStatus.Kind>) async throws -> [DocumentStatus] {
        let warehouse: TrytonDirectory.Warehouse
        do {
            warehouse = try await directory.warehouse(code)
        } catch {
            throw ERPQueryError("Tryton documents of \(code): \(Self.describe(error.answer))")
        }
        var documents: [DocumentStatus] = []
        for kind in kinds.sorted() {
            let model = kind == .shipment ? "stock.shipment.out" : "stock.shipment.in"
            // A receipt's warehouse is its `warehouse` field too (stock.shipment.in has one).
            let outcome = await rpc.model(
                model, "search_read",
                [[["warehouse", "=", .number(warehouse.id)], ["reference", "!=", nil]], 0, nil, nil, ["reference", "state"]])
            guard case .result(let result) = outcome else {
                throw ERPQueryError("Tryton \(model) of \(code): \(Self.describe(Self.answer(outcome)))")
            }
            var best: [String: String] = [:]
            for row in result.arrayValue ?? [] {
                guard let reference = row["reference"]?.stringValue, !reference.isEmpty, let state = row["state"]?.stringValue,
                      state != "cancelled" || best[reference] == nil
                else { continue }
                best[reference] = Self.ourStatus(kind, trytonState: state)
            }
            documents += best.map { DocumentStatus(kind: kind, warehouse: code, id: $0.key, status: $0.value) }
        }
        return documents.sorted { $0.key < $1.key }
    }

    /// A document state of Tryton in the words of our statuses (see ``documentStatuses(warehouse:kinds:)``).
    static func ourStatus(_ kind: DocumentStatus.Kind, trytonState state: String) -> String {
        switch (kind, state) {
        case (.shipment, "done"): "shipped"
        case (.receipt, "done"), (.receipt, "received"): "received"
        default: state
        }
    }

    /// Tryton keeps no delivered state and finishes a receipt when it is received: a delivered
    /// shipment is done (`shipped`) and a put-away receipt `received` there.
    public func documentStatusesAgree(_ kind: DocumentStatus.Kind, wms: String, erp: String) -> Bool {
        switch (kind, wms) {
        case (.shipment, "delivered"): erp == "shipped"
        case (.receipt, "putaway-complete"): erp == "received"
        default: wms == erp
        }
    }

    // MARK: - Steps

    struct Found: Sendable {
        let id: Int
        let state: String
    }

    struct ProductLine: Sendable {
        let product: TrytonDirectory.Product
        let quantity: Quantity
    }

    /// The document of `model` carrying `reference`. Should a create have been repeated (a call
    /// that timed out on our side but was still running inside trytond when the retry searched),
    /// the most advanced one is the document and the drafts beside it are cancelled: a draft has
    /// moved no stock, and a cancelled one never will.
    private func find(_ model: String, reference: String, warehouse: Int? = nil) async throws(Stop) -> Found? {
        var domain: [JSONValue] = [["reference", "=", .string(reference)]]
        if let warehouse { domain.append(["warehouse", "=", .number(warehouse)]) }
        let result = try value(await rpc.model(model, "search_read", [.array(domain), 0, 10, [["id", "ASC"]], ["id", "state"]]))
        var found: [Found] = []
        for row in result.arrayValue ?? [] {
            guard let id = row["id"]?.numberLiteral.flatMap({ Int($0) }), let state = row["state"]?.stringValue else {
                throw Stop(answer: .transient(reason: .misanswered(status: 200, .noJSONBody), retryAfter: nil))
            }
            found.append(Found(id: id, state: state))
        }
        let live = found.filter { $0.state != "cancelled" }
        guard live.count > 1 else { return live.first ?? found.first }
        let chosen = live.max { Self.progress($0.state) < Self.progress($1.state) || (Self.progress($0.state) == Self.progress($1.state) && $0.id > $1.id) }!
        let extra = live.filter { $0.id != chosen.id && ($0.state == "draft" || $0.state == "request") }
        logger.warning(
            "Tryton holds \(live.count) documents with one reference: keeping the most advanced, cancelling the drafts",
            metadata: ["erp.model": "\(model)", "erp.reference": "\(reference)", "erp.kept": "\(chosen.id)",
                       "erp.cancelled": "\(extra.map(\.id))"])
        if !extra.isEmpty {
            _ = try value(await rpc.model(model, "cancel", [.array(extra.map { .number($0.id) })]))
        }
        return chosen
    }

    /// How far a shipment's state is along its workflow.
    static func progress(_ state: String) -> Int {
        switch state {
        case "done": 6
        case "shipped": 5
        case "packed": 4
        case "picked", "received": 3
        case "assigned": 2
        case "waiting": 1
        default: 0
        }
    }

    private func create(_ model: String, _ values: JSONValue) async throws(Stop) -> Int {
        let result = try value(await rpc.model(model, "create", [[values]]))
        guard let id = result.arrayValue?.first?.numberLiteral.flatMap({ Int($0) }) else {
            throw Stop(answer: .transient(reason: .misanswered(status: 200, .noJSONBody), retryAfter: nil))
        }
        return id
    }

    private func button(_ model: String, _ method: String, _ id: Int) async throws(Stop) {
        _ = try value(await rpc.model(model, method, [[.number(id)]]))
    }

    private func companyId() async throws(Stop) -> Int {
        switch await rpc.companyId() {
        case .success(let id): return id
        case .failure(let failure): throw Stop(answer: Self.answer(failure.outcome))
        }
    }

    /// The product of a line (or of an inventory delta: `path` empty): known to Tryton by code,
    /// posted in its unit, with no more decimals than the unit keeps.
    private func productLine(_ line: JSONValue, path: String, quantityField: String = "quantity") async throws(Stop) -> ProductLine {
        let sku = try field(line, "sku", path: path)
        let uom = try field(line, "uom", path: path)
        let quantity = try quantity(line[quantityField], path: path + quantityField)
        guard let product = try await directory.product(sku) else {
            throw reject("\(path)sku: unknown SKU '\(sku)': Tryton has no product with code '\(sku)'")
        }
        guard product.unitSymbol == uom else {
            throw reject("\(path)uom: '\(uom)' is not the unit of SKU '\(sku)' in Tryton ('\(product.unitSymbol)')")
        }
        if quantity.fractionDigits > product.unitDigits {
            throw reject(
                "\(path)\(quantityField): \(quantity) has more decimals than unit \(uom) keeps in Tryton (\(product.unitDigits)); Tryton would round it")
        }
        return ProductLine(product: product, quantity: quantity)
    }

    private func field(_ object: JSONValue, _ name: String, path: String = "") throws(Stop) -> String {
        guard let text = object[name]?.stringValue, !text.isEmpty else { throw reject("\(path)\(name): missing") }
        return text
    }

    private func quantity(_ value: JSONValue?, path: String) throws(Stop) -> Quantity {
        guard let quantity = Quantity(json: value) else { throw reject("\(path): not a decimal quantity") }
        return quantity
    }

    private func value(_ outcome: TrytonOutcome) throws(Stop) -> JSONValue {
        if case .result(let value) = outcome { return value }
        throw Stop(answer: Self.answer(outcome))
    }

    private func reject(_ message: String) -> Stop {
        Stop(answer: TrytonERPClient.rejection(message))
    }

    static func answer(_ outcome: TrytonOutcome) -> ERPResponseClass {
        switch outcome {
        case .result: .posted(documentId: nil)
        case .userError(let message): rejection(message)
        case .transient(let reason, let retryAfter): .transient(reason: reason, retryAfter: retryAfter)
        }
    }

    /// A business rejection: the pipeline dead-letters it as `HTTP 422: Tryton: <message>` (422:
    /// the contract's status for a document the ERP refuses; Tryton itself answers 200 with a
    /// `UserError`, or the adapter refuses before asking).
    static func rejection(_ message: String) -> ERPResponseClass {
        .rejected(status: 422, message: String("Tryton: \(message)".prefix(ERPResponseClass.maxMessageLength)))
    }

    static func describe(_ answer: ERPResponseClass) -> String {
        switch answer {
        case .posted, .alreadyPosted: "answered"
        case .rejected(_, let message): message
        case .transient(let reason, _): "\(reason)"
        }
    }

    /// A JSON object of `members`, in order.
    static func object(_ members: [(String, JSONValue)]) -> JSONValue {
        .object(JSONObject(uniqueKeysWithValues: members))
    }

    /// Tryton's JSON encoding of a `Decimal`.
    static func decimal(_ text: String) -> JSONValue {
        object([("__class__", "Decimal"), ("decimal", .string(text))])
    }
}

extension Quantity {
    /// The absolute value as a JSON number literal.
    var magnitudeText: String { (signum < 0 ? -self : self).description }

    /// How many fraction digits the canonical form has.
    var fractionDigits: Int {
        let text = description
        guard let dot = text.firstIndex(of: ".") else { return 0 }
        return text.distance(from: dot, to: text.endIndex) - 1
    }
}

/// What the adapter looked up in Tryton once: warehouses with their locations, products with
/// their units, parties, the company's currency. Unknown codes are asked again each time (master
/// data may be added while events wait in the dead-letter queue).
actor TrytonDirectory {
    struct Warehouse: Sendable {
        let code: String
        let id: Int
        let storage: Int
        let input: Int
        let output: Int
        let lostFound: Int
        var statusLocations: [String: Int]
    }

    struct Product: Sendable {
        let id: Int
        let unitId: Int
        let unitSymbol: String
        let unitDigits: Int
    }

    struct Party: Sendable {
        let id: Int
        let address: Int?
        let customerLocation: Int
        let supplierLocation: Int
    }

    private let rpc: TrytonRPC
    private let configuration: TrytonConfiguration
    private var warehouses: [String: Warehouse] = [:]
    private var products: [String: Product] = [:]
    private var parties: [String: Party] = [:]
    private var currencyId: Int?

    init(rpc: TrytonRPC, configuration: TrytonConfiguration) {
        self.rpc = rpc
        self.configuration = configuration
    }

    typealias Stop = TrytonERPClient.Stop

    func warehouse(_ code: String) async throws(Stop) -> Warehouse {
        if let known = warehouses[code] { return known }
        let rows = try await searchRead(
            "stock.location", [["code", "=", .string(code)], ["type", "=", "warehouse"]],
            ["id", "storage_location", "input_location", "output_location", "lost_found_location"])
        guard let row = rows.first else {
            throw reject("warehouse: unknown warehouse '\(code)': Tryton has no warehouse location with code '\(code)'")
        }
        guard let id = int(row["id"]), let storage = int(row["storage_location"]) else { throw misanswer() }
        guard let lostFound = int(row["lost_found_location"]) else {
            throw reject("warehouse: Tryton's warehouse '\(code)' has no lost and found location")
        }
        var warehouse = Warehouse(
            code: code, id: id, storage: storage, input: int(row["input_location"]) ?? storage,
            output: int(row["output_location"]) ?? storage, lostFound: lostFound, statusLocations: ["available": storage])
        if configuration.statusLocations {
            let codes = InventoryStatus.allCases.map { JSONValue.string("\(code)-\($0.rawValue)") }
            for location in try await searchRead("stock.location", [["code", "in", .array(codes)]], ["id", "code"]) {
                if let locationCode = location["code"]?.stringValue, let locationId = int(location["id"]) {
                    warehouse.statusLocations[String(locationCode.dropFirst(code.count + 1))] = locationId
                }
            }
        }
        warehouses[code] = warehouse
        return warehouse
    }

    nonisolated func statusLocation(_ status: String, of warehouse: Warehouse) throws(Stop) -> Int {
        if !configuration.statusLocations { return warehouse.storage }
        guard let location = warehouse.statusLocations[status] else {
            throw reject("status: Tryton has no location '\(warehouse.code)-\(status)' for status '\(status)'")
        }
        return location
    }

    func product(_ sku: String) async throws(Stop) -> Product? {
        if let known = products[sku] { return known }
        let rows = try await searchRead(
            "product.product", [["code", "=", .string(sku)]], ["id", "default_uom", "default_uom.symbol", "default_uom.digits"])
        guard let row = rows.first else { return nil }
        guard let id = int(row["id"]), let unit = int(row["default_uom"]), let symbol = row["default_uom."]?["symbol"]?.stringValue,
              let digits = int(row["default_uom."]?["digits"])
        else { throw misanswer() }
        let product = Product(id: id, unitId: unit, unitSymbol: symbol, unitDigits: digits)
        products[sku] = product
        return product
    }

    func party(code: String) async throws(Stop) -> Party {
        if let known = parties[code] { return known }
        let rows = try await searchRead(
            "party.party", [["code", "=", .string(code)]], ["id", "addresses", "customer_location", "supplier_location"])
        guard let row = rows.first else { throw reject("Tryton has no party with code '\(code)' (docs/tryton.md, master data)") }
        guard let id = int(row["id"]), let customer = int(row["customer_location"]), let supplier = int(row["supplier_location"]) else {
            throw misanswer()
        }
        let party = Party(id: id, address: int(row["addresses"]?.arrayValue?.first), customerLocation: customer, supplierLocation: supplier)
        parties[code] = party
        return party
    }

    func currency() async throws(Stop) -> Int {
        if let currencyId { return currencyId }
        let company: Int
        switch await rpc.companyId() {
        case .success(let id): company = id
        case .failure(let failure): throw Stop(answer: TrytonERPClient.answer(failure.outcome))
        }
        let rows = try await searchRead("company.company", [["id", "=", .number(company)]], ["currency"])
        guard let currency = int(rows.first?["currency"]) else { throw misanswer() }
        currencyId = currency
        return currency
    }

    private func searchRead(_ model: String, _ domain: [JSONValue], _ fields: [JSONValue]) async throws(Stop) -> [JSONValue] {
        let outcome = await rpc.model(model, "search_read", [.array(domain), 0, nil, nil, .array(fields)])
        guard case .result(let result) = outcome else { throw Stop(answer: TrytonERPClient.answer(outcome)) }
        return result.arrayValue ?? []
    }

    private nonisolated func int(_ value: JSONValue?) -> Int? {
        value?.numberLiteral.flatMap { Int($0) }
    }

    private nonisolated func reject(_ message: String) -> Stop {
        Stop(answer: TrytonERPClient.rejection(message))
    }

    private nonisolated func misanswer() -> Stop {
        Stop(answer: .transient(reason: .misanswered(status: 200, .noJSONBody), retryAfter: nil))
    }
}
