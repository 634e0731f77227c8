import Platform

/// Where a pack's bytes come from: a file read with pread, counting read calls and bytes,
/// optionally throttled to mimic a slow card (a fixed latency per read plus bytes / rate).
public final class PackSource {
    /// A slow device: `bytesPerSecond` (0 = unlimited) and a fixed cost per read call.
    public struct Throttle: Equatable {
        public var bytesPerSecond: Double
        public var latencySeconds: Double
        public init(bytesPerSecond: Double, latencySeconds: Double) {
            self.bytesPerSecond = bytesPerSecond
            self.latencySeconds = latencySeconds
        }
        public static let none = Throttle(bytesPerSecond: 0, latencySeconds: 0)
        /// An SD card as issue 5 describes it: 20 MB/s and 2 ms per read.
        public static let sdCard = Throttle(bytesPerSecond: 20e6, latencySeconds: 0.002)
    }

    public let file: FileHandle
    public let byteCount: Int
    public var throttle: Throttle
    /// Read calls and bytes so far. Read them only while no prefetch is running (a stream
    /// between passes), or from the reading thread.
    public private(set) var readCalls = 0
    public private(set) var bytesRead = 0

    init(path: String, throttle: Throttle) throws(DataError) {
        do {
            file = try FileHandle.openForReading(path)
            byteCount = Int(try FileSystem.size(of: path))
        } catch { throw DataError(error) }
        self.throttle = throttle
    }

    deinit { try? file.close() }

    /// Reads exactly `count` bytes at `offset` in one call (a short file is an error).
    func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int, block: Int?) throws(DataError) {
        readCalls += 1
        let got: Int
        do { got = try file.read(into: buffer, count: count, at: Int64(offset)) } catch { throw DataError(error) }
        bytesRead += got
        if throttle != .none {
            var seconds = throttle.latencySeconds
            if throttle.bytesPerSecond > 0 { seconds += Double(got) / throttle.bytesPerSecond }
            Thread.sleep(seconds: seconds)
        }
        if got != count {
            throw DataError(path: file.path, kind: .pack(block: block, "truncated: \(count) bytes at offset \(offset) wanted, the file ends after \(offset + got)"))
        }
    }

    public func resetCounters() {
        readCalls = 0
        bytesRead = 0
    }
}

/// An open pack: the checked header and index, and the source its blocks are read from.
/// Every size is checked against the file before use; a malformed pack gives a DataError
/// naming the file and block.
public final class PackFile {
    public let path: String
    public let header: PackHeader
    public let blocks: [PackBlock]
    public let source: PackSource
    /// File bytes before the first block (the header member).
    public let headerMemberBytes: Int

    /// The largest compressed and uncompressed block.
    public let largestCompressedBlock: Int
    public let largestBlock: Int

    public var fileBytes: Int { source.byteCount }
    /// Bytes of all records, decompressed.
    public var uncompressedBytes: Int { header.sampleCount * header.recordBytes }

    /// Opens and checks a pack: one read for the header, one for the index.
    public static func open(_ path: String, throttle: PackSource.Throttle = .none) throws(DataError) -> PackFile {
        let source = try PackSource(path: path, throttle: throttle)
        let fileBytes = source.byteCount
        func fail(_ detail: String) -> DataError { DataError(path: path, kind: .pack(block: nil, detail)) }
        if fileBytes < 12 { throw fail("\(fileBytes) bytes: too short to be a pack") }
        // The header member is at most 12 + 65535 + 10 bytes.
        let headBytes = min(fileBytes, 12 + 65535 + 10)
        var head = [UInt8](repeating: 0, count: headBytes)
        try head.withUnsafeMutableBufferPointer { (raw) throws(DataError) in
            try source.read(into: raw.baseAddress!, count: headBytes, at: 0, block: nil)
        }
        let (header, headerMemberBytes) = try head.withUnsafeBufferPointer { (bytes) throws(DataError) -> (PackHeader, Int) in
                if bytes[0] != 0x1f || bytes[1] != 0x8b { throw fail("bad magic: not a gzip file, so not a pack") }
                guard let member = Pack.parseExtraMember(bytes, start: 0, id: (0x4c, 0x48)) else {
                    throw fail("bad magic: a gzip file but not a Leitner pack (no LH header member)")
                }
                let header = try PackHeader.decode(UnsafeBufferPointer(rebasing: bytes[member.data]), path: path, fileBytes: fileBytes)
                return (header, member.length)
            }
        if header.indexOffset < headerMemberBytes { throw fail("header: index offset \(header.indexOffset) lies inside the header") }
        var indexBytes = [UInt8](repeating: 0, count: header.indexBytes)
        try indexBytes.withUnsafeMutableBufferPointer { (raw) throws(DataError) in
            try source.read(into: raw.baseAddress!, count: header.indexBytes, at: header.indexOffset, block: nil)
        }
        let blocks = try indexBytes.withUnsafeBufferPointer { (bytes) throws(DataError) -> [PackBlock] in
            try PackFile.decodeIndex(bytes, header: header, headerMemberBytes: headerMemberBytes, path: path)
        }
        return PackFile(path: path, header: header, blocks: blocks, source: source, headerMemberBytes: headerMemberBytes)
    }

