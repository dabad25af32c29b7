import ProcessMemory
import Testing

@Suite("The allocator keeps freed memory and few arenas, unless the operator tuned it")
struct ProcessMemoryTests {
    @Test("the settings are taken, also beside other glibc tunables")
    func applied() {
        #expect(ProcessMemory.configureAllocator(environment: [:]))
        #expect(ProcessMemory.configureAllocator(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"]))
        #expect(ProcessMemory.configureAllocator(environment: ["MALLOC_ARENA_MAX": "4"]))
        #expect(ProcessMemory.arenaMax >= 2)
    }

    @Test("an operator's GLIBC_TUNABLES malloc setting wins: nothing is set")
    func operatorWins() {
        #expect(!ProcessMemory.configureAllocator(environment: ["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"]))
        #expect(!ProcessMemory.configureAllocator(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0:glibc.malloc.arena_max=2"]))
    }
}
