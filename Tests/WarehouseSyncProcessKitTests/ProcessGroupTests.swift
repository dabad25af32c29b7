import Logging
import ServiceLifecycle
import Synchronization
import Testing
@testable import WarehouseSyncProcessKit

@Suite("The process's ServiceGroup: resources first, operations, engine; stopped in reverse")
struct ProcessGroupTests {
    /// What the services did, in order.
    final class Journal: Sendable {
        private let entries = Mutex<[String]>([])
        func record(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
        var stops: [String] { all.filter { $0.hasPrefix("stop ") }.map { String($0.dropFirst(5)) } }
        func started(_ count: Int) -> Bool { all.count { $0.hasPrefix("start ") } == count }
    }

    /// Runs until its graceful shutdown (or, with `endsAfter`, until then), recording both ends.
    struct FakeService: Service {
        let name: String
        let journal: Journal
        var endsAfter: Duration?

        func run() async throws {
            journal.record("start \(name)")
            if let endsAfter {
                try await Task.sleep(for: endsAfter)
            } else {
                try? await gracefulShutdown()
                // Still at work for a moment: what comes before it must wait.
                try await Task.sleep(for: .milliseconds(20))
            }
            journal.record("stop \(name)")
        }
    }

    static let names = ["store", "consumer", "publisher", "erp"]

    private func group(_ journal: Journal, engineEndsAfter: Duration? = nil) -> ServiceGroup {
        ProcessGroup.make(
            resources: Self.names.map { FakeService(name: $0, journal: journal) },
            engine: FakeService(name: "engine", journal: journal, endsAfter: engineEndsAfter),
            operations: FakeService(name: "ops", journal: journal),
            logger: Logger(label: "process-group-test"))
    }

    @Test("a graceful shutdown stops the engine, the operations endpoint, then the resources in reverse")
    func gracefulShutdownStopsInReverse() async throws {
        let journal = Journal()
        let group = group(journal)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            while !journal.started(6) { try await Task.sleep(for: .milliseconds(5)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(journal.stops == ["engine", "ops", "erp", "publisher", "consumer", "store"])
    }

    @Test("an engine that ends on its own stops the group the same way")
    func engineEndingStopsTheGroup() async throws {
        let journal = Journal()
        try await group(journal, engineEndsAfter: .milliseconds(50)).run()
        #expect(journal.stops == ["engine", "ops", "erp", "publisher", "consumer", "store"])
    }

    @Test("a ClosingService closes its resource only when its turn to stop comes")
    func closingServiceClosesAfterTheEngine() async throws {
        let journal = Journal()
        let group = ProcessGroup.make(
            resources: [ClosingService("connection") { journal.record("stop connection") }],
            engine: FakeService(name: "engine", journal: journal),
            operations: nil, logger: Logger(label: "process-group-test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            while !journal.started(1) { try await Task.sleep(for: .milliseconds(5)) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(journal.stops == ["engine", "connection"])
    }
}
