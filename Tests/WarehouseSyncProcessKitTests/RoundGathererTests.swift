import Foundation
import Synchronization
import Testing
import WarehouseSyncTesting
@testable import WarehouseSyncWorker

/// ``RoundGatherer``'s rules, with a handler that the test holds until it lets a round go.
@Suite("RoundGatherer")
struct RoundGathererTests {
    /// Records each round and answers each request with itself, doubled; `hold` keeps a round
    /// waiting until `release()`.
    final class Handler: Sendable {
        let rounds = Mutex<[[Int]]>([])
        private let gates = Mutex<[CheckedContinuation<Void, Never>]>([])
        let hold: Bool

        init(hold: Bool) { self.hold = hold }

        func handle(_ round: [Int]) async -> [Int] {
            rounds.withLock { $0.append(round) }
            if hold { await withCheckedContinuation { continuation in gates.withLock { $0.append(continuation) } } }
            return round.map { $0 * 2 }
        }

        var waitingRounds: Int { gates.withLock { $0.count } }

        func releaseAll() {
            let waiting = gates.withLock { gates in
                defer { gates.removeAll() }
                return gates
            }
            for gate in waiting { gate.resume() }
        }
    }

    @Test("at a trickle each request leaves alone, at once")
    func trickle() async {
        let handler = Handler(hold: false)
        let gatherer = RoundGatherer<Int, Int>(maxInFlight: 1, maxItems: 10, handle: handler.handle, unanswered: { _ in -1 })
        for n in 1...3 { #expect(await gatherer.submit(n, tokens: ["k\(n)"]) == n * 2) }
        #expect(handler.rounds.withLock { $0 } == [[1], [2], [3]])
    }

    @Test("under load the next round takes what gathered: oldest first, at most maxItems, no token twice")
    func gathers() async throws {
        let handler = Handler(hold: true)
        let gatherer = RoundGatherer<Int, Int>(maxInFlight: 1, maxItems: 3, handle: handler.handle, unanswered: { _ in -1 })
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            group.addTask { (0, await gatherer.submit(0, tokens: ["a"])) }
            try await waitUntil { handler.waitingRounds == 1 }
            // While round [0] is in flight: 1…5 gather; 2 shares key "a" with 1, 4 shares event "x" with 3.
            let tokens = [1: ["a"], 2: ["a"], 3: ["b", "x"], 4: ["c", "x"], 5: ["d"]]
            for n in 1...5 {
                group.addTask { (n, await gatherer.submit(n, tokens: tokens[n]!)) }
                try await waitUntil { gatherer.waitingCount == n }
            }
            // Rounds leave one at a time: release each once it is in flight.
            var answers: [Int: Int] = [:]
            while answers.count < 6 {
                try await waitUntil { handler.waitingRounds == 1 }
                let round = handler.rounds.withLock { $0.last! }
                handler.releaseAll()
                for _ in round {
                    let (n, answer) = try await group.next()!
                    answers[n] = answer
                }
            }
            #expect(answers == [0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10])
        }
        // [1, 3, 5]: 2 waits for "a", 4 for "x"; then [2, 4].
        #expect(handler.rounds.withLock { $0 } == [[0], [1, 3, 5], [2, 4]])
    }

    /// Runs every job on one thread, first come first served: the order in which tasks run is
    /// the order in which they were made runnable, as on a busy pool.
    final class OneThread: TaskExecutor, @unchecked Sendable {
        private let condition = NSCondition()
        private var jobs: [UnownedJob] = []

        init() {
            Thread { [self] in
                while true {
                    condition.lock()
                    while jobs.isEmpty { condition.wait() }
                    let job = jobs.removeFirst()
                    condition.unlock()
                    job.runSynchronously(on: asUnownedTaskExecutor())
                }
            }.start()
        }

        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            condition.lock()
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }
    }

    @Test("requests made at the same moment while a round is on its way leave together: the one that finds a round free takes the others along")
    func madeTogether() async throws {
        let handler = Handler(hold: true)
        let gatherer = RoundGatherer<Int, Int>(maxInFlight: 2, maxItems: 4, handle: handler.handle, unanswered: { _ in -1 })
        try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            group.addTask { (0, await gatherer.submit(0, tokens: ["z"])) }
            try await waitUntil { handler.waitingRounds == 1 }
            // Six requests made runnable together on one thread while [0] is on its way; 2 and 3
            // share a key. 1 finds the second round free, leads it and yields; 2…6 arrive
            // meanwhile and wait: 1 leaves with 2, 4 and 5 (at most four; 3 shares a key with 2).
            let made = Task(executorPreference: OneThread()) {
                await withTaskGroup(of: (Int, Int).self) { made in
                    let tokens = [1: ["a"], 2: ["b"], 3: ["b"], 4: ["c"], 5: ["d"], 6: ["e"]]
                    for n in 1...6 { made.addTask { (n, await gatherer.submit(n, tokens: tokens[n]!)) } }
                    var answers: [Int: Int] = [:]
                    for await (n, answer) in made { answers[n] = answer }
                    return answers
                }
            }
            try await waitUntil { handler.waitingRounds == 2 }
            handler.releaseAll()
            // [0] done, then 3 and 6 go in the round it frees.
            try await waitUntil { handler.rounds.withLock { $0.count } == 3 && handler.waitingRounds == 1 }
            handler.releaseAll()
            #expect(try await group.next()! == (0, 0))
            #expect(await made.value == [1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12])
        }
        // Without the yield 1 would leave alone, and 2, 4, 5, 6 after it.
        #expect(handler.rounds.withLock { $0 } == [[0], [1, 2, 4, 5], [3, 6]])
    }

    @Test("at a trickle a request leaves at once, without yielding behind other work")
    func trickleDoesNotYield() async {
        let handler = Handler(hold: false)
        let gatherer = RoundGatherer<Int, Int>(maxInFlight: 2, maxItems: 4, handle: handler.handle, unanswered: { _ in -1 })
        let answers = await withTaskExecutorPreference(OneThread()) {
            await withTaskGroup(of: (Int, Int).self) { group in
                for n in 1...3 { group.addTask { (n, await gatherer.submit(n, tokens: ["k\(n)"])) } }
                var answers: [Int: Int] = [:]
                for await (n, answer) in group { answers[n] = answer }
                return answers
            }
        }
        #expect(answers == [1: 2, 2: 4, 3: 6])
        // Nothing else on its way when each arrives: each leaves alone, in turn.
        #expect(handler.rounds.withLock { $0 } == [[1], [2], [3]])
    }

    @Test("a request its round left unanswered gets the fallback answer")
    func answeredShort() async {
        let gatherer = RoundGatherer<Int, Int>(
            maxInFlight: 1, maxItems: 10, handle: { round in Array(round.map { $0 * 2 }.dropLast()) }, unanswered: { -$0 })
        #expect(await gatherer.submit(7, tokens: ["k"]) == -7)
    }
}
