import CSystem

/// The body of a parallel loop: `run(task:)` computes task number `task`, and the value's stored
/// properties (pointers, sizes, flags) are its inputs. Several threads call `run(task:)` on the
/// same value at once, each with different tasks, so it must not mutate shared state other than
/// through the pointers it holds, each task writing its own part.
///
/// A type rather than a closure because a closure cannot reach another thread without a heap
/// allocation: the workers must find the body in memory, and storing a non-escaping closure
/// there takes `withoutActuallyEscaping`, whose thunk context is heap-allocated (one malloc and
/// one free per run). A value of a concrete `ParallelTask` type lives on the caller's stack.
public protocol ParallelTask {
    func run(task: Int)
}

/// A fixed pool of pthreads created once. `run` hands out task indices with a static
/// round-robin assignment (participant p runs tasks p, p + threads, ...), so which thread
/// computes which task never depends on timing: results are deterministic for a given
/// thread count. The caller is participant 0. `run` allocates nothing: the body stays on the
/// caller's stack and the workers call it through a pointer.
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
    // The current job: the function that runs one of its tasks (a specialization of `run`'s
    // trampoline, which captures nothing), nil between jobs, and the caller's body on its stack,
    // meaningful only while `jobInvoke` is set. The body pointer is never tested: a body of size
    // zero may have any address, even one that reads as nil.
    private var jobInvoke: ((UnsafeRawPointer, Int) -> Void)? = nil
    private var jobBody: UnsafeRawPointer
    private var jobTasks = 0
    private var jobParticipants = 0
    private var shuttingDown = false
    /// Calls of `run` handed to the workers (more than one participant).
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

    /// After this long a spinning thread also gives its core away (sched_yield) at every clock
    /// read. When other processes keep the cores busy, the thread being waited for is often not
    /// running: a pure pause loop then burns the waiter's time slice while the worker it waits
    /// for queues behind it. Measured (2026-12-06, 2 cores, load average 5 from other builds,
    /// mobilenet_v2 x0.35 96x96 batch 32): 2 threads trained at 10 samples/s with the pure
    /// spin, against 41 with 1 thread. On an idle core sched_yield returns at once (a system
    /// call, ~0.2 us, once per 64 polls), so the quiet-machine behaviour above is kept.
    static let yieldAfterNanoseconds: Int64 = 50_000

    /// Polls (with a pause/yield hint) until `finished()` or until `spinNanoseconds` have passed;
    /// the clock is read every 64 polls, and after `yieldAfterNanoseconds` each read also yields.
    @inline(__always)
    private static func spin(until finished: () -> Bool) {
        let start = leitner_monotonic_ns()
        var polls = 0
        while !finished() {
            leitner_cpu_relax()
            polls &+= 1
            if polls & 63 == 0 {
                let elapsed = leitner_monotonic_ns() - start
                if elapsed > spinNanoseconds { return }
                if elapsed > yieldAfterNanoseconds { sched_yield() }
            }
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
        jobBody = UnsafeRawPointer(counters)
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

    /// Runs `body.run(task:)` for every task in `0..<tasks` on `min(threads, threadCount, tasks)`
    /// participants and returns when all are done. Task-to-thread assignment is static.
    /// Allocates nothing once specialized for `Body` (inlined into the caller's module; an
    /// unspecialized call, as in a debug build, allocates the trampoline's context).
    @inlinable
    public func run<Body: ParallelTask>(tasks: Int, threads requested: Int, _ body: Body) {
        let participants = min(max(requested, 1), threadCount, tasks)
        if participants <= 1 {
            for task in 0..<tasks { body.run(task: task) }
            return
        }
        withUnsafePointer(to: body) { pointer in
            dispatch(tasks: tasks, participants: participants, body: UnsafeRawPointer(pointer)) { body, task in
                body.assumingMemoryBound(to: Body.self).pointee.run(task: task)
            }
        }
    }

    /// Hands the job to the workers, runs participant 0's tasks, and waits for the workers.
    /// `body` stays valid until this returns; `invoke` must capture nothing (then storing it
    /// allocates nothing).
    @usableFromInline
    func dispatch(tasks: Int, participants: Int, body: UnsafeRawPointer, invoke: @escaping (UnsafeRawPointer, Int) -> Void) {
        parallelRuns &+= 1
        pthread_mutex_lock(mutex)
        // One caller at a time: a second concurrent caller would overwrite the job.
        precondition(jobInvoke == nil, "ThreadPool.run called while the pool is busy with another caller's job; give each concurrent caller its own KernelContext")
        jobBody = body
        jobInvoke = invoke
        jobTasks = tasks
        jobParticipants = participants
        leitner_atomic_store(counters + 1, UInt64(participants - 1))
        leitner_atomic_store(counters, generation &+ 1)
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(mutex)

        var task = 0
        while task < tasks { invoke(body, task); task += participants }

        ThreadPool.spin { pending == 0 }
        pthread_mutex_lock(mutex)
        while pending > 0 { pthread_cond_wait(done, mutex) }
        jobInvoke = nil
        pthread_mutex_unlock(mutex)
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
            guard index < jobParticipants, let invoke = jobInvoke else {
                pthread_mutex_unlock(mutex)
                continue
            }
            let body = jobBody
            let tasks = jobTasks
            let participants = jobParticipants
            pthread_mutex_unlock(mutex)
            var task = index
            while task < tasks { invoke(body, task); task += participants }
            pthread_mutex_lock(mutex)
            if leitner_atomic_decrement(counters + 1) == 0 { pthread_cond_signal(done) }
            pthread_mutex_unlock(mutex)
        }
        pthread_mutex_unlock(mutex)
    }
}
