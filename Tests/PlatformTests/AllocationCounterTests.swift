import AllocCounting
import Platform
import Synchronization
import Testing

/// The allocation counter behind the "allocates nothing" tests (Tests/CAllocCounter): it sees
/// Swift's allocations, counts calls rather than bytes (a malloc/free pair counts 2), follows the
/// threads a tracked thread creates (a thread pool's workers), and ignores other threads.
@Suite(.serialized) struct AllocationCounterTests {
    /// Keeps a value alive past the optimizer (no stack promotion, no dead-code removal).
    @inline(never) static func keep<Value>(_ value: Value) -> Value { value }

    @Test func swiftArrayAllocationIsCountedWithItsCaller() {
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer (a sanitizer build?)")
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let count = Self.keep(100)
        let (sum, calls) = tracker.counting { () -> Int in
            let array = Self.keep([Int](repeating: 1, count: count))
            return array.reduce(0, +)
        }
        #expect(sum == count)
        #expect(calls.malloc + calls.aligned >= 1 && calls.free >= 1, "an Array of \(count) Ints: \(calls)")
        let sites = AllocationTracker.callSites()
        #expect(sites.contains { $0.contains("swift_slowAlloc") || $0.contains("swift_allocObject") }, "\(sites)")
    }

    @Test func alignedAllocationAndPairsCountAsCalls() {
        let tracker = AllocationTracker()
        defer { tracker.end() }
        // Allocated and freed inside the window: heap use is unchanged, the calls are not.
        let (_, calls) = tracker.counting {
            for _ in 0..<3 {
                let bytes = UnsafeMutableRawPointer.allocate(byteCount: Self.keep(256), alignment: 64)
                bytes.storeBytes(of: 1, as: UInt8.self)
                bytes.deallocate()
            }
        }
        #expect(calls.malloc + calls.aligned == 3 && calls.free == 3, "3 aligned allocate/deallocate pairs: \(calls)")
        #expect(calls.bytes == 768)
        let (_, none) = tracker.counting { Self.keep(41) + 1 }
        #expect(none.total == 0, "arithmetic: \(none)")
    }

    /// A thread created by a tracked thread is tracked; a thread created before (the test
    /// runner's, say) allocates meanwhile and is counted only among all threads.
    @Test func threadsCreatedByATrackedThreadAreTrackedOthersAreNot() throws {
        final class Shared: Sendable {
            let stop = Atomic<Bool>(false)
            let iterations = Atomic<Int>(0)
        }
        let shared = Shared()
        let outsider = try Thread(name: "untracked") {
            while !shared.stop.load(ordering: .acquiring) {
                _ = Self.keep([UInt8](repeating: 0, count: Self.keep(64)))
                shared.iterations.add(1, ordering: .relaxed)
                Thread.sleep(seconds: 0.0005)
            }
        }
        let tracker = AllocationTracker()
        defer { tracker.end() }
        tracker.start()
        let before = shared.iterations.load(ordering: .relaxed)
        let child = try Thread(name: "tracked child") {
            for _ in 0..<10 { _ = Self.keep([UInt8](repeating: 0, count: Self.keep(64))) }
        }
        child.join()
        while shared.iterations.load(ordering: .relaxed) < before + 5 { Thread.sleep(seconds: 0.001) }
        tracker.stop()
        shared.stop.store(true, ordering: .releasing)
        outsider.join()
        let tracked = tracker.calls, all = tracker.allThreads
        // 10 arrays (allocate + free each) on the child, plus creating and starting the thread.
        #expect(tracked.total >= 20, "tracked: \(tracked)")
        #expect(tracked.total < 60, "the untracked thread's calls leaked into the tracked count: \(tracked)")
        #expect(all.total >= tracked.total + 10, "all threads \(all), tracked \(tracked)")
    }

    /// Allocates and frees an array of 32 Ints per task.
    struct AllocatingTask: ParallelTask {
        func run(task: Int) { _ = AllocationCounterTests.keep([Int](repeating: 0, count: AllocationCounterTests.keep(32))) }
    }

    /// Does nothing: what the pool itself costs.
    struct EmptyTask: ParallelTask {
        func run(task: Int) {}
    }

    /// A pool created after the tracker has tracked workers (the trainer's case); one created
    /// before does not. The pool's static assignment puts odd tasks on the worker. Handing work to
    /// the workers allocates nothing itself: a run's calls are exactly its tasks' calls.
    @Test func poolWorkersAreTrackedWhenThePoolIsCreatedAfterTheTracker() throws {
        let tasks = 8
        let early = try ThreadPool(threads: 2)
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let pool = try ThreadPool(threads: 2)
        func job(_ pool: ThreadPool) -> AllocationCalls {
            pool.run(tasks: tasks, threads: 2, AllocatingTask())
            let runs = pool.parallelRuns
            let (_, calls) = tracker.counting { pool.run(tasks: tasks, threads: 2, AllocatingTask()) }
            #expect(pool.parallelRuns == runs + 1)
            return calls
        }
        let untrackedPool = job(early), trackedPool = job(pool)
        #expect(trackedPool.malloc == tasks && trackedPool.free == tasks && trackedPool.total == 2 * tasks,
                "pool created after the tracker: \(trackedPool); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
        #expect(untrackedPool.malloc == tasks / 2 && untrackedPool.total == tasks,
                "pool created before the tracker (only the caller's half): \(untrackedPool)")
        // The pool's own part: nothing, on two participants as on one.
        let runs = pool.parallelRuns
        let (_, parallel) = tracker.counting { for _ in 0..<100 { pool.run(tasks: 2, threads: 2, EmptyTask()) } }
        #expect(pool.parallelRuns == runs + 100)
        #expect(parallel.isZero, "100 runs handed to the worker: \(parallel); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
        let (_, single) = tracker.counting { pool.run(tasks: tasks, threads: 1, EmptyTask()) }
        #expect(single.isZero, "run on one participant: \(single)")
    }
}
