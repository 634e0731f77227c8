import CSystem

/// A fixed pool of pthreads created once. `run` hands out task indices with a static
/// round-robin assignment (participant p runs tasks p, p + threads, ...), so which thread
/// computes which task never depends on timing: results are deterministic for a given
/// thread count. The caller is participant 0. `run` allocates one closure thunk when it hands
/// work to the workers (see `parallelRuns`), nothing on one participant.
/// A pool serves one caller at a time (`run` is not reentrant across threads); a concurrent
/// second caller stops the process with a message rather than corrupting the first job.
public final class ThreadPool {
    /// Worker threads plus the caller.
    public let threadCount: Int

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wake: UnsafeMutablePointer<pthread_cond_t>
    private let done: UnsafeMutablePointer<pthread_cond_t>
    private var handles: [pthread_t] = []
    private var workers: [Worker] = []

    // Shared job description, guarded by `mutex`. `counters` holds the job generation [0] and
    // the workers still running the current job [1]: written under `mutex` (the decrement with
    // an atomic), read atomically without it during the spin phase.
    private let counters: UnsafeMutablePointer<UInt64>
    private var job: ((Int) -> Void)? = nil
    private var jobTasks = 0
    private var jobParticipants = 0
    private var shuttingDown = false
    /// Calls of `run` handed to the workers (more than one participant). Each allocates: the
    /// caller's non-escaping closure becomes escaping through `withoutActuallyEscaping`, whose
    /// thunk context (32 bytes) is heap-allocated because the job is stored for the workers, and
    /// is freed when the job ends: one malloc and one free per call (Tests/CAllocCounter).
    public private(set) var parallelRuns = 0

    /// How long a worker waiting for a job, or the caller waiting for the workers, polls before
    /// it sleeps on its condition variable. Kernels call `run` hundreds of times per training
    /// step, with serial work (batch norm statistics, the loss, the optimizer) in between. With
    /// a short spin (4000 pause instructions, ~0.1 ms on Zen 5) the worker fell asleep in those
    /// gaps and every futex wake-up delayed the next parallel section: resnet8 trained at
    /// 1794-2127 samples/s against 2655-2957 with ~1-2.5 ms (2 threads, this machine,
    /// 2026-11-23). Measured in time rather than polls, because a pause costs ~26 ns on Zen 5
    /// and a yield about a cycle on a Cortex-A76. An idle pool sleeps after this long.
    static let spinNanoseconds: Int64 = 2_000_000

    /// Polls (with a pause/yield hint) until `finished()` or until `spinNanoseconds` have passed;
    /// the clock is read every 64 polls.
    @inline(__always)
    private static func spin(until finished: () -> Bool) {
        let start = leitner_monotonic_ns()
        var polls = 0
        while !finished() {
            leitner_cpu_relax()
            polls &+= 1
            if polls & 63 == 0 && leitner_monotonic_ns() - start > spinNanoseconds { return }
        }
    }

    private var generation: UInt64 { leitner_atomic_load(counters) }
    private var pending: UInt64 { leitner_atomic_load(counters + 1) }

    final class Worker {
        // Not retained: the pool joins its workers before it goes away.
        let pool: Unmanaged<ThreadPool>
        let index: Int
        init(pool: ThreadPool, index: Int) { self.pool = Unmanaged.passUnretained(pool); self.index = index }
    }

    /// Creates `threads - 1` worker threads (the caller is the remaining one).
    public init(threads: Int) throws(SystemError) {
        precondition(threads >= 1, "a thread pool needs at least one thread")
        threadCount = threads
        mutex = .allocate(capacity: 1)
        wake = .allocate(capacity: 1)
        done = .allocate(capacity: 1)
        counters = .allocate(capacity: 2)
        counters.initialize(repeating: 0, count: 2)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
        workers.reserveCapacity(threads - 1)
        for index in 1..<max(threads, 1) {
            let worker = Worker(pool: self, index: index)
            workers.append(worker)
            var handle = pthread_t()
            let context = Unmanaged.passUnretained(worker).toOpaque()
            let status = pthread_create(&handle, nil, { raw in
                let worker = Unmanaged<ThreadPool.Worker>.fromOpaque(raw!).takeUnretainedValue()
                worker.pool.takeUnretainedValue().workerLoop(index: worker.index)
                return nil
            }, context)
            if status != 0 {
                shutdown()
                throw SystemError(call: "pthread_create", subject: "thread \(index) of \(threads)", code: status)
            }
            handles.append(handle)
        }
    }

    deinit {
        shutdown()
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(wake)
        pthread_cond_destroy(done)
        mutex.deallocate()
        wake.deallocate()
        done.deallocate()
        counters.deallocate()
    }

    private func shutdown() {
        pthread_mutex_lock(mutex)
        shuttingDown = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)
        for handle in handles { pthread_join(handle, nil) }
        handles.removeAll()
    }

    /// Runs `body(task)` for every task in `0..<tasks` on `min(threads, threadCount, tasks)`
    /// participants and returns when all are done. Task-to-thread assignment is static.
    public func run(tasks: Int, threads requested: Int, _ body: (Int) -> Void) {
        let participants = min(max(requested, 1), threadCount, tasks)
        if participants <= 1 {
            for task in 0..<tasks { body(task) }
            return
        }
        parallelRuns &+= 1
        withoutActuallyEscaping(body) { escapable in
            pthread_mutex_lock(mutex)
            // One caller at a time: a second concurrent caller would overwrite the job.
            precondition(job == nil, "ThreadPool.run called while the pool is busy with another caller's job; give each concurrent caller its own KernelContext")
            job = escapable
            jobTasks = tasks
            jobParticipants = participants
            leitner_atomic_store(counters + 1, UInt64(participants - 1))
            leitner_atomic_store(counters, generation &+ 1)
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)

            var task = 0
            while task < tasks { escapable(task); task += participants }

            ThreadPool.spin { pending == 0 }
            pthread_mutex_lock(mutex)
            while pending > 0 { pthread_cond_wait(done, mutex) }
            job = nil
            pthread_mutex_unlock(mutex)
        }
    }

    /// Runs one participant's tasks. Kept out of line so the local reference to the job's
    /// closure ends before `pending` is decremented (`withoutActuallyEscaping` checks that).
    @inline(never)
    private func runShare(first: Int, tasks: Int, stride: Int) {
        guard let body = job else { return }
        var task = first
        while task < tasks { body(task); task += stride }
    }

    private func workerLoop(index: Int) {
        var seen: UInt64 = 0
        while true {
            // Spin phase: poll for the next job without the lock, then sleep on `wake`.
            ThreadPool.spin { generation != seen }
            pthread_mutex_lock(mutex)
            while generation == seen && !shuttingDown { pthread_cond_wait(wake, mutex) }
            if shuttingDown { break }
            seen = generation
            guard index < jobParticipants, job != nil else {
                pthread_mutex_unlock(mutex)
                continue
            }
            let tasks = jobTasks
            let participants = jobParticipants
            pthread_mutex_unlock(mutex)
            runShare(first: index, tasks: tasks, stride: participants)
            pthread_mutex_lock(mutex)
            if leitner_atomic_decrement(counters + 1) == 0 { pthread_cond_signal(done) }
            pthread_mutex_unlock(mutex)
        }
        pthread_mutex_unlock(mutex)
    }
}
