import CSystem

/// An open file descriptor. Each C call is wrapped once; failures name the call and the path.
public struct FileHandle {
    public let descriptor: Int32
    public let path: String

    /// Opens `path` for reading.
    public static func openForReading(_ path: String) throws(SystemError) -> FileHandle {
        let fd = leitner_open_read(path)
        if fd < 0 { throw SystemError.fromErrno("open", path) }
        return FileHandle(descriptor: fd, path: path)
    }

    /// Creates or truncates `path` for writing (mode 0644).
    public static func create(_ path: String) throws(SystemError) -> FileHandle {
        let injected = FaultInjection.before(.open, path: path)
        if injected != 0 { throw SystemError(call: "open", subject: path, code: injected) }
        let fd = leitner_open_create(path)
        if fd < 0 { throw SystemError.fromErrno("open", path) }
        return FileHandle(descriptor: fd, path: path)
    }

    /// Opens `path` for appending, creating it (mode 0644) when missing.
    public static func openForAppending(_ path: String) throws(SystemError) -> FileHandle {
        let fd = leitner_open_append(path)
        if fd < 0 { throw SystemError.fromErrno("open", path) }
        return FileHandle(descriptor: fd, path: path)
    }

    /// Writes a whole string.
    public func write(_ text: String) throws(SystemError) {
        var copy = text
        var result: Result<Void, SystemError> = .success(())
        copy.withUTF8 { bytes in
            guard let base = bytes.baseAddress else { return }
            do throws(SystemError) { try writeAll(base, count: bytes.count) } catch { result = .failure(error) }
        }
        try result.get()
    }

    /// Reads up to `count` bytes; returns the number read (0 at end of file). Retries on EINTR.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws(SystemError) -> Int {
        while true {
            let got = CSystem.read(descriptor, buffer, count)
            if got >= 0 { return got }
            if leitner_errno() == EINTR { continue }
            throw SystemError.fromErrno("read", path)
        }
    }

    /// Reads exactly `count` bytes at `offset` (pread); fails on a short file.
    public func readFully(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64) throws(SystemError) {
        var done = 0
        while done < count {
            let got = pread(descriptor, buffer + done, count - done, off_t(offset) + off_t(done))
            if got < 0 {
                if leitner_errno() == EINTR { continue }
                throw SystemError.fromErrno("pread", path)
            }
            if got == 0 { throw SystemError(call: "pread", subject: path + " (unexpected end of file)", code: 0) }
            done += got
        }
    }

    /// Writes all `count` bytes. Retries on EINTR and short writes.
    public func writeAll(_ buffer: UnsafeRawPointer, count: Int) throws(SystemError) {
        let injected = FaultInjection.before(.write, path: path)
        if injected != 0 { throw SystemError(call: "write", subject: path, code: injected) }
        defer { FaultInjection.after(.write, path: path) }
        var done = 0
        while done < count {
            let wrote = CSystem.write(descriptor, buffer + done, count - done)
            if wrote < 0 {
                if leitner_errno() == EINTR { continue }
                throw SystemError.fromErrno("write", path)
            }
            done += wrote
        }
    }

    /// Flushes the file's data to the device.
    public func sync() throws(SystemError) {
        let injected = FaultInjection.before(.fsync, path: path)
        if injected != 0 { throw SystemError(call: "fsync", subject: path, code: injected) }
        defer { FaultInjection.after(.fsync, path: path) }
        if fsync(descriptor) != 0 { throw SystemError.fromErrno("fsync", path) }
    }

    /// Closes the descriptor.
    public func close() throws(SystemError) {
        if CSystem.close(descriptor) != 0 { throw SystemError.fromErrno("close", path) }
    }
}

/// Path-level operations.
public enum FileSystem {
    /// Size in bytes of the file at `path`.
    public static func size(of path: String) throws(SystemError) -> Int64 {
        var size: Int64 = 0
        var isDirectory: Int32 = 0
        if leitner_file_size(path, &size, &isDirectory) != 0 { throw SystemError.fromErrno("stat", path) }
        return size
    }

    /// True when something exists at `path`.
    public static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Atomically replaces `to` with `from` (rename(2)).
    public static func rename(_ from: String, to: String) throws(SystemError) {
        let injected = FaultInjection.before(.rename, path: from)
        if injected != 0 { throw SystemError(call: "rename", subject: from + " -> " + to, code: injected) }
        defer { FaultInjection.after(.rename, path: from) }
        if CSystem.rename(from, to) != 0 { throw SystemError.fromErrno("rename", from + " -> " + to) }
    }

    /// Creates a directory (mode 0755); succeeds when it already exists.
    public static func makeDirectory(_ path: String) throws(SystemError) {
        if mkdir(path, 0o755) != 0 && leitner_errno() != EEXIST { throw SystemError.fromErrno("mkdir", path) }
    }

