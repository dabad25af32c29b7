#if canImport(Glibc)
import CMalloc
import Glibc
#endif

/// How a long-running process asks glibc's allocator to treat its memory.
public enum ProcessMemory {
    /// Freed memory up to this much above an arena's top stays in the arena instead of going
    /// back to the kernel.
    public static let trimThreshold = 8 << 20
    /// Allocations above this size get their own mapping (returned to the kernel when freed).
    public static let mmapThreshold = 1 << 20

    /// At most one arena per processor (glibc's default: eight per processor).
    public static var arenaMax: Int {
        #if canImport(Glibc)
        return max(2, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 2
        #endif
    }

    /// A setting ``configureAllocator(environment:)`` gives the allocator.
    public enum Setting: Sendable, Hashable {
        case trimThreshold, mmapThreshold, arenaMax
    }

    /// Keeps freed memory in the allocator's arenas rather than handing it back to the kernel at
    /// every `free` (glibc's defaults: 128 KiB, adjusted on the fly), and keeps the arenas few.
    ///
    /// With the defaults, each thread that allocates and frees in bursts (a SQLite connection's
    /// thread around a transaction, an event loop around a request) gave its arena's top back
    /// with `madvise(MADV_DONTNEED)` and faulted the same pages in again moments later: 15% of
    /// the worker's CPU went to `madvise`, TLB shoot-downs and page faults (bench/README, "Freed
    /// memory kept"). Kept memory is kept per arena, and glibc gives a thread that meets a busy
    /// arena one of its own, up to eight per processor: capped at one per processor, the
    /// worker's peak RSS fell from 71.5–76.9 to 64 MB at `PREFETCH=300` at the same rate
    /// (bench/README, "Fewer arenas"). An operator's own settings win: nothing is set when
    /// `GLIBC_TUNABLES` holds `glibc.malloc.*` tunables, and the arena cap is left alone when
    /// `MALLOC_ARENA_MAX` is set. Returns the settings the allocator took.
    @discardableResult
    public static func configureAllocator(environment: [String: String]) -> Set<Setting> {
        #if canImport(Glibc)
        if let tunables = environment["GLIBC_TUNABLES"], tunables.contains("glibc.malloc.") { return [] }
        var wanted: [(setting: Setting, option: Int32, value: Int)] = [
            (.trimThreshold, M_TRIM_THRESHOLD, trimThreshold), (.mmapThreshold, M_MMAP_THRESHOLD, mmapThreshold),
        ]
        if environment["MALLOC_ARENA_MAX"] == nil { wanted.append((.arenaMax, M_ARENA_MAX, arenaMax)) }
        // mallopt answers 1 when it took a setting.
        return Set(wanted.filter { mallopt($0.option, Int32($0.value)) == 1 }.map(\.setting))
        #else
        return []
        #endif
    }
}
