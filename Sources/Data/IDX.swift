import Platform

/// The IDX format of the MNIST family, gzipped or plain (zlib's gz* functions read both).
///
///     images: magic 0x00000803, count, rows, cols (UInt32 big-endian), then count*rows*cols UInt8
///     labels: magic 0x00000801, count (UInt32 big-endian), then count UInt8
///
/// Every header value is checked before it is used, the payload is streamed in chunks and
/// grown as it arrives (a header that lies about its size cannot make us allocate it), and a
/// file must end exactly where its header says.
public enum IDX {
    public static let imagesMagic: UInt32 = 0x0000_0803
    public static let labelsMagic: UInt32 = 0x0000_0801
    /// Largest sample count: sample indices are Int32 everywhere downstream.
    public static let maximumCount = Int(Int32.max)
    /// Largest image side in pixels.
    public static let maximumSide = 1 << 15
    /// Largest image payload (4 GiB): anything larger is not a dataset a board can train on.
    public static let maximumPayloadBytes = 1 << 32

    /// An images file: the header's shape and the pixels [count, rows, cols].
    public struct Images {
        public let count: Int
        public let rows: Int
        public let cols: Int
        public let pixels: [UInt8]
    }

    /// Reads an images file (magic 0x00000803).
    public static func readImages(_ path: String) throws(DataError) -> Images {
        let file = try openFile(path)
        defer { file.close() }
        let header = try file.readHeader(words: 4)
        if header[0] != imagesMagic {
            throw DataError(path: path, kind: .badMagic(expected: imagesMagic, found: header[0]))
        }
        let count = Int(header[1]), rows = Int(header[2]), cols = Int(header[3])
        if count < 1 || count > maximumCount {
            throw DataError(path: path, kind: .absurdDimensions("\(count) images (expected 1...\(maximumCount))"))
        }
        if rows < 1 || rows > maximumSide || cols < 1 || cols > maximumSide {
            throw DataError(path: path, kind: .absurdDimensions("\(rows)x\(cols) pixels (each side 1...\(maximumSide))"))
        }
        let payload = count * rows * cols  // < 2^31 * 2^30: no overflow on 64-bit
        if payload > maximumPayloadBytes {
            throw DataError(path: path, kind: .absurdDimensions(
                "\(count) images of \(rows)x\(cols) need \(payload) bytes (limit \(maximumPayloadBytes))"))
        }
        let pixels = try file.readPayload(bytes: payload, headerBytes: 16)
        return Images(count: count, rows: rows, cols: cols, pixels: pixels)
    }

    /// Reads a labels file (magic 0x00000801).
    public static func readLabels(_ path: String) throws(DataError) -> [UInt8] {
        let file = try openFile(path)
        defer { file.close() }
        let header = try file.readHeader(words: 2)
        if header[0] != labelsMagic {
            throw DataError(path: path, kind: .badMagic(expected: labelsMagic, found: header[0]))
        }
        let count = Int(header[1])
        if count < 1 || count > maximumCount {
            throw DataError(path: path, kind: .absurdDimensions("\(count) labels (expected 1...\(maximumCount))"))
        }
        return try file.readPayload(bytes: count, headerBytes: 8)
    }

    /// The sample count in a labels file's header, without reading the labels.
    public static func readLabelCount(_ path: String) throws(DataError) -> Int {
        let file = try openFile(path)
        defer { file.close() }
        let header = try file.readHeader(words: 2)
        if header[0] != labelsMagic {
            throw DataError(path: path, kind: .badMagic(expected: labelsMagic, found: header[0]))
        }
        return Int(header[1])
    }

    /// Opens `path` through zlib (gzipped or plain).
    static func openFile(_ path: String) throws(DataError) -> GzipFile {
        do throws(GzipError) { return try GzipFile.open(path) } catch { throw DataError(error) }
    }
}

/// IDX's reads: a header of big-endian words and a payload of a known size, nothing after it.
extension GzipFile {
    /// Reads `words` big-endian UInt32 header words.
    func readHeader(words: Int) throws(DataError) -> [UInt32] {
        var bytes = [UInt8](repeating: 0, count: words * 4)
        let got = try readInto(&bytes, offset: 0, count: bytes.count)
        if got < bytes.count {
            throw DataError(path: path, kind: .truncated(expectedBytes: bytes.count, gotBytes: got))
        }
        var result = [UInt32](repeating: 0, count: words)
        for word in 0..<words {
            let base = word * 4
            result[word] = UInt32(bytes[base]) << 24 | UInt32(bytes[base + 1]) << 16
                | UInt32(bytes[base + 2]) << 8 | UInt32(bytes[base + 3])
        }
        return result
    }

    /// Reads exactly `bytes` payload bytes in chunks, growing the result as data arrives, then
    /// checks that nothing follows. `headerBytes` only makes the truncation message exact.
    func readPayload(bytes: Int, headerBytes: Int) throws(DataError) -> [UInt8] {
        var payload: [UInt8] = []
        payload.reserveCapacity(min(bytes, 64 << 20))
        var chunk = [UInt8](repeating: 0, count: min(bytes, GzipFile.chunkBytes))
        var done = 0
        while done < bytes {
            let want = min(bytes - done, chunk.count)
            let got = try readInto(&chunk, offset: 0, count: want)
            payload.append(contentsOf: chunk[0..<got])
            done += got
            if got < want {
                throw DataError(path: path, kind: .truncated(expectedBytes: headerBytes + bytes, gotBytes: headerBytes + done))
            }
        }
        var probe: [UInt8] = [0]
        if try readInto(&probe, offset: 0, count: 1) != 0 {
            throw DataError(path: path, kind: .trailingData)
        }
        return payload
    }

    private func readInto(_ bytes: inout [UInt8], offset: Int, count: Int) throws(DataError) -> Int {
        var result: Result<Int, DataError> = .success(0)
        bytes.withUnsafeMutableBytes { raw in
            do throws(GzipError) { result = .success(try read(into: raw.baseAddress! + offset, count: count)) }
            catch { result = .failure(DataError(error)) }
        }
        return try result.get()
    }
}
