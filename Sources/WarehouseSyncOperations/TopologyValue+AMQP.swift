import AMQPClient
import WarehouseSyncCore

extension TopologyValue {
    var amqpValue: AMQPFieldValue {
        switch self {
        case .string(let s): .string(s)
        case .int(let i): .int(i)
        case .bool(let b): .bool(b)
        }
    }
}

extension Dictionary where Key == String, Value == TopologyValue {
    var amqpTable: AMQPTable { mapValues(\.amqpValue) }
}
