import CSystem

/// A failed zlib call: an I/O failure underneath zlib (the SystemError of the call, with errno),
/// or data zlib could not decode, with zlib's account of what is wrong.
public enum GzipError: Error, CustomStringConvertible {
    case system(SystemError)
    case data(call: StaticString, subject: String, message: String)

    /// What is wrong, without the call and the subject.
    public var message: String {
        switch self {
        case .system(let error): return error.description
        case .data(_, _, let message): return message
        }
    }

    public var description: String {
        switch self {
        case .system(let error): return error.description
        case .data(let call, let subject, let message):
            return subject.isEmpty ? "\(call): \(message)" : "\(subject): \(call): \(message)"
        }
    }
}

/// One zlib stream reused for every block (inflateReset / deflateReset between blocks).
public final class GzipCodec {
    let stream: UnsafeMutablePointer<z_stream>
    let inflating: Bool

    /// A decoder of gzip members.
    public static func decoder() -> GzipCodec { GzipCodec(inflating: true, level: 0) }
    /// An encoder of gzip members at zlib `level` (1...9).
    public static func encoder(level: Int) -> GzipCodec { GzipCodec(inflating: false, level: level) }

    init(inflating: Bool, level: Int) {
        self.inflating = inflating
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let status = inflating ? leitner_inflate_init_gzip(stream) : leitner_deflate_init_gzip(stream, Int32(level))
        precondition(status == Z_OK, "zlib could not initialise a stream (status \(status)): out of memory")
    }

    deinit {
        if inflating { inflateEnd(stream) } else { deflateEnd(stream) }
        stream.deallocate()
    }

    /// Largest member `deflate` can produce for `count` input bytes.
    public func bound(_ count: Int) -> Int { Int(deflateBound(stream, UInt(count))) + 64 }

    /// Compresses `count` bytes into one gzip member; returns its length.
    public func deflate(_ input: UnsafeRawPointer, count: Int, into output: UnsafeMutableRawPointer, capacity: Int) -> Int {
        deflateReset(stream)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = UInt32(count)
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(capacity)
        let status = CSystem.deflate(stream, Z_FINISH)
        precondition(status == Z_STREAM_END, "deflate did not finish a block (status \(status))")
        return capacity - Int(stream.pointee.avail_out)
    }

    /// Inflates exactly one gzip member of `count` bytes into exactly `expected` bytes; a member
    /// that is corrupt, cut short, or of another size fails with what is wrong.
    public func inflate(_ input: UnsafeRawPointer, count: Int, into output: UnsafeMutableRawPointer, expected: Int) throws(GzipError) {
        inflateReset(stream)
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = UInt32(count)
        stream.pointee.next_out = output.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = UInt32(expected)
        let status = CSystem.inflate(stream, Z_FINISH)
        let produced = expected - Int(stream.pointee.avail_out)
        func fail(_ message: String) -> GzipError { .data(call: "inflate", subject: "", message: message) }
        switch status {
        case Z_STREAM_END:
            if stream.pointee.avail_in != 0 { throw fail("the gzip member ends \(stream.pointee.avail_in) bytes before the size in the index") }
            if produced != expected { throw fail("inflates to \(produced) bytes, the index says \(expected)") }
        case Z_BUF_ERROR, Z_OK:
            if stream.pointee.avail_out == 0 { throw fail("inflates to more than the \(expected) bytes the index says") }
            throw fail("the gzip member is cut short (truncated or the index size is wrong)")
        default:
            let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib status \(status)"
            throw fail("corrupt compressed data: \(message)")
        }
    }
}

/// A file read through zlib's gz* functions: gzip streams are inflated, anything else is read
/// as is. Failures name the call and the path.
public struct GzipFile {
    let handle: gzFile
    public let path: String

    /// Bytes requested from gzread at a time (and zlib's internal buffer size).
    public static let chunkBytes = 1 << 20

    public static func open(_ path: String) throws(GzipError) -> GzipFile {
        leitner_set_errno(0)
        guard let handle = gzopen(path, "rb") else {
            throw .system(SystemError.fromErrno("gzopen", path))
        }
        _ = gzbuffer(handle, UInt32(chunkBytes / 4))
        return GzipFile(handle: handle, path: path)
    }

    public func close() {
        _ = gzclose(handle)
    }

    /// Reads up to `count` bytes; returns how many arrived (fewer only at the end of the data).
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws(GzipError) -> Int {
        var done = 0
        while done < count {
            let want = UInt32(min(count - done, GzipFile.chunkBytes))
            let got = gzread(handle, buffer + done, want)
            if got < 0 { throw error("gzread") }
            if got == 0 { break }
            done += Int(got)
        }
        // A short read is either the real end of the data or a stream zlib could not finish.
        if done < count { try checkStatus("gzread") }
        return done
    }

    /// The error zlib recorded for this file, naming `call`.
    func error(_ call: StaticString) -> GzipError {
        var code: Int32 = 0
        let message = gzerror(handle, &code)
        if code == Z_ERRNO { return .system(SystemError.fromErrno(call, path)) }
        var text = message.map { String(cString: $0) } ?? "zlib error \(code)"
        // zlib prefixes its message with the path, which the error already names.
        if text.hasPrefix(path + ": ") { text = String(text.dropFirst(path.count + 2)) }
        return .data(call: call, subject: path, message: text)
    }

    /// Throws when zlib recorded an error (Z_BUF_ERROR is a truncated gzip stream).
    func checkStatus(_ call: StaticString) throws(GzipError) {
        var code: Int32 = 0
        _ = gzerror(handle, &code)
        if code != Z_OK { throw error(call) }
    }
}
