import CSystem

/// A small file kept open and re-read from offset 0 (sysfs attributes, /proc/stat): each
/// `read` regenerates the content without opening the file again and allocates nothing.
public final class ValueFile {
    public let path: String
    private let descriptor: Int32
    private let buffer: UnsafeMutablePointer<UInt8>
    private let capacity: Int

    /// Opens `path` for reading with room for `capacity` bytes of content.
    public init(_ path: String, capacity: Int = 128) throws(SystemError) {
        let fd = leitner_open_read(path)
        if fd < 0 { throw SystemError.fromErrno("open", path) }
        self.path = path
        descriptor = fd
        self.capacity = max(capacity, 16)
        buffer = .allocate(capacity: self.capacity)
    }

    deinit {
        _ = CSystem.close(descriptor)
        buffer.deallocate()
    }

    /// The file's current content (up to the capacity), valid until the next `read`.
    public func read() throws(SystemError) -> UnsafeBufferPointer<UInt8> {
        while true {
            let got = pread(descriptor, buffer, capacity, 0)
            if got >= 0 { return UnsafeBufferPointer(start: buffer, count: got) }
            if leitner_errno() == EINTR { continue }
            throw SystemError.fromErrno("read", path)
        }
    }

    /// The first decimal integer in the file (sysfs counters such as `energy_uj`).
    public func readInteger() throws(SystemError) -> Int64 {
        let bytes = try read()
        guard let value = DecimalScanner.firstInteger(bytes) else {
            throw SystemError(call: "read", subject: path + " (no integer in the file)", code: 0)
        }
        return value
    }
}

/// Integer scanning over bytes without allocation.
public enum DecimalScanner {
    /// The first optionally signed decimal integer in `bytes`, or nil.
    public static func firstInteger(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        var position = 0
        return nextInteger(bytes, from: &position)
    }

    /// The next optionally signed decimal integer at or after `position`; advances past it.
    public static func nextInteger(_ bytes: UnsafeBufferPointer<UInt8>, from position: inout Int) -> Int64? {
        while position < bytes.count {
            let byte = bytes[position]
            if isDigit(byte) || (byte == UInt8(ascii: "-") && position + 1 < bytes.count && isDigit(bytes[position + 1])) { break }
            position += 1
        }
        guard position < bytes.count else { return nil }
        var negative = false
        if bytes[position] == UInt8(ascii: "-") { negative = true; position += 1 }
        var value: Int64 = 0
        while position < bytes.count, isDigit(bytes[position]) {
            value = value &* 10 &+ Int64(bytes[position] - UInt8(ascii: "0"))
            position += 1
        }
        return negative ? -value : value
    }

    @inline(__always) static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
}

extension FileSystem {
    /// The names in a directory (without "." and ".."), in the order the system gives them.
    public static func list(_ path: String) throws(SystemError) -> [String] {
        guard let directory = leitner_opendir(path) else { throw SystemError.fromErrno("opendir", path) }
        defer { _ = leitner_closedir(directory) }
        var names: [String] = []
        while let name = leitner_readdir_name(directory) {
            let text = String(cString: name)
            if text != "." && text != ".." { names.append(text) }
        }
        return names
    }

    /// A small text file's content (sysfs `name` files), trailing whitespace removed.
    public static func readText(_ path: String) throws(SystemError) -> String {
        var text = String(decoding: try readAll(path, limit: 64 << 10), as: UTF8.self)
        while let last = text.last, last == "\n" || last == " " || last == "\t" || last == "\r" || last == "\0" { text.removeLast() }
        return text
    }

    /// Where the symbolic link at `path` points (readlink), or nil when it is not a link or the
    /// target is longer than 4095 bytes.
    public static func symbolicLinkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4097)
        let length = buffer.withUnsafeMutableBufferPointer { raw in
            readlink(path, raw.baseAddress!, raw.count - 1)
        }
        if length <= 0 || length >= buffer.count - 1 { return nil }
        let bytes = buffer[0..<length].map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Running a shell command and capturing its standard output.
public final class CommandCapture {
    public let command: String
    private let shellCommand: String
    private let buffer: UnsafeMutablePointer<CChar>
    private let capacity: Int

    /// At most this many seconds per run (`timeoutSeconds`); a command still running then is
    /// killed (SIGTERM, SIGKILL a second later) and the run fails with "timed out".
    public let timeoutSeconds: Int

    /// Prepares to run `command` through /bin/sh, keeping up to `capacity` bytes of its output;
    /// its standard error is discarded unless `keepErrors`. Each run is bounded by
    /// `timeoutSeconds` through coreutils' `timeout` (a hung meter command cannot hang a run).
    public init(_ command: String, capacity: Int = 8192, keepErrors: Bool = false, timeoutSeconds: Int = 5) {
        self.command = command
        self.timeoutSeconds = max(timeoutSeconds, 1)
        let quoted = "'" + command.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
        let bounded = "timeout -k 1 \(self.timeoutSeconds) /bin/sh -c " + quoted
        shellCommand = keepErrors ? bounded : bounded + " 2>/dev/null"
        self.capacity = max(capacity, 16)
        buffer = .allocate(capacity: self.capacity)
    }

    deinit { buffer.deallocate() }

    /// Runs the command (popen) and returns its output, valid until the next `run`.
    public func run() throws(SystemError) -> UnsafeBufferPointer<UInt8> {
        var status: Int32 = 0
        let count = leitner_run_capture(shellCommand, buffer, capacity, &status)
        if count < 0 { throw SystemError.fromErrno("popen", command) }
        if status != 0 {
            let exit = status >> 8
            if exit == 124 || exit == 137 {
                throw SystemError(call: "popen", subject: "`\(command)` timed out after \(timeoutSeconds) s", code: 0)
            }
            throw SystemError(call: "popen", subject: "`\(command)` exited with status \(exit)" + (exit == 127 ? " (command not found)" : ""), code: 0)
        }
        return UnsafeBufferPointer(start: UnsafeRawPointer(buffer).assumingMemoryBound(to: UInt8.self), count: count)
    }
}
