import ProcessMemory
import Testing

@Suite("The allocator keeps freed memory, unless the operator tuned it")
struct ProcessMemoryTests {
    @Test("the settings are taken, also beside other glibc tunables")
    func applied() {
        #expect(ProcessMemory.keepFreedMemory(environment: [:]))
        #expect(ProcessMemory.keepFreedMemory(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0"]))
    }

    @Test("an operator's GLIBC_TUNABLES malloc setting wins: nothing is set")
    func operatorWins() {
        #expect(!ProcessMemory.keepFreedMemory(environment: ["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"]))
        #expect(!ProcessMemory.keepFreedMemory(environment: ["GLIBC_TUNABLES": "glibc.pthread.rseq=0:glibc.malloc.arena_max=2"]))
    }
}
