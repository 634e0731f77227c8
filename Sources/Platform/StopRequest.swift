import CSystem

/// SIGINT and SIGTERM ask a run to stop: the first sets a flag that the training loop reads
/// between steps (it finishes the step, leaves the last checkpoint as it is, and says how to
/// resume); a second one ends the process the default way. SIGPIPE is ignored, so output to a
/// closed pipe (`leitner train | head -1`) fails quietly instead of killing the run.
public enum StopRequest {
    /// Installs the handlers (once, from main); false when sigaction failed.
    @discardableResult
    public static func install() -> Bool { leitner_install_stop_handlers() == 0 }

    /// SIGINT and SIGTERM end the process again (the default action), for a command that never
    /// reads the flag (bench, eval, doctor, ...): otherwise its first Ctrl-C would be swallowed.
    /// SIGPIPE stays ignored.
    @discardableResult
    public static func uninstall() -> Bool { leitner_default_stop_handlers() == 0 }

    /// The signal that asked to stop (SIGINT 2, SIGTERM 15), or 0. One load of a flag.
    @inline(__always)
    public static var signal: Int32 { leitner_stop_signal_received() }

    /// Whether a stop was asked for.
    @inline(__always)
    public static var requested: Bool { leitner_stop_signal_received() != 0 }

    /// The signal's name for a message.
    public static var signalName: String {
        switch signal {
        case 2: return "SIGINT"
        case 15: return "SIGTERM"
        case 0: return "no signal"
        default: return "signal \(signal)"
        }
    }

    /// Forgets a request (tests).
    public static func clear() { leitner_clear_stop_signal() }
}

/// An exclusive advisory lock held on a file for the life of the process (flock): a second
/// process that tries the same file learns that it is taken instead of sharing it.
public struct FileLock {
    public let handle: FileHandle

    /// Takes the lock on `path` (created if missing) and writes this process's id into it;
    /// nil when another process holds it (its id is then in the file).
    /// `patience` seconds of retries (every 20 ms) before nil: a lock this process has just
    /// released can stay held for a moment by a child being spawned by another thread (it shares
    /// the descriptor until its exec closes it), which a full test run once hit.
    public static func acquire(_ path: String, patience: Double = 0.5) throws(SystemError) -> FileLock? {
        var waited = 0.0
        while true {
            if let lock = try tryAcquire(path) { return lock }
            if waited >= patience { return nil }
            Thread.sleep(seconds: 0.02)
            waited += 0.02
        }
    }

    /// One attempt of `acquire`.
    static func tryAcquire(_ path: String) throws(SystemError) -> FileLock? {
        let fd = leitner_open_rdwr(path)
        if fd < 0 { throw SystemError.fromErrno("open", path) }
        let handle = FileHandle(descriptor: fd, path: path)
        if leitner_try_lock(fd) != 0 {
            let code = leitner_errno()
            try? handle.close()
            if code == EWOULDBLOCK { return nil }
            throw SystemError(call: "flock", subject: path, code: code)
        }
        if ftruncate(fd, 0) == 0 { try? handle.write("\(getpid())\n") }
        return FileLock(handle: handle)
    }

    /// Releases the lock (it is also released when the process ends).
    public func release() { try? handle.close() }
}
