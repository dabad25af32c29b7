import Logging
import Synchronization
import Testing
import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncSettings
import WarehouseSyncStore
@testable import WarehouseSyncWorker


@Suite("StoreOutage")
struct StoreOutageTests {
    static let outage = StoreError(code: .unavailable, message: "database is locked", isOutage: true)
    static let lasting = StoreError(code: .unavailable, message: "attempt to write a readonly database")

    final class Attempts: Sendable {
        private let counter = Atomic(0)
        func next() -> Int { counter.add(1, ordering: .relaxed).newValue }
        var count: Int { counter.load(ordering: .relaxed) }
    }

    final class Flag: Sendable {
        private let value = Atomic(false)
        func set() { value.store(true, ordering: .relaxed) }
        var isSet: Bool { value.load(ordering: .relaxed) }
    }

    @Test("an outage is waited out, reported while it lasts, and the answer returned once the store is back")
    func waitsOut() async throws {
        let outage = StoreOutage(logger: Logger(label: "test"))
        let attempts = Attempts()
        let seenWhileWaiting = Flag()
        let value = try await outage.waitOut(maximumDelay: .milliseconds(5), isStopping: { false }) {
            let attempt = attempts.next()
            if attempt > 1, outage.isOngoing { seenWhileWaiting.set() }
            guard attempt > 4 else { throw Self.outage }
            return "answer"
        }
        #expect(value == "answer")
        #expect(attempts.count == 5)
        #expect(seenWhileWaiting.isSet, "readiness saw the outage")
        #expect(!outage.isOngoing, "over once the operation got through")
    }

    @Test("an unavailability that waiting does not mend, and any other error, are thrown at once")
    func lastingErrorsAreThrown() async throws {
        let outage = StoreOutage(logger: Logger(label: "test"))
        for error in [Self.lasting, StoreError(code: .versionConflict, message: "moved")] {
            let attempts = Attempts()
            await #expect(throws: error) {
                try await outage.waitOut(isStopping: { false }) { () async throws -> Int in
                    _ = attempts.next()
                    throw error
                }
            }
            #expect(attempts.count == 1)
            #expect(!outage.isOngoing)
        }
    }

    @Test("waiting out any unavailability also waits out one that only a person mends, and still throws other errors")
    func anyUnavailability() async throws {
        let outage = StoreOutage(logger: Logger(label: "test"))
        let attempts = Attempts()
        let value = try await outage.waitOut(
            maximumDelay: .milliseconds(5), waitingOut: StoreOutage.anyUnavailability, isStopping: { false }
        ) {
            guard attempts.next() > 3 else { throw Self.lasting }
            return "stored"
        }
        #expect(value == "stored")
        #expect(attempts.count == 4)
        let conflict = StoreError(code: .invalidChange, message: "refused")
        await #expect(throws: conflict) {
            try await outage.waitOut(waitingOut: StoreOutage.anyUnavailability, isStopping: { false }) { () async throws -> Int in
                throw conflict
            }
        }
    }

    @Test("stopping ends the wait with the outage's error; a new operation during it does not even try")
    func stopping() async throws {
        let outage = StoreOutage(logger: Logger(label: "test"))
        let stopping = Flag()
        let attempts = Attempts()
        let waiting = Task {
            try await outage.waitOut(maximumDelay: .milliseconds(20), isStopping: { stopping.isSet }) { () async throws -> Int in
                _ = attempts.next()
                throw Self.outage
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while !outage.isOngoing {
            try #require(ContinuousClock.now < deadline, "the operation never met the outage")
            try await Task.sleep(for: .milliseconds(5))
        }
        stopping.set()
        let newcomer = Attempts()
        await #expect(throws: StoreError.self) {
            try await outage.waitOut(isStopping: { true }) { () async throws -> Int in
                _ = newcomer.next()
                return 1
            }
        }
        #expect(newcomer.count == 0, "no attempt while others wait for the store and the process stops")
        await #expect(throws: Self.outage) { try await waiting.value }
        #expect(!outage.isOngoing)
    }
}
