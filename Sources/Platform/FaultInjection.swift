import CSystem

/// Test-only faults in the file layer, switched on by environment variables (docs/reliability.md):
///
/// - `LEITNER_FAULT=CALL:ERRNO[:after=N][:path=TEXT]` makes `write`, `fsync`, `rename` or
///   `open` (files opened for writing) fail with ERRNO (ENOSPC, EIO, EDQUOT, EROFS, EACCES)
///   once N matching calls have succeeded (default 0), and every matching call after that, as
///   a full or dead disk would; only paths containing TEXT match when `path=` is given.
/// - `LEITNER_WRITE_PAUSE_MS=MS[:path=TEXT]` announces each write, fsync and rename on standard
///   error ("leitner-io: begin write PATH", then "leitner-io: end ...") and sleeps MS ms
///   inside it, so `tools/crash-test` can land SIGKILLs in the middle of a file write.
/// - `LEITNER_INJECT_NAN_STEP=N` turns the loss of optimizer step N (1-based) into NaN once.
///
/// Read once, on the first file write; the checks cost a comparison per write call.
public enum FaultInjection {
    /// The system call a fault applies to.
    public enum Call: String {
        case write, fsync, rename, open
    }

    struct Settings {
        var faultCall: Call? = nil
        var faultErrno: Int32 = 0
        var faultAfter = 0
        var faultPath = ""
        var faultCalls = 0
        var pauseNanoseconds: Int64 = 0
        var pausePath = ""
        var nanStep = 0
    }

    private static var settings: Settings? = nil

    private static func current() -> Settings {
        if let settings { return settings }
        var parsed = Settings()
        if let text = Environment.value("LEITNER_FAULT") {
            let parts = text.split(separator: ":").map(String.init)
            if parts.count >= 2, let call = Call(rawValue: parts[0]), let code = errnoValue(parts[1]) {
                parsed.faultCall = call
                parsed.faultErrno = code
                for part in parts.dropFirst(2) {
                    if part.hasPrefix("after="), let count = Int(part.dropFirst(6)) { parsed.faultAfter = max(count, 0) }
                    if part.hasPrefix("path=") { parsed.faultPath = String(part.dropFirst(5)) }
                }
            } else {
                Console.error("leitner: LEITNER_FAULT='\(text)' is not CALL:ERRNO[:after=N][:path=TEXT] (CALL: write, fsync, rename, open; ERRNO: ENOSPC, EIO, EDQUOT, EROFS, EACCES); ignored")
            }
        }
        if let text = Environment.value("LEITNER_WRITE_PAUSE_MS") {
            let parts = text.split(separator: ":").map(String.init)
            if let first = parts.first, let milliseconds = Int(first), milliseconds >= 0 {
                parsed.pauseNanoseconds = Int64(milliseconds) * 1_000_000
            }
            for part in parts.dropFirst() where part.hasPrefix("path=") { parsed.pausePath = String(part.dropFirst(5)) }
        }
        if let text = Environment.value("LEITNER_INJECT_NAN_STEP"), let step = Int(text), step > 0 { parsed.nanStep = step }
        settings = parsed
        return parsed
    }

    /// The optimizer step whose loss is replaced by NaN (0: none).
    public static var nanStep: Int { current().nanStep }

    // Test seam: the order of the file layer's calls under a directory, so a test can see that
    // a save fsyncs the directory after its rename, and a failure of one call there. Off in
    // production: one Int check per write, fsync, rename or open call, none of which is on the
    // training hot path. Unlike LEITNER_FAULT (one per process), each test traces its own
    // directory, so tests running in parallel do not disturb each other; kept under a lock.
    private struct Trace {
        var path: String
        var calls: [String] = []
        var failing: Call?
        var code: Int32
        var after: Int
        var matched = 0
    }
    private static var activeTraces = 0
    private static let traceLock = Condition()
    private static var traces: [Trace] = []

    /// Starts recording "CALL PATH" (rename: its source path) for each write, fsync, rename
    /// and open for writing whose path contains `path`, in call order (a directory's own
    /// fsync has the directory's path). With `failing`, that call fails with `errno` there
    /// once `after` such calls have succeeded, as LEITNER_FAULT would make it.
    public static func startTrace(path: String, failing: Call? = nil, errno code: Int32 = Errno.ioError, after: Int = 0) {
        traceLock.withLock {
            traces.append(Trace(path: path, failing: failing, code: code, after: after))
            activeTraces = traces.count
        }
    }

    /// Stops the trace of `path` and returns the calls recorded since `startTrace(path:)`.
    public static func stopTrace(path: String) -> [String] {
        traceLock.withLock {
            guard let position = traces.firstIndex(where: { $0.path == path }) else { return [] }
            let calls = traces.remove(at: position).calls
            activeTraces = traces.count
            return calls
        }
    }

    /// Records `call` in every trace whose path `path` contains; the errno to fail with (0: none).
    static func trace(_ call: Call, path: String) -> Int32 {
        traceLock.withLock {
            var code: Int32 = 0
            for position in traces.indices where matches(path, traces[position].path) {
                traces[position].calls.append(call.rawValue + " " + path)
                if traces[position].failing == call {
                    traces[position].matched += 1
                    if traces[position].matched > traces[position].after { code = traces[position].code }
                }
            }
            return code
        }
    }

    /// Called by the file layer before `call` on `path`: pauses and announces it when asked,
    /// and returns the errno to fail with when a fault is due (0: go ahead).
    static func before(_ call: Call, path: String) -> Int32 {
        if activeTraces > 0 {
            let traced = trace(call, path: path)
            if traced != 0 { return traced }
        }
        var state = current()
        if state.faultCall == nil && state.pauseNanoseconds == 0 { return 0 }
        if state.pauseNanoseconds > 0 && call != .open && matches(path, state.pausePath) {
            Console.error("leitner-io: begin \(call.rawValue) \(path)")
            leitner_sleep_ns(state.pauseNanoseconds)
        }
        var code: Int32 = 0
        if state.faultCall == call && matches(path, state.faultPath) {
            state.faultCalls += 1
            if state.faultCalls > state.faultAfter { code = state.faultErrno }
            settings = state
        }
        return code
    }

    /// Called after `call` on `path` completed (announces the end of a paused call).
    static func after(_ call: Call, path: String) {
        guard let state = settings, state.pauseNanoseconds > 0, call != .open,
              matches(path, state.pausePath) else { return }
        Console.error("leitner-io: end \(call.rawValue) \(path)")
    }

    /// True when `filter` is empty or occurs in `path` (byte-wise: Embedded Swift's String has
    /// no substring search).
    static func matches(_ path: String, _ filter: String) -> Bool {
        if filter.isEmpty { return true }
        let haystack = Array(path.utf8), needle = Array(filter.utf8)
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) {
            return true
        }
        return false
    }

    /// Forgets the parsed variables, so a test that changed them takes effect.
    public static func reload() { settings = nil }

    /// LEITNER_FAULT is one variable per process: a test that sets it in-process holds this
    /// lock from `setenv` until it has unset it and called `reload`, so tests running in
    /// parallel take turns instead of replacing each other's fault.
    public static let environmentLock = Condition()

    static func errnoValue(_ name: String) -> Int32? {
        switch name {
        case "ENOSPC": return ENOSPC
        case "EIO": return EIO
        case "EDQUOT": return EDQUOT
        case "EROFS": return EROFS
        case "EACCES": return EACCES
        default: return nil
        }
    }
}
