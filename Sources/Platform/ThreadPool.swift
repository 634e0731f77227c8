import CSystem

/// A fixed pool of pthreads created once. `run` hands out task indices with a static
/// round-robin assignment (participant p runs tasks p, p + threads, ...), so which thread
/// computes which task never depends on timing: results are deterministic for a given
/// thread count. The caller is participant 0. `run` performs no heap allocation.
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

    // Shared job description, guarded by `mutex`.
    private var generation: UInt64 = 0
    private var job: ((Int) -> Void)? = nil
    private var jobTasks = 0
    private var jobParticipants = 0
    private var pending = 0
    private var shuttingDown = false

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
        withoutActuallyEscaping(body) { escapable in
            pthread_mutex_lock(mutex)
            // One caller at a time: a second concurrent caller would overwrite the job.
            precondition(job == nil, "ThreadPool.run called while the pool is busy with another caller's job; give each concurrent caller its own KernelContext")
            job = escapable
            jobTasks = tasks
            jobParticipants = participants
            pending = participants - 1
            generation &+= 1
            pthread_cond_broadcast(wake)
            pthread_mutex_unlock(mutex)

            var task = 0
            while task < tasks { escapable(task); task += participants }

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
        pthread_mutex_lock(mutex)
        while true {
            while generation == seen && !shuttingDown { pthread_cond_wait(wake, mutex) }
            if shuttingDown { break }
            seen = generation
            guard index < jobParticipants, job != nil else { continue }
            let tasks = jobTasks
            let participants = jobParticipants
            pthread_mutex_unlock(mutex)
            runShare(first: index, tasks: tasks, stride: participants)
            pthread_mutex_lock(mutex)
            pending -= 1
            if pending == 0 { pthread_cond_signal(done) }
        }
        pthread_mutex_unlock(mutex)
    }
}
