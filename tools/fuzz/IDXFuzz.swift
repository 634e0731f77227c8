// libFuzzer target for the IDX reader (plain and gzipped): images, labels, label count.
import Data
import Platform

@_cdecl("LLVMFuzzerTestOneInput")
public func idxFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = fuzzPath("idx")
    writeInput(data, size, to: path)
    do throws(DataError) {
        let images = try IDX.readImages(path)
        precondition(images.pixels.count == images.count * images.rows * images.cols)
    } catch { expectMessage(error.description, naming: path) }
    do throws(DataError) { _ = try IDX.readLabels(path) } catch { expectMessage(error.description, naming: path) }
    do throws(DataError) { _ = try IDX.readLabelCount(path) } catch { expectMessage(error.description, naming: path) }
    return 0
}
