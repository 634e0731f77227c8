import CAllocCounter
import Glibc

/// Allocator calls counted in a window (see Tests/CAllocCounter): every call to malloc, calloc,
/// realloc, free and the aligned family, whatever its size, and whether or not it is paired
/// with a release inside the window.
public struct AllocationCalls: Equatable, CustomStringConvertible {
    public var malloc = 0
    public var calloc = 0
    public var realloc = 0
    public var free = 0
    /// posix_memalign, aligned_alloc, memalign, valloc, pvalloc (Swift's allocations with an
    /// alignment above 16 bytes come here).
    public var aligned = 0
    /// Bytes requested by the allocating calls.
    public var bytes = 0

    public init() {}

    init(_ counts: alloc_counter_counts) {
        malloc = Int(counts.malloc_calls)
        calloc = Int(counts.calloc_calls)
        realloc = Int(counts.realloc_calls)
        free = Int(counts.free_calls)
        aligned = Int(counts.aligned_calls)
        bytes = Int(counts.bytes)
    }

    /// Every counted call.
    public var total: Int { malloc + calloc + realloc + free + aligned }

    /// True when no entry point was called (every count zero, not merely a zero sum).
    public var isZero: Bool { malloc == 0 && calloc == 0 && realloc == 0 && free == 0 && aligned == 0 }

    public static func + (left: AllocationCalls, right: AllocationCalls) -> AllocationCalls {
        left - (AllocationCalls() - right)
    }

    public static func - (after: AllocationCalls, before: AllocationCalls) -> AllocationCalls {
        var difference = AllocationCalls()
        difference.malloc = after.malloc - before.malloc
        difference.calloc = after.calloc - before.calloc
        difference.realloc = after.realloc - before.realloc
        difference.free = after.free - before.free
        difference.aligned = after.aligned - before.aligned
        difference.bytes = after.bytes - before.bytes
        return difference
    }

    public var description: String {
        "\(total) allocator calls (malloc \(malloc), calloc \(calloc), realloc \(realloc), free \(free), aligned \(aligned); \(bytes) bytes requested)"
    }
}

/// Counts the allocator calls of the threads it tracks: the thread that creates the tracker and
/// every thread created, directly or through other tracked threads, after that (a trainer's
/// pool workers, a pack's prefetch thread, an energy recorder's sampling thread). Threads of the
/// test runner are not tracked, so tests running beside it cannot add to the count; the calls of
/// every thread are counted too (`allThreads`), for comparison only.
///
/// Use: create the tracker before the object whose threads are to be tracked, `start()` the
/// window, read `calls` (allocation-free, so it may be read inside the window), `stop()`, and
/// `end()` on the creating thread to untag it. One window counts at a time in the process; a
/// second `start()` waits for the first `stop()`.
public final class AllocationTracker {
    public let tag: UInt32
    private let previousTag: UInt32
    /// The totals of this tracker's last window, kept by `stop()`: once it stops, another
    /// tracker's window may start and zero the shared counters.
    private var stoppedCalls = alloc_counter_counts()
    private var stoppedAllThreads = alloc_counter_counts()

    /// True when the test binary's malloc is the counting interposer.
    public static var isInterposing: Bool { alloc_counter_is_interposing() != 0 }

    public init() {
        tag = alloc_counter_new_tag()
        previousTag = alloc_counter_thread_tag()
        alloc_counter_set_thread_tag(tag)
    }

    /// Gives the calling (creating) thread its previous tag back.
    public func end() {
        alloc_counter_set_thread_tag(previousTag)
    }

    /// Zeroes the counters and counts from now on.
    public func start() {
        while alloc_counter_start(tag) == 0 { usleep(1000) }
    }

    /// Stops counting; `calls` keeps the window's totals. Does nothing when this tracker's
    /// window is not the one counting (stopped already), so a second `stop()` cannot end
    /// another tracker's window.
    public func stop() {
        alloc_counter_stop(tag, &stoppedCalls, &stoppedAllThreads)
    }

    private var isCounting: Bool { alloc_counter_counted_tag() == tag }

    /// Calls from tracked threads since `start()` (until `stop()`). Reading allocates nothing.
    @inline(__always) public var calls: AllocationCalls {
        AllocationCalls(isCounting ? alloc_counter_read_tagged() : stoppedCalls)
    }
    /// Calls from every thread of the process since `start()` (the test runner's included).
    public var allThreads: AllocationCalls { AllocationCalls(isCounting ? alloc_counter_read_all() : stoppedAllThreads) }

    /// Counts the calls `body` makes (and the tracked threads make meanwhile).
    public func counting<Result>(_ body: () throws -> Result) rethrows -> (result: Result, calls: AllocationCalls) {
        start()
        defer { stop() }
        let result = try body()
        return (result, calls)
    }

    /// Forgets the recorded callers, so that the next tracked calls are recorded (allocation-free,
    /// may be called inside a window).
    public static func resetCallSites() { alloc_counter_reset_sites() }

    /// The callers of the first tracked calls of the last window (up to 8, 16 frames each),
    /// one line per call: "malloc <- swift_slowAlloc <- ...". Swift symbols are demangled;
    /// frames in the test executable without a dynamic symbol show as "object+offset"
    /// (`addr2line -f -C -e .build/release/LeitnerPackageTests.xctest OFFSET`).
    public static func callSites() -> [String] {
        var lines: [String] = []
        let frames = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: Int(ALLOC_COUNTER_FRAMES))
        defer { frames.deallocate() }
        var text = [CChar](repeating: 0, count: 512)
        for site in 0..<alloc_counter_site_count() {
            let depth = Int(alloc_counter_site_frames(site, frames))
            var names = [String(cString: alloc_counter_site_call(site))]
            for frame in 0..<depth {
                text.withUnsafeMutableBufferPointer { alloc_counter_describe(frames[frame], $0.baseAddress!, Int32($0.count)) }
                names.append(demangled(String(cString: text)))
            }
            lines.append(names.joined(separator: " <- "))
        }
        return lines
    }

    /// "name+0xoff (object)" with a Swift mangled name replaced by its demangled form.
    static func demangled(_ frame: String) -> String {
        guard let plus = frame.firstIndex(of: "+") else { return frame }
        let symbol = String(frame[..<plus])
        guard symbol.hasPrefix("$s") || symbol.hasPrefix("_T") else { return frame }
        let result = symbol.withCString { swift_demangle($0, strlen($0), nil, nil, 0) }
        guard let result else { return frame }
        defer { Glibc.free(result) }
        return String(cString: result) + String(frame[plus...])
    }
}

@_silgen_name("swift_demangle")
private func swift_demangle(_ mangled: UnsafePointer<CChar>, _ length: Int, _ output: UnsafeMutablePointer<CChar>?,
                            _ outputSize: UnsafeMutablePointer<Int>?, _ flags: UInt32) -> UnsafeMutablePointer<CChar>?
