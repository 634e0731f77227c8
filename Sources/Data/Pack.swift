import Platform

/// The pack format (docs/pack-format.md): a dataset as a sequence of gzip members, so
/// `zcat pack` yields the raw records.
///
///     [header member] [block member 0] ... [block member B-1] [index member]...
///
/// The header and index members are empty gzip members whose header carries the data in a
/// gzip extra field (RFC 1952 FEXTRA, subfield "LH" / "LI"); zcat prints nothing for them.
/// Each block member is an independent gzip stream of whole records; a record is the label
/// (UInt8 or UInt16 LE) followed by the sample's elements [C, H, W] (UInt8, Float16 LE or
/// Float32 LE). All integers are little-endian.
public enum Pack {
    public static let magic: [UInt8] = Array("LTNRPACK".utf8)
    public static let version: UInt32 = 1
    /// Default uncompressed bytes per block.
    public static let defaultBlockBytes = 64 << 10
    /// Largest uncompressed block a reader accepts (a header cannot make it allocate more).
    public static let maximumBlockBytes = 16 << 20
    /// Largest image side, channel count and class count a reader accepts.
    public static let maximumSide = 1 << 15
    public static let maximumChannels = 4096
    public static let maximumClasses = 65536
    /// Bytes of one index entry.
    public static let indexEntryBytes = 32
    /// Index entries per index member (the extra field holds at most 65535 bytes).
    public static let entriesPerIndexMember = 2000
    /// Bytes of the fixed part of the header data (before means, stds and class names).
    static let fixedHeaderBytes = 80
    /// An empty gzip member with an extra field of `n` data bytes takes n + 26 file bytes:
    /// 10 (gzip header) + 2 (XLEN) + 4 (subfield id and length) + n + 2 (empty deflate) + 8 (CRC, ISIZE).
    static let extraMemberOverhead = 26

    /// How elements are stored.
    public enum ElementType: UInt8, Equatable {
        case uint8 = 1, float16 = 2, float32 = 3
        public var bytes: Int { self == .uint8 ? 1 : self == .float16 ? 2 : 4 }
        public var name: String { self == .uint8 ? "uint8" : self == .float16 ? "float16" : "float32" }
        public static func named(_ name: String) -> ElementType? {
            switch name {
            case "uint8": return .uint8
            case "float16": return .float16
            case "float32": return .float32
            default: return nil
            }
        }
    }

    /// How labels are stored.
    public enum LabelType: UInt8, Equatable {
        case uint8 = 1, uint16 = 2
        public var bytes: Int { self == .uint8 ? 1 : 2 }
        public var name: String { self == .uint8 ? "uint8" : "uint16" }
    }

    /// Writes an empty gzip member whose gzip header carries `data` in subfield `id`.
    static func extraMember(id: (UInt8, UInt8), data: [UInt8]) -> [UInt8] {
        precondition(data.count <= 65535 - 4, "gzip extra field overflow")
        var bytes: [UInt8] = [0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff]
        ByteWriter.append16(&bytes, UInt16(data.count + 4))
        bytes.append(id.0)
        bytes.append(id.1)
        ByteWriter.append16(&bytes, UInt16(data.count))
        bytes.append(contentsOf: data)
        bytes.append(contentsOf: [0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0])
        return bytes
    }