    init(path: String, header: PackHeader, blocks: [PackBlock], source: PackSource, headerMemberBytes: Int) {
        self.path = path
        self.header = header
        self.blocks = blocks
        self.source = source
        self.headerMemberBytes = headerMemberBytes
        largestCompressedBlock = blocks.reduce(0) { max($0, $1.compressedBytes) }
        largestBlock = blocks.reduce(0) { max($0, $1.uncompressedBytes) }
    }

    /// Parses the index members and checks every entry: blocks are contiguous from the end of
    /// the header to the index, samples are contiguous from 0, sizes match the record size.
    static func decodeIndex(_ bytes: UnsafeBufferPointer<UInt8>, header: PackHeader, headerMemberBytes: Int, path: String) throws(DataError) -> [PackBlock] {
        var entries: [UInt8] = []
        entries.reserveCapacity(header.blockCount * Pack.indexEntryBytes)
        var position = 0
        while position < bytes.count {
            guard let member = Pack.parseExtraMember(bytes, start: position, id: (0x4c, 0x49)) else {
                throw DataError(path: path, kind: .pack(block: nil, "index: no index member at file offset \(header.indexOffset + position)"))
            }
            if member.data.count % Pack.indexEntryBytes != 0 {
                throw DataError(path: path, kind: .pack(block: nil, "index: a member of \(member.data.count) bytes is not whole entries"))
            }
            entries.append(contentsOf: bytes[member.data])
            position += member.length
        }
        if entries.count != header.blockCount * Pack.indexEntryBytes {
            throw DataError(path: path, kind: .pack(block: nil, "index: \(entries.count / Pack.indexEntryBytes) entries, the header says \(header.blockCount) blocks"))
        }
        let computed = Checksum.crc32(entries)
        if computed != header.indexCRC {
            throw DataError(path: path, kind: .pack(block: nil, "index: CRC-32 mismatch (stored \(DataError.hex(header.indexCRC)), computed \(DataError.hex(computed))): the index is corrupt"))
        }
        var blocks: [PackBlock] = []
        blocks.reserveCapacity(header.blockCount)
        var nextOffset = headerMemberBytes, nextSample = 0
        try entries.withUnsafeBufferPointer { (raw) throws(DataError) in
            var reader = ByteReader(raw)
            for index in 0..<header.blockCount {
                func fail(_ detail: String) -> DataError { DataError(path: path, kind: .pack(block: index, "index entry: " + detail)) }
                let offset = reader.u64(), compressed = Int(reader.u32()), uncompressed = Int(reader.u32())
                let first = reader.u64(), count = Int(reader.u32()), crc = reader.u32()
                if offset != UInt64(nextOffset) { throw fail("offset \(offset), expected \(nextOffset) (blocks are contiguous)") }
                if first != UInt64(nextSample) { throw fail("first sample \(first), expected \(nextSample)") }
                if count < 1 || count > header.sampleCount - nextSample { throw fail("absurd sample count \(count)") }
                if uncompressed != count * header.recordBytes || uncompressed > Pack.maximumBlockBytes {
                    throw fail("\(uncompressed) uncompressed bytes for \(count) records of \(header.recordBytes) bytes (limit \(Pack.maximumBlockBytes))")
                }
                // A gzip member is at least 18 bytes; deflate expands by at most ~0.1% + a few bytes.
                // and deflate compresses at most 1032:1, so a small file cannot claim a huge set.
                if compressed < 18 || compressed > uncompressed + uncompressed / 8 + 1024 || compressed * 1032 + 64 < uncompressed {
                    throw fail("absurd compressed size \(compressed) for \(uncompressed) bytes")
                }
                if nextOffset + compressed > header.indexOffset {
                    throw fail("bytes \(nextOffset)..<\(nextOffset + compressed) run past the blocks' end at \(header.indexOffset)")
                }
                blocks.append(PackBlock(offset: nextOffset, compressedBytes: compressed, uncompressedBytes: uncompressed,
                                        firstSample: nextSample, sampleCount: count, crc: crc))
                nextOffset += compressed
                nextSample += count
            }
        }
        if nextSample != header.sampleCount {
            throw DataError(path: path, kind: .pack(block: nil, "index: blocks hold \(nextSample) samples, the header says \(header.sampleCount)"))
        }
        if nextOffset != header.indexOffset {
            throw DataError(path: path, kind: .pack(block: nil, "index: blocks end at \(nextOffset), the index starts at \(header.indexOffset)"))
        }
        return blocks
    }

