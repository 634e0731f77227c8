import Platform

/// Writes a pack record by record: whole records are gathered into blocks of about
/// `blockBytes`, each compressed into its own gzip member; `finish` writes the index and then
/// the header (whose size is fixed from the start, so it is rewritten in place). The pack is
/// written to PATH.partial and renamed to PATH only once complete and synced: a failed or
/// interrupted pack leaves whatever was at PATH untouched and no partial file behind.
public final class PackWriter {
    public let path: String
    /// Where the pack is written until `finish` renames it to `path`.
    public let temporaryPath: String
    /// Set once the complete pack has been renamed to `path`.
    var published = false
    var closed = false
    public private(set) var header: PackHeader
    let file: FileHandle
    let codec: GzipCodec
    let recordsPerBlock: Int
    var block: [UInt8] = []
    var compressed: [UInt8]
    var blocks: [PackBlock] = []
    var offset: Int
    var samples = 0
    /// Per-channel sums of x and x^2 (x = element/255 for uint8) for the header's mean and std.
    var sums: [Double]
    var squares: [Double]
    var finished = false

    /// Sizes the records from the shape and types; `classNames` may be empty strings.
    public init(path: String, channels: Int, height: Int, width: Int, elementType: Pack.ElementType,
                classNames: [String], blockBytes: Int = Pack.defaultBlockBytes, level: Int = 6) throws(DataError) {
        let classCount = classNames.count
        if channels < 1 || channels > Pack.maximumChannels || height < 1 || height > Pack.maximumSide || width < 1 || width > Pack.maximumSide {
            throw DataError(path: path, kind: .absurdDimensions("sample shape \(channels)x\(height)x\(width)"))
        }
        if classCount < 1 || classCount > Pack.maximumClasses {
            throw DataError(path: path, kind: .invalidArgument("class count \(classCount) is not in 1...\(Pack.maximumClasses)"))
        }
        header = PackHeader(
            sampleCount: 0, elementType: elementType, labelType: classCount <= 256 ? .uint8 : .uint16,
            channels: channels, height: height, width: width, classCount: classCount, blockCount: 0,
            targetBlockBytes: blockBytes, indexOffset: 0, indexBytes: 0, indexCRC: 0,
            mean: [Float](repeating: 0, count: channels), std: [Float](repeating: 1, count: channels),
            classNames: classNames)
        if header.encodedCount > 65535 - 4 {
            throw DataError(path: path, kind: .invalidArgument("class names take \(header.encodedCount) header bytes, more than a gzip extra field holds"))
        }
        if header.recordBytes > Pack.maximumBlockBytes {
            throw DataError(path: path, kind: .absurdDimensions("a record of \(header.recordBytes) bytes exceeds the block limit"))
        }
        self.path = path
        temporaryPath = path + ".partial"
        recordsPerBlock = max(1, min(blockBytes, Pack.maximumBlockBytes) / header.recordBytes)
        codec = GzipCodec.encoder(level: level)
        compressed = [UInt8](repeating: 0, count: codec.bound(recordsPerBlock * header.recordBytes))
        block.reserveCapacity(recordsPerBlock * header.recordBytes)
        sums = [Double](repeating: 0, count: channels)
        squares = [Double](repeating: 0, count: channels)
        do { file = try FileHandle.create(temporaryPath) } catch { throw DataError(error) }
        // A placeholder header of the final size; `finish` overwrites it.
        let placeholder = Pack.extraMember(id: (0x4c, 0x48), data: header.encoded())
        offset = placeholder.count
        try write(placeholder)
    }

    /// Appends one sample: `label` and C*H*W elements of the pack's element type, raw bytes.
    public func append(label: Int, elements: UnsafeRawBufferPointer) throws(DataError) {
        precondition(!finished, "append after finish")
        if label < 0 || label >= header.classCount {
            throw DataError(path: path, kind: .labelOutOfRange(sample: samples, label: label, classes: header.classCount))
        }
        let elementBytes = header.elementsPerSample * header.elementType.bytes
        if elements.count != elementBytes {
            throw DataError(path: path, kind: .dimensionMismatch("sample \(samples) has \(elements.count) bytes, expected \(elementBytes)"))
        }
        block.append(UInt8(label & 0xff))
        if header.labelType == .uint16 { block.append(UInt8(label >> 8)) }
        block.append(contentsOf: elements)
        accumulate(elements)
        samples += 1
        if samples - (blocks.last.map { $0.firstSample + $0.sampleCount } ?? 0) == recordsPerBlock { try flush() }
    }

