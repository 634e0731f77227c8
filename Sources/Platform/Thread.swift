import CSystem

/// One pthread running a closure, joined explicitly. The closure is retained by the thread
/// until it returns.
public final class Thread {
    private var handle = pthread_t()
    private var joined = false

    final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts a thread that runs `body` once.
    public init(name: String, _ body: @escaping () -> Void) throws(SystemError) {
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        let status = pthread_create(&handle, nil, { raw in
            let body = Unmanaged<Thread.Body>.fromOpaque(raw!).takeRetainedValue()
            body.run()
            return nil
        }, context)
        if status != 0 {
            Unmanaged<Body>.fromOpaque(context).release()
            joined = true
            throw SystemError(call: "pthread_create", subject: name, code: status)
        }
    }

    /// Waits for the thread to end (once; later calls return at once).
    public func join() {
        if joined { return }
        pthread_join(handle, nil)
        joined = true
    }

    deinit { join() }

    /// Sleeps the calling thread.
    public static func sleep(seconds: Double) {
        leitner_sleep_ns(Int64(max(seconds, 0) * 1e9))
    }

    /// CPU seconds the calling thread has used.
    public static func cpuSeconds() -> Double { Double(leitner_thread_cpu_ns()) * 1e-9 }
}

/// A mutex with one condition variable: `lock`/`unlock`, `wait`, a timed wait, `broadcast`.
public final class Condition {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        leitner_cond_init_monotonic(condition)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` holding the mutex.
    public func withLock<Result>(_ body: () -> Result) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Waits for a broadcast (the mutex must be held).
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a broadcast or `seconds` (the mutex must be held). True when woken early.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        leitner_cond_wait_ns(condition, mutex, Int64(max(seconds, 0) * 1e9)) == 0
    }

    public func broadcast() { pthread_cond_broadcast(condition) }
}

/// The streaming reader's name for the mutex + condition pair.
public typealias Monitor = Condition



extension FileHandle {
    /// Writes all `count` bytes at `offset` (pwrite), leaving the file position alone.
    public func writeAll(_ buffer: UnsafeRawPointer, count: Int, at offset: Int64) throws(SystemError) {
        var done = 0
        while done < count {
            let wrote = pwrite(descriptor, buffer + done, count - done, off_t(offset) + off_t(done))
            if wrote < 0 {
                if leitner_errno() == EINTR { continue }
                throw SystemError.fromErrno("pwrite", path)
            }
            done += wrote
        }
    }

    /// Reads up to `count` bytes at `offset` (pread); returns how many arrived (fewer only at
    /// the end of the file).
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws(SystemError) -> Int {
        var done = 0
        while done < count {
            let got = pread(descriptor, buffer + done, count - done, off_t(offset) + off_t(done))
            if got < 0 {
                if leitner_errno() == EINTR { continue }
                throw SystemError.fromErrno("pread", path)
            }
            if got == 0 { break }
            done += got
        }
        return done
    }
}
