// libFuzzer target for the pack reader (built and run by tools/fuzz-pack). Each input is
// written to a file and read as a pack: header and index checks, every block's inflate,
// CRC-32 and labels, loading into memory, and one streamed pass in a small budget with the
// prefetch thread. Any input must end in a DataError or success, never a crash, an
// out-of-bounds access (AddressSanitizer) or a hang.
import CSystem
import Data
import Kernels
import Platform

let fuzzPath = "/tmp/leitner-pack-fuzz-\(getpid()).pack"

@_cdecl("LLVMFuzzerTestOneInput")
public func packFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let file = try? FileHandle.create(fuzzPath) else { return 0 }
    if size > 0 { try? file.writeAll(data, count: size) }
    try? file.close()
    do throws(DataError) {
        let pack = try PackFile.open(fuzzPath)
        try pack.verify()
        if pack.header.elementType == .uint8 && pack.header.labelType == .uint8 {
            let dataset = try pack.loadDataset()
            precondition(dataset.count == pack.header.sampleCount)
        }
        let stream = try PackStream(pack: try PackFile.open(fuzzPath), budgetBytes: 256 << 10, shuffleBufferSamples: 8, ringSlots: 2)
        var generator = SeededGenerator(seed: UInt64(size))
        var order = [Int32](repeating: 0, count: pack.header.sampleCount)
        order.withUnsafeMutableBufferPointer { stream.epochOrder(count: $0.count, generator: &generator, into: $0) }
        try order.withUnsafeBufferPointer { (buffer) throws(DataError) in try stream.beginPass(buffer) }
        for sample in order { _ = try stream.record(Int(sample)) }
    } catch {
        precondition(error.description.hasPrefix(fuzzPath), "an error that does not name the file: \(error)")
    }
    return 0
}
