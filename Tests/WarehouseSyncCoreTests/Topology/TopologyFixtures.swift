import Foundation
import WarehouseSyncCore
import WarehouseSyncTesting

/// Topology documents for the tests, built from parts so each case changes one thing.
enum TopologyFixtures {
    /// The repository's `topology/topology.json`, found from this file's path.
    static var repositoryFile: URL {
        TestRepository.root
            .appendingPathComponent("topology/topology.json")
    }

    static let defaultTiers = #"["5s", "30s", "5m"]"#

    /// A valid document; each argument is raw JSON text for its part.
    static func document(
        top: String = #""eventsExchange": "wms.events", "deliveryLimit": 20"#,
        inventory: String = "{}",
        shipment: String = "{}",
        receipt: String = "{}",
        extraStreams: String = "",
        tiers: String = defaultTiers,
        retryExtra: String = "",
        deadLetter: String = #"{ "exchange": "whsync.dead", "queue": "whsync.dead-letters" }"#
    ) -> String {
        """
        {
          \(top),
          "streams": {
            "inventory": \(inventory),
            "shipment": \(shipment),
            "receipt": \(receipt)\(extraStreams)
          },
          "retry": {
            "exchange": "whsync.retry", "requeueExchange": "whsync.requeue",
            "tiers": \(tiers)\(retryExtra)
          },
          "deadLetter": \(deadLetter)
        }
        """
    }

    static func topology(_ json: String) throws -> Topology {
        try Topology(jsonData: Data(json.utf8))
    }
}