    /// Creates a directory and its missing parents.
    public static func makeDirectories(_ path: String) throws(SystemError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            try makeDirectory(prefix)
            prefix += "/"
        }
        // mkdir's EEXIST also covers a file of that name or a symbolic-link loop: a directory is
        // what was asked for, and stat's own reason (ELOOP, EACCES) says best why it is not one.
        if let problem = statError(path) { throw problem }
        guard isDirectory(path) else { throw SystemError(call: "mkdir", subject: path, code: ENOTDIR) }
    }

    /// Why `path` cannot be looked at (stat's error: ENOENT, ELOOP for a symbolic-link loop,
    /// EACCES), or nil when it can.
    public static func statError(_ path: String) -> SystemError? {
        var size: Int64 = 0
        var directory: Int32 = 0
        return leitner_file_size(path, &size, &directory) == 0 ? nil : SystemError.fromErrno("stat", path)
    }

    /// True when `path` is a directory (links followed).
    public static func isDirectory(_ path: String) -> Bool {
        var size: Int64 = 0
        var directory: Int32 = 0
        return leitner_file_size(path, &size, &directory) == 0 && directory != 0
    }

    /// Removes a file; succeeds when it does not exist.
    public static func remove(_ path: String) throws(SystemError) {
        if unlink(path) != 0 && leitner_errno() != ENOENT { throw SystemError.fromErrno("unlink", path) }
    }

    /// Replaces the file at `path` with `text` atomically: written to "<path>.tmp", fsynced,
    /// renamed over `path` and the directory fsynced, so a crash leaves the old or the new
    /// content, never a mix, and a finished replace survives a power cut.
    public static func replace(_ path: String, with text: String) throws(SystemError) {
        let temporary = path + ".tmp"
        let file = try FileHandle.create(temporary)
        do throws(SystemError) {
            try file.write(text)
            try file.sync()
        } catch {
            try? file.close()
            throw error
        }
        try file.close()
        try rename(temporary, to: path)
        try syncDirectory(containing: path)
    }

    /// fsyncs the directory holding `path`: a rename is durable only once the directory entry
    /// is on the device (without it a power cut can bring back the old file or none).
    public static func syncDirectory(containing path: String) throws(SystemError) {
        var directory = String(path.reversed().drop(while: { $0 != "/" }).dropFirst().reversed())
        if directory.isEmpty { directory = path.hasPrefix("/") ? "/" : "." }
        let handle = try FileHandle.openForReading(directory)
        defer { try? handle.close() }
        try handle.sync()
    }

    /// Whether `a` and `b` name the same existing file (same device and inode, links followed).
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var deviceA: UInt64 = 0, inodeA: UInt64 = 0, deviceB: UInt64 = 0, inodeB: UInt64 = 0
        guard leitner_file_id(a, &deviceA, &inodeA) == 0, leitner_file_id(b, &deviceB, &inodeB) == 0 else { return false }
        return deviceA == deviceB && inodeA == inodeB
    }

    /// Reads a whole file into a byte array, refusing one longer than `limit` bytes (EFBIG,
    /// the limit in the message): every caller says how large a file of its kind can be, so
    /// `/dev/zero` or a wrong path cannot exhaust memory.
    public static func readAll(_ path: String, limit: Int) throws(SystemError) -> [UInt8] {
        let file = try FileHandle.openForReading(path)
        defer { try? file.close() }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let got = try readChunk(file, into: &chunk)
            if got == 0 { break }
            if bytes.count + got > limit {
                throw SystemError(call: "read", subject: path + " (more than the \(Format.bytes(limit)) such a file may hold)", code: EFBIG)
            }
            bytes.append(contentsOf: chunk[0..<got])
        }
        return bytes
    }
}

private func readChunk(_ file: FileHandle, into chunk: inout [UInt8]) throws(SystemError) -> Int {
    var result: Result<Int, SystemError> = .success(0)
    chunk.withUnsafeMutableBytes { raw in
        do throws(SystemError) { result = .success(try file.read(into: raw.baseAddress!, count: raw.count)) }
        catch { result = .failure(error) }
    }
    return try result.get()
}

/// Page-aligned memory from mmap, for arenas: one call per lifetime, returned whole.
public struct MappedMemory {
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Maps `byteCount` bytes of zeroed anonymous memory.
    public static func allocate(byteCount: Int, purpose: String) throws(SystemError) -> MappedMemory {
        let length = max(byteCount, 1)
        let pointer = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if pointer == nil || leitner_mmap_failed(pointer) != 0 {
            throw SystemError.fromErrno("mmap", "\(purpose) (\(length) bytes)")
        }
        return MappedMemory(base: pointer!, byteCount: length)
    }

    /// Returns the memory to the system.
    public func release() {
        _ = munmap(base, byteCount)
    }
}
