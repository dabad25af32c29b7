#if canImport(Glibc)
import CMalloc
#endif

/// How a long-running process asks glibc's allocator to treat freed memory.
public enum ProcessMemory {
    /// Freed memory up to this much above an arena's top stays in the arena instead of going
    /// back to the kernel.
    public static let trimThreshold = 8 << 20
    /// Allocations above this size get their own mapping (returned to the kernel when freed).
    public static let mmapThreshold = 1 << 20

    /// Keeps freed memory in the allocator's arenas rather than handing it back to the kernel at
    /// every `free` (glibc's defaults: 128 KiB, adjusted on the fly).
    ///
    /// With the defaults, each thread that allocates and frees in bursts (a SQLite connection's
    /// thread around a transaction, an event loop around a request) gave its arena's top back
    /// with `madvise(MADV_DONTNEED)` and faulted the same pages in again moments later: 15% of
    /// the worker's CPU went to `madvise`, TLB shoot-downs and page faults (bench/README, "Freed
    /// memory kept"). An operator's own `GLIBC_TUNABLES` malloc settings win: nothing is set then.
    /// Returns whether the allocator took these settings.
    @discardableResult
    public static func keepFreedMemory(environment: [String: String]) -> Bool {
        #if canImport(Glibc)
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("glibc.malloc.") { return false }
        // mallopt answers 1 when it took a setting.
        return mallopt(M_TRIM_THRESHOLD, Int32(trimThreshold)) == 1 && mallopt(M_MMAP_THRESHOLD, Int32(mmapThreshold)) == 1
        #else
        return false
        #endif
    }
}
