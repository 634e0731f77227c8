import Testing
import Platform

@Suite struct ThreadPoolTests {
    @Test func everyTaskRunsExactlyOnce() throws {
        let pool = try ThreadPool(threads: 3)
        for tasks in [1, 2, 3, 7, 64] {
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: tasks)
            counts.initialize(repeating: 0, count: tasks)
            for _ in 0..<50 {
                pool.run(tasks: tasks, threads: 3) { task in counts[task] += 1 }
            }
            for task in 0..<tasks { #expect(counts[task] == 50, "task \(task) of \(tasks)") }
            counts.deallocate()
        }
    }
}