    /// Appends a uint8 sample from a byte array.
    public func append(label: Int, pixels: ArraySlice<UInt8>) throws(DataError) {
        try pixels.withUnsafeBufferPointer { (buffer) throws(DataError) in try append(label: label, elements: UnsafeRawBufferPointer(buffer)) }
    }

    func accumulate(_ elements: UnsafeRawBufferPointer) {
        let plane = header.height * header.width
        for channel in 0..<header.channels {
            var sum = 0.0, square = 0.0
            for position in channel * plane..<(channel + 1) * plane {
                let value: Double
                switch header.elementType {
                case .uint8: value = Double(elements[position]) / 255
                case .float16: value = Double(HalfFloat.float(UInt16(elements[2 * position]) | UInt16(elements[2 * position + 1]) << 8))
                case .float32: value = Double(Float(bitPattern: elements.loadUnaligned(fromByteOffset: 4 * position, as: UInt32.self).littleEndian))
                }
                sum += value
                square += value * value
            }
            sums[channel] += sum
            squares[channel] += square
        }
    }

    func flush() throws(DataError) {
        // SIGINT/SIGTERM: stop between blocks; deinit removes the partial file.
        if StopRequest.requested {
            throw DataError(path: path, kind: .invalidArgument("stopped by \(StopRequest.signalName) after \(samples) samples; nothing was written"))
        }
        guard !block.isEmpty else { return }
        let first = blocks.last.map { $0.firstSample + $0.sampleCount } ?? 0
        let length = block.withUnsafeBytes { input in
            compressed.withUnsafeMutableBytes { output in
                codec.deflate(input.baseAddress!, count: input.count, into: output.baseAddress!, capacity: output.count)
            }
        }
        blocks.append(PackBlock(offset: offset, compressedBytes: length, uncompressedBytes: block.count,
                                firstSample: first, sampleCount: samples - first, crc: Checksum.crc32(block)))
        try write(compressed[0..<length])
        offset += length
        block.removeAll(keepingCapacity: true)
    }

    /// Writes the last block, the index and the final header; returns the header.
    @discardableResult
    public func finish() throws(DataError) -> PackHeader {
        precondition(!finished, "finish called twice")
        finished = true
        try flush()
        if samples == 0 { throw DataError(path: path, kind: .invalidArgument("no samples to pack")) }
        var entries: [UInt8] = []
        for block in blocks { block.append(to: &entries) }
        header.sampleCount = samples
        header.blockCount = blocks.count
        header.indexOffset = offset
        header.indexCRC = Checksum.crc32(entries)
        var indexBytes = 0
        var start = 0
        while start < entries.count {
            let end = min(entries.count, start + Pack.entriesPerIndexMember * Pack.indexEntryBytes)
            let member = Pack.extraMember(id: (0x4c, 0x49), data: Array(entries[start..<end]))
            try write(member[...])
            indexBytes += member.count
            start = end
        }
        header.indexBytes = indexBytes
        let count = Double(samples * header.height * header.width)
        for channel in 0..<header.channels {
            let mean = sums[channel] / count
            let variance = max(0, squares[channel] / count - mean * mean)
            header.mean[channel] = Float(mean)
            header.std[channel] = variance > 0 ? Float(variance.squareRoot()) : 1
        }
        let member = Pack.extraMember(id: (0x4c, 0x48), data: header.encoded())
        do {
            try member.withUnsafeBufferPointer { (raw) throws(SystemError) in try file.writeAll(raw.baseAddress!, count: raw.count, at: 0) }
            try file.sync()
            closed = true
            try file.close()
            try FileSystem.rename(temporaryPath, to: path)
        } catch { throw DataError(error) }
        published = true
        return header
    }

    /// An unfinished or failed pack: its partial file goes (a finished one was renamed).
    deinit {
        guard !published else { return }
        if !closed { try? file.close() }
        try? FileSystem.remove(temporaryPath)
    }

    func write(_ bytes: [UInt8]) throws(DataError) { try write(bytes[...]) }

    func write(_ bytes: ArraySlice<UInt8>) throws(DataError) {
        do {
            try bytes.withUnsafeBufferPointer { (raw) throws(SystemError) in
                if raw.count > 0 { try file.writeAll(raw.baseAddress!, count: raw.count) }
            }
        } catch { throw DataError(error) }
    }
}
