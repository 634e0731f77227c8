// libFuzzer target for the image import (built and run by tools/fuzz-all). Each input is
// written to a file and read as `leitner pack images` reads one: format told by content, the
// header pass (TurboJPEG / libpng header, EXIF orientation), the full decode (JPEG through
// TurboJPEG with CMYK conversion and orientation, PNG through libpng's simplified API, PGM/PPM),
// the --size resize and the conversion to RGB planes. Any input must end in a DataError naming
// the file or in an image whose size the header pass predicted, never a crash, an
// out-of-bounds access (AddressSanitizer) or a hang. The pixel cap is 1 Mpx here (64 Mpx in
// the tool) so that a 4 KB file claiming a huge image does not slow every execution.
import Data
import Platform

let imageJPEG = JPEGDecoder()

@_cdecl("LLVMFuzzerTestOneInput")
public func imageFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = fuzzPath("image")
    writeInput(data, size, to: path)
    let cap = 1 << 20
    do throws(DataError) {
        let bytes = try ImageFile.read(path)
        let markers = JPEGMarkers.scan(bytes)
        precondition((1...8).contains(markers.orientation))
        let probe = try ImageFile.probe(bytes, path: path, jpeg: imageJPEG, maximumPixels: cap)
        let image = try ImageFile.decode(bytes, path: path, jpeg: imageJPEG, maximumPixels: cap)
        precondition(image.width == probe.width && image.height == probe.height, "decoded \(image.width)x\(image.height), probed \(probe.width)x\(probe.height)")
        precondition(probe.grey == (image.channels == 1), "grey \(probe.grey) but \(image.channels) channels")
        precondition(image.pixels.count == image.width * image.height * image.channels)
        let side = 1 + size % 24
        let resized = ImageResize.resizeAndCrop(image, side: side).withChannels(3)
        precondition(resized.width == side && resized.height == side && resized.planes().count == side * side * 3)
    } catch { expectMessage(error.description, naming: path) }
    return 0
}