    /// The data of an empty extra-field member at `bytes[start...]` with subfield `id`, and
    /// the member's length; nil with a reason when the bytes are not such a member.
    static func parseExtraMember(_ bytes: UnsafeBufferPointer<UInt8>, start: Int, id: (UInt8, UInt8))
        -> (data: Range<Int>, length: Int)?
    {
        guard start >= 0, start + 12 <= bytes.count else { return nil }
        guard bytes[start] == 0x1f, bytes[start + 1] == 0x8b, bytes[start + 2] == 8, bytes[start + 3] == 0x04 else { return nil }
        let extraLength = Int(bytes[start + 10]) | Int(bytes[start + 11]) << 8
        let length = 12 + extraLength + 10
        guard extraLength >= 4, start + length <= bytes.count else { return nil }
        let sub = start + 12
        guard bytes[sub] == id.0, bytes[sub + 1] == id.1 else { return nil }
        let dataLength = Int(bytes[sub + 2]) | Int(bytes[sub + 3]) << 8
        guard dataLength == extraLength - 4 else { return nil }
        let tail = start + 12 + extraLength
        guard bytes[tail] == 0x03, bytes[tail + 1] == 0 else { return nil }
        for offset in 2..<10 where bytes[tail + offset] != 0 { return nil }
        return (sub + 4..<sub + 4 + dataLength, length)
    }
}

/// The pack header: what the samples are and where the index is.
public struct PackHeader: Equatable {
    public var sampleCount: Int
    public var elementType: Pack.ElementType
    public var labelType: Pack.LabelType
    public var channels: Int
    public var height: Int
    public var width: Int
    public var classCount: Int
    public var blockCount: Int
    public var targetBlockBytes: Int
    public var indexOffset: Int
    public var indexBytes: Int
    public var indexCRC: UInt32
    /// Per-channel mean and standard deviation of the elements (x/255 for uint8).
    public var mean: [Float]
    public var std: [Float]
    public var classNames: [String]

    public var elementsPerSample: Int { channels * height * width }
    /// Bytes of one record: the label, then the elements.
    public var recordBytes: Int { labelType.bytes + elementsPerSample * elementType.bytes }

    /// The header member's data bytes.
    public func encoded() -> [UInt8] {
        var bytes = Pack.magic
        ByteWriter.append32(&bytes, Pack.version)
        ByteWriter.append32(&bytes, UInt32(encodedCount))
        ByteWriter.append64(&bytes, UInt64(sampleCount))
        bytes.append(elementType.rawValue)
        bytes.append(labelType.rawValue)
        bytes.append(0)
        bytes.append(0)
        for value in [channels, height, width, classCount, recordBytes, blockCount, targetBlockBytes] {
            ByteWriter.append32(&bytes, UInt32(value))
        }
        ByteWriter.append64(&bytes, UInt64(indexOffset))
        ByteWriter.append64(&bytes, UInt64(indexBytes))
        ByteWriter.append32(&bytes, indexCRC)
        ByteWriter.append32(&bytes, 0)
        for value in mean + std { ByteWriter.append32(&bytes, value.bitPattern) }
        for name in classNames {
            let utf8 = Array(name.utf8)
            ByteWriter.append16(&bytes, UInt16(utf8.count))
            bytes.append(contentsOf: utf8)
        }
        ByteWriter.append32(&bytes, Checksum.crc32(bytes))
        return bytes
    }

    /// Bytes of `encoded()`.
    public var encodedCount: Int {
        var count = Pack.fixedHeaderBytes + 8 * channels + 4
        for name in classNames { count += 2 + name.utf8.count }
        return count
    }