    /// The block holding sample `sample` (binary search).
    public func block(holding sample: Int) -> Int {
        var low = 0, high = blocks.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if blocks[middle].firstSample <= sample { low = middle } else { high = middle - 1 }
        }
        return low
    }

    /// Reads block `block`'s gzip member into `compressed` (at least its compressedBytes): one read call.
    public func readBlock(_ block: Int, into compressed: UnsafeMutableRawPointer) throws(DataError) {
        let entry = blocks[block]
        try source.read(into: compressed, count: entry.compressedBytes, at: entry.offset, block: block)
    }

    /// Inflates block `block` from its member into `output` (its uncompressedBytes), checks
    /// the CRC-32 and that every label is below the class count.
    public func decodeBlock(_ block: Int, compressed: UnsafeRawPointer, into output: UnsafeMutableRawPointer, codec: GzipCodec) throws(DataError) {
        let entry = blocks[block]
        do throws(GzipError) {
            try codec.inflate(compressed, count: entry.compressedBytes, into: output, expected: entry.uncompressedBytes)
        } catch {
            throw DataError(path: path, kind: .pack(block: block, error.message))
        }
        let computed = Checksum.crc32(UnsafeRawPointer(output), count: entry.uncompressedBytes)
        if computed != entry.crc {
            throw DataError(path: path, kind: .pack(block: block, "CRC-32 mismatch (index \(DataError.hex(entry.crc)), data \(DataError.hex(computed)))"))
        }
        let bytes = output.assumingMemoryBound(to: UInt8.self)
        let recordBytes = header.recordBytes
        for record in 0..<entry.sampleCount {
            let base = bytes + record * recordBytes
            let label = header.labelType == .uint8 ? Int(base[0]) : Int(base[0]) | Int(base[1]) << 8
            if label >= header.classCount {
                throw DataError(path: path, kind: .pack(block: block, "sample \(entry.firstSample + record) has label \(label), outside 0..<\(header.classCount)"))
            }
        }
    }

    /// Reads and checks every block (CRC-32, sizes, labels) with one read per block.
    public func verify() throws(DataError) {
        let compressed = UnsafeMutableRawPointer.allocate(byteCount: max(largestCompressedBlock, 1), alignment: 16)
        let output = UnsafeMutableRawPointer.allocate(byteCount: max(largestBlock, 1), alignment: 16)
        defer { compressed.deallocate(); output.deallocate() }
        let codec = GzipCodec.decoder()
        for block in 0..<blocks.count {
            try readBlock(block, into: compressed)
            try decodeBlock(block, compressed: compressed, into: output, codec: codec)
        }
    }

    /// Every sample in memory (uint8 packs only), with the pack's normalisation unless one is given.
    public func loadDataset(normalization: Normalization? = nil) throws(DataError) -> Dataset {
        guard header.elementType == .uint8, header.labelType == .uint8 else {
            throw DataError(path: path, kind: .invalidArgument(
                "training reads uint8 samples with uint8 labels; this pack holds \(header.elementType.name) samples with \(header.labelType.name) labels"))
        }
        let sampleBytes = header.elementsPerSample
        var pixels = [UInt8](repeating: 0, count: header.sampleCount * sampleBytes)
        var labels = [UInt8](repeating: 0, count: header.sampleCount)
        let compressed = UnsafeMutableRawPointer.allocate(byteCount: max(largestCompressedBlock, 1), alignment: 16)
        let output = UnsafeMutableRawPointer.allocate(byteCount: max(largestBlock, 1), alignment: 16)
        defer { compressed.deallocate(); output.deallocate() }
        let codec = GzipCodec.decoder()
        for block in 0..<blocks.count {
            try readBlock(block, into: compressed)
            try decodeBlock(block, compressed: compressed, into: output, codec: codec)
            let entry = blocks[block]
            let records = UnsafeRawPointer(output).assumingMemoryBound(to: UInt8.self)
            pixels.withUnsafeMutableBufferPointer { pixels in
                for record in 0..<entry.sampleCount {
                    let source = records + record * header.recordBytes
                    labels[entry.firstSample + record] = source[0]
                    (pixels.baseAddress! + (entry.firstSample + record) * sampleBytes).update(from: source + 1, count: sampleBytes)
                }
            }
        }
        return try Dataset(
            name: path, pixels: pixels, labels: labels, channels: header.channels, height: header.height,
            width: header.width, classCount: header.classCount,
            classNames: header.classNames.allSatisfy({ $0.isEmpty }) ? nil : header.classNames,
            normalization: normalization ?? Normalization(mean: header.mean, std: header.std))
    }
}
