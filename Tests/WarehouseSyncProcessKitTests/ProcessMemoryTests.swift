import ProcessMemory
import Testing

@Suite("The allocator keeps freed memory and few arenas, unless the operator tuned it")
struct ProcessMemoryTests {
    @Test("every setting is taken, also beside other glibc tunables")
    func applied() {
        #expect(ProcessMemory.configureAllocator(environment: [:]) == [.trimThreshold, .mmapThreshold, .arenaMax])
        #expect(
            ProcessMemory.configureAllocator(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"])
                == [.trimThreshold, .mmapThreshold, .arenaMax])
    }

    @Test("an operator's MALLOC_ARENA_MAX wins over the arena cap; the rest is still set")
    func operatorArenas() {
        #expect(ProcessMemory.configureAllocator(environment: ["MALLOC_ARENA_MAX": "4"]) == [.trimThreshold, .mmapThreshold])
    }

    @Test("an operator's GLIBC_TUNABLES malloc setting wins: nothing is set")
    func operatorWins() {
        #expect(ProcessMemory.configureAllocator(environment: ["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"]).isEmpty)
        #expect(ProcessMemory.configureAllocator(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0:glibc.malloc.arena_max=2"]).isEmpty)
    }
}
