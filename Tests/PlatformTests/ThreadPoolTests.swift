import Platform
import Synchronization
import Testing

@Suite struct ThreadPoolTests {
    /// Counts how often each task ran.
    struct CountTask: ParallelTask {
        let counts: UnsafeMutablePointer<Int>
        func run(task: Int) { counts[task] += 1 }
    }

    @Test func everyTaskRunsExactlyOnce() throws {
        let pool = try ThreadPool(threads: 3)
        for tasks in [1, 2, 3, 7, 64] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: tasks)
            counts.initialize(repeating: 0, count: tasks)
            for _ in 0..<50 {
                pool.run(tasks: tasks, threads: 3, CountTask(counts: counts))
            }
            for task in 0..<tasks { #expect(counts[task] == 50, "task \(task) of \(tasks)") }
            counts.deallocate()
        }
    }

    /// A body with no stored properties (size zero, so its address may be anything, even one
    /// that reads as nil) still runs on the workers.
    struct StatelessTask: ParallelTask {
        static let runs = Atomic<Int>(0)
        func run(task: Int) { Self.runs.add(1, ordering: .relaxed) }
    }

    @Test(.timeLimit(.minutes(1))) func aBodyOfSizeZeroRunsOnTheWorkers() throws {
        #expect(MemoryLayout<StatelessTask>.size == 0)
        let pool = try ThreadPool(threads: 2)
        for _ in 0..<50 { pool.run(tasks: 4, threads: 2, StatelessTask()) }
        #expect(StatelessTask.runs.load(ordering: .relaxed) == 200)
        #expect(pool.parallelRuns == 50)
    }
}
