import CSystem
import Data
import Platform

/// Synthetic IDX files whose pixel bytes encode their own sample index, written plain or
/// gzipped into a fresh temporary directory. (No Foundation: its C modules clash with
/// CSystem's _GNU_SOURCE headers in one test module.)
final class IDXFixtures {
    let directory: String
    private var written: Set<String> = []
    private var counter = 0

    init() {
        var template = Array("/tmp/leitner-data-tests-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        directory = String(cString: template)
    }

    func remove() {
        for file in written { try? FileSystem.remove(file) }
        rmdir(directory)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// Pixel p of sample i: bytes 0 and 1 are the index (little-endian), the rest (i + p) mod 251.
    static func pixel(sample: Int, position: Int) -> UInt8 {
        switch position {
        case 0: return UInt8(sample & 0xFF)
        case 1: return UInt8((sample >> 8) & 0xFF)
        default: return UInt8((sample + position * 3) % 251)
        }
    }

    /// The sample index a sample's pixels encode.
    static func decodeIndex(_ pixels: ArraySlice<UInt8>) -> Int {
        Int(pixels[pixels.startIndex]) | Int(pixels[pixels.startIndex + 1]) << 8
    }

    static func label(sample: Int, classes: Int) -> UInt8 { UInt8((sample * 7 + 3) % classes) }

    static func bigEndian(_ values: [UInt32]) -> [UInt8] {
        values.flatMap { value in [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)] }
    }

    static func imagesBytes(count: Int, rows: Int, cols: Int, magic: UInt32 = 0x0000_0803) -> [UInt8] {
        var bytes = bigEndian([magic, UInt32(count), UInt32(rows), UInt32(cols)])
        for sample in 0..<count {
            for position in 0..<(rows * cols) { bytes.append(pixel(sample: sample, position: position)) }
        }
        return bytes
    }

    static func labelsBytes(count: Int, classes: Int, magic: UInt32 = 0x0000_0801) -> [UInt8] {
        bigEndian([magic, UInt32(count)]) + (0..<count).map { label(sample: $0, classes: classes) }
    }

    /// Writes `bytes` to `name`, gzipped through zlib when `gzip` is true. Returns the path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8], gzip: Bool) -> String {
        let target = path(name)
        written.insert(target)
        if gzip {
            guard let file = gzopen(target, "wb9") else { fatalError("gzopen \(target)") }
            let written = bytes.withUnsafeBytes { raw in gzwrite(file, raw.baseAddress, UInt32(raw.count)) }
            precondition(Int(written) == bytes.count && gzclose(file) == Z_OK, "gzwrite \(target)")
        } else {
            let file = try! FileHandle.create(target)
            bytes.withUnsafeBytes { raw in try! file.writeAll(raw.baseAddress!, count: raw.count) }
            try! file.close()
        }
        return target
    }

    /// The gzip encoding of `bytes` (for cutting a compressed stream short).
    func gzipped(_ bytes: [UInt8]) -> [UInt8] {
        counter += 1
        let temporary = write("gzipped-\(counter)", bytes, gzip: true)
        return try! FileSystem.readAll(temporary, limit: 1 << 30)
    }
}
