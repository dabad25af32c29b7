import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Names the calling OS thread, as `top -H`, `pidstat -t` and `perf` show it; Linux keeps at
/// most 15 bytes, so the name is cut there.
///
/// Called from inside the thread: corelibs Foundation's `Thread.name` setter names the thread
/// through the handle its creator stores after `pthread_create` returns, so a thread quick to
/// name itself (or named before `start()`) kept its creator's name, a cooperative pool thread's.
public func nameCurrentThread(_ name: String) {
    let short = String(decoding: name.utf8.prefix(15), as: UTF8.self)
    #if canImport(Darwin)
    pthread_setname_np(short)
    #elseif canImport(Glibc)
    // Swift's Glibc module does not declare pthread_setname_np (it needs _GNU_SOURCE); the
    // kernel's file for the calling thread's name does the same.
    let file = Glibc.open("/proc/thread-self/comm", O_WRONLY)
    if file >= 0 {
        _ = short.withCString { Glibc.write(file, $0, strlen($0)) }
        _ = Glibc.close(file)
    }
    #endif
    Thread.current.name = short
}
