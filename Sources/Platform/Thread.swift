import CSystem

/// One pthread running a closure once; `join` waits for it. The closure is retained until
/// the thread has finished.
public final class Thread {
    private var handle = pthread_t()
    private var joined = false

    final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Starts a thread running `body`.
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

    /// Waits for the thread to finish (once; later calls return at once).
    public func join() {
        if joined { return }
        pthread_join(handle, nil)
        joined = true
    }

    deinit { join() }
}

/// A mutex with one condition variable: the monitor a producer and a consumer share.
public final class Monitor {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    public init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for a broadcast; call with the lock held.
    public func wait() { pthread_cond_wait(condition, mutex) }
    public func broadcast() { pthread_cond_broadcast(condition) }
}

extension Clock {
    /// Sleeps for `nanoseconds`.
    public static func sleep(nanoseconds: Int64) {
        if nanoseconds > 0 { leitner_sleep_ns(nanoseconds) }
    }
}

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