    /// Parses and checks header data; `fileBytes` bounds the index position.
    static func decode(_ data: UnsafeBufferPointer<UInt8>, path: String, fileBytes: Int) throws(DataError) -> PackHeader {
        func fail(_ detail: String) -> DataError { DataError(path: path, kind: .pack(block: nil, "header: " + detail)) }
        var reader = ByteReader(data)
        guard data.count >= Pack.fixedHeaderBytes + 4 else { throw fail("\(data.count) bytes, too short") }
        for position in 0..<8 where data[position] != Pack.magic[position] {
            throw fail("bad magic (not a Leitner pack)")
        }
        reader.position = 8
        let version = reader.u32()
        if version != Pack.version { throw fail("version \(version), this reader reads version \(Pack.version)") }
        let declared = Int(reader.u32())
        if declared != data.count { throw fail("declares \(declared) bytes but holds \(data.count)") }
        let stored = UInt32(data[data.count - 4]) | UInt32(data[data.count - 3]) << 8
            | UInt32(data[data.count - 2]) << 16 | UInt32(data[data.count - 1]) << 24
        let computed = Checksum.crc32(UnsafeRawPointer(data.baseAddress!), count: data.count - 4)
        if stored != computed { throw fail("CRC-32 mismatch (stored \(DataError.hex(stored)), computed \(DataError.hex(computed))): the header is corrupt") }
        let sampleCount = reader.u64()
        guard let elementType = Pack.ElementType(rawValue: reader.u8()) else { throw fail("unknown element type") }
        guard let labelType = Pack.LabelType(rawValue: reader.u8()) else { throw fail("unknown label type") }
        reader.position += 2
        let channels = Int(reader.u32()), height = Int(reader.u32()), width = Int(reader.u32())
        let classCount = Int(reader.u32()), recordBytes = Int(reader.u32()), blockCount = Int(reader.u32())
        let targetBlockBytes = Int(reader.u32())
        let indexOffset = reader.u64(), indexBytes = reader.u64()
        let indexCRC = reader.u32()
        reader.position += 4
        if sampleCount < 1 || sampleCount > UInt64(Int32.max) { throw fail("absurd sample count \(sampleCount)") }
        if channels < 1 || channels > Pack.maximumChannels || height < 1 || height > Pack.maximumSide
            || width < 1 || width > Pack.maximumSide {
            throw fail("absurd sample shape \(channels)x\(height)x\(width)")
        }
        let elementBytes = channels * height * width * elementType.bytes  // < 2^12 * 2^30 * 4: no overflow
        if elementBytes + labelType.bytes > Pack.maximumBlockBytes {
            throw fail("a sample of \(elementBytes) bytes exceeds the \(Pack.maximumBlockBytes)-byte block limit")
        }
        if recordBytes != elementBytes + labelType.bytes {
            throw fail("record size \(recordBytes) does not match the shape (\(elementBytes + labelType.bytes))")
        }
        let classLimit = labelType == .uint8 ? 256 : Pack.maximumClasses
        if classCount < 1 || classCount > classLimit { throw fail("absurd class count \(classCount) for \(labelType.name) labels") }
        if blockCount < 1 || UInt64(blockCount) > sampleCount { throw fail("absurd block count \(blockCount) for \(sampleCount) samples") }
        let expectedIndexBytes = blockCount * Pack.indexEntryBytes
            + ((blockCount + Pack.entriesPerIndexMember - 1) / Pack.entriesPerIndexMember) * Pack.extraMemberOverhead
        if indexBytes != UInt64(expectedIndexBytes) { throw fail("index size \(indexBytes) for \(blockCount) blocks (expected \(expectedIndexBytes))") }
        if indexOffset > UInt64(fileBytes) || indexOffset + indexBytes != UInt64(fileBytes) {
            throw fail("index at \(indexOffset)+\(indexBytes) is not at the end of the \(fileBytes)-byte file (truncated or appended to?)")
        }
        var mean: [Float] = [], std: [Float] = []
        var expectedCount = Pack.fixedHeaderBytes + 8 * channels + 4
        if expectedCount + 2 * classCount > data.count { throw fail("\(data.count) bytes cannot hold \(channels) channels and \(classCount) class names") }
        for _ in 0..<channels { mean.append(Float(bitPattern: reader.u32())) }
        for _ in 0..<channels {
            let value = Float(bitPattern: reader.u32())
            if !(value > 0) || !value.isFinite { throw fail("standard deviation \(value) is not a positive number") }
            std.append(value)
        }
        for value in mean where !value.isFinite { throw fail("mean \(value) is not finite") }
        var classNames: [String] = []
        for _ in 0..<classCount {
            guard reader.position + 2 <= data.count - 4 else { throw fail("class names run past the header") }
            let length = Int(reader.u16())
            guard reader.position + length <= data.count - 4 else { throw fail("class names run past the header") }
            classNames.append(String(decoding: UnsafeBufferPointer(rebasing: data[reader.position..<reader.position + length]), as: UTF8.self))
            reader.position += length
            expectedCount += 2 + length
        }
        if expectedCount != data.count { throw fail("\(data.count - expectedCount) unexplained bytes after the class names") }
        return PackHeader(
            sampleCount: Int(sampleCount), elementType: elementType, labelType: labelType, channels: channels,
            height: height, width: width, classCount: classCount, blockCount: blockCount,
            targetBlockBytes: targetBlockBytes, indexOffset: Int(indexOffset), indexBytes: Int(indexBytes),
            indexCRC: indexCRC, mean: mean, std: std, classNames: classNames)
    }
}

