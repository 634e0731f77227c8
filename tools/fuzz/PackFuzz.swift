// libFuzzer target for the pack reader (built and run by tools/fuzz-all). Each input is
// written to a file and read as a pack: header and index checks, every block's inflate,
// CRC-32 and labels, loading into memory, and one streamed pass in a small budget with the
// prefetch thread. Any input must end in a DataError or success, never a crash, an
// out-of-bounds access (AddressSanitizer) or a hang.
import CSystem
import Data
import Platform

@_cdecl("LLVMFuzzerTestOneInput")
public func packFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = fuzzPath("pack")
    writeInput(data, size, to: path)
    do throws(DataError) {
        let pack = try PackFile.open(path)
        try pack.verify()
        if pack.header.elementType == .uint8 && pack.header.labelType == .uint8 {
            let dataset = try pack.loadDataset()
            precondition(dataset.count == pack.header.sampleCount)
        }
        let stream = try PackStream(pack: try PackFile.open(path), budgetBytes: 256 << 10, shuffleBufferSamples: 8, ringSlots: 2)
        var generator = SeededGenerator(seed: UInt64(size))
        var order = [Int32](repeating: 0, count: pack.header.sampleCount)
        order.withUnsafeMutableBufferPointer { stream.epochOrder(count: $0.count, generator: &generator, into: $0) }
        try order.withUnsafeBufferPointer { (buffer) throws(DataError) in try stream.beginPass(buffer) }
        for sample in order { _ = try stream.record(Int(sample)) }
    } catch {
        precondition(error.description.hasPrefix(path), "an error that does not name the file: \(error)")
    }
    return 0
}
