// libFuzzer target for the safetensors reader: header size, header JSON, dtypes, shapes,
// offsets, metadata; every F32 tensor of a sane size is read.
import NN
import Platform

@_cdecl("LLVMFuzzerTestOneInput")
public func safeTensorsFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = fuzzPath("st")
    writeInput(data, size, to: path)
    do throws(SafeTensorsError) {
        let reader = try SafeTensorsReader(path: path)
        for entry in reader.entries where entry.dtype == .f32 && entry.elementCount <= 1 << 16 {
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(entry.elementCount, 1))
            defer { buffer.deallocate() }
            try reader.read(entry.name, into: buffer, count: entry.elementCount)
        }
        _ = try Checkpoint.readMetadata(path: path)
    } catch {
        expectMessage(error.description, naming: path)
    }
    return 0
}