/// One block of the index.
public struct PackBlock: Equatable {
    /// File offset of the block's gzip member.
    public var offset: Int
    public var compressedBytes: Int
    public var uncompressedBytes: Int
    public var firstSample: Int
    public var sampleCount: Int
    /// CRC-32 of the uncompressed bytes (the same value as the member's gzip trailer).
    public var crc: UInt32

    func append(to bytes: inout [UInt8]) {
        ByteWriter.append64(&bytes, UInt64(offset))
        ByteWriter.append32(&bytes, UInt32(compressedBytes))
        ByteWriter.append32(&bytes, UInt32(uncompressedBytes))
        ByteWriter.append64(&bytes, UInt64(firstSample))
        ByteWriter.append32(&bytes, UInt32(sampleCount))
        ByteWriter.append32(&bytes, crc)
    }
}

/// Little-endian appends.
enum ByteWriter {
    static func append16(_ bytes: inout [UInt8], _ value: UInt16) {
        bytes.append(UInt8(value & 0xff)); bytes.append(UInt8(value >> 8))
    }
    static func append32(_ bytes: inout [UInt8], _ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8((value >> UInt32(shift)) & 0xff)) }
    }
    static func append64(_ bytes: inout [UInt8], _ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8((value >> UInt64(shift)) & 0xff)) }
    }
}

/// Little-endian reads from a buffer; callers check the length first (reads past the end
/// return zeros rather than trapping, and the callers' checks then fail).
struct ByteReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0
    init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    mutating func u8() -> UInt8 {
        defer { position += 1 }
        return position < bytes.count ? bytes[position] : 0
    }
    mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }
}

/// Float16 bits <-> Float without relying on the Float16 type (absent on some targets).
public enum HalfFloat {
    public static func float(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = Int((bits >> 10) & 0x1f)
        let mantissa = UInt32(bits & 0x3ff)
        if exponent == 0 {
            let magnitude = Float(mantissa) * (1.0 / 16_777_216.0)  // mantissa * 2^-24
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13) }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
    }

    /// Round-to-nearest-even conversion; overflow gives infinity.
    public static func bits(_ value: Float) -> UInt16 {
        let raw = value.bitPattern
        let sign = UInt16((raw >> 16) & 0x8000)
        if value.isNaN { return sign | 0x7e00 }
        let magnitude = abs(value)
        if magnitude >= 65520 { return sign | 0x7c00 }
        if magnitude < 6.103_515_6e-5 {  // subnormal half: round(magnitude * 2^24)
            return sign | UInt16((magnitude * 16_777_216).rounded(.toNearestOrEven))
        }
        let exponent = Int((raw >> 23) & 0xff) - 127 + 15
        let mantissa = (raw & 0x7f_ffff) >> 13
        let rest = raw & 0x1fff
        var half = UInt32(exponent) << 10 | mantissa
        if rest > 0x1000 || (rest == 0x1000 && mantissa & 1 == 1) { half += 1 }  // may carry into the exponent: correct
        return sign | UInt16(half)
    }
}
