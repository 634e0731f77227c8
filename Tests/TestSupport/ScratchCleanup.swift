import Foundation

/// Test scratch under NSTemporaryDirectory() removed when the test process exits: the tests
/// name it "leitner-NAME-PID-RANDOM" (every entry of this process is removed) or register it
/// (`removeAtExit`). A test run used to leave over 250 MB behind (three 86 MB backbone fine-tune
/// runs), which on a board's SD card adds up. Set LEITNER_KEEP_TEST_FILES=1 to keep them.
public enum ScratchCleanup {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var registered: [String] = []
    private static let installed: Bool = {
        atexit { ScratchCleanup.removeAll() }
        return true
    }()

    /// Removes this process's "leitner-*-PID-*" entries at exit, and `path` if given.
    public static func removeAtExit(_ path: String? = nil) {
        _ = installed
        guard let path else { return }
        lock.lock()
        registered.append(path)
        lock.unlock()
    }

    static func removeAll() {
        if ProcessInfo.processInfo.environment["LEITNER_KEEP_TEST_FILES"] == "1" { return }
        let directory = NSTemporaryDirectory()
        let marker = "-\(getpid())-"
        var paths = registered
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        where name.hasPrefix("leitner-") && name.contains(marker) {
            paths.append((directory as NSString).appendingPathComponent(name))
        }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }
}
