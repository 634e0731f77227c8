import Platform

/// A decoded picture: 8-bit grey or RGB, rows packed, channels interleaved ([H, W, C]).
public struct DecodedImage: Equatable {
    public var width: Int
    public var height: Int
    /// 1 (grey) or 3 (RGB).
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixels do not match \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The same picture in `count` channels: grey replicated into R, G and B, or RGB made grey
    /// by ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B rounded (libjpeg's and Pillow's
    /// "L" conversion, in Pillow's 16-bit fixed point).
    public func withChannels(_ count: Int) -> DecodedImage {
        if count == channels { return self }
        if channels == 3 && count == 1 {
            var grey = [UInt8](repeating: 0, count: width * height)
            for pixel in 0..<width * height {
                let red = Int(pixels[pixel * 3]), green = Int(pixels[pixel * 3 + 1]), blue = Int(pixels[pixel * 3 + 2])
                grey[pixel] = UInt8((red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16)
            }
            return DecodedImage(width: width, height: height, channels: 1, pixels: grey)
        }
        precondition(channels == 1 && count == 3, "only grey and RGB convert")
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for pixel in 0..<width * height {
            let value = pixels[pixel]
            out[pixel * 3] = value
            out[pixel * 3 + 1] = value
            out[pixel * 3 + 2] = value
        }
        return DecodedImage(width: width, height: height, channels: 3, pixels: out)
    }

    /// The pixels as planes ([C, H, W]), the order of pack records.
    public func planes() -> [UInt8] {
        if channels == 1 { return pixels }
        let plane = width * height
        var out = [UInt8](repeating: 0, count: plane * channels)
        for pixel in 0..<plane {
            for channel in 0..<channels { out[channel * plane + pixel] = pixels[pixel * channels + channel] }
        }
        return out
    }
}

/// The image files `leitner pack images` reads, told apart by their first bytes (not their
/// names): JPEG (libjpeg-turbo's TurboJPEG), PNG (libpng's simplified API), binary PGM/PPM.
public enum ImageFile {
    public enum Format: Equatable { case jpeg, png, netpbm }

    /// The most pixels (width x height) a decoded image may have, checked from the header before
    /// any pixel buffer is allocated: 64 Mpx (192 MiB as RGB).
    public static let maximumPixels = 64 << 20

    /// What a file's header says, before its pixels are decoded: the size after the EXIF
    /// orientation is applied, and whether it is grey.
    public struct Probe: Equatable {
        public let format: Format
        public let width: Int
        public let height: Int
        public let grey: Bool
    }

    public static func format(of bytes: [UInt8]) -> Format? {
        if bytes.count >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8 && bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.count >= 2 && bytes[0] == UInt8(ascii: "P") && (bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "6")) { return .netpbm }
        return nil
    }

    /// Reads a file whole, refusing one over PackImport.maximumImageFileBytes.
    public static func read(_ path: String) throws(DataError) -> [UInt8] {
        do { return try FileSystem.readAll(path, limit: PackImport.maximumImageFileBytes) } catch { throw DataError(error) }
    }

    /// A JPEG's or PNG's header, its size checked against `maximumPixels` before anything is
    /// decoded (shared by `probe` and `decode`).
    static func checkedHeader(_ format: Format, _ bytes: [UInt8], path: String, jpeg: JPEGDecoder,
                              maximumPixels: Int) throws(DataError) -> ImageHeader {
        let header: ImageHeader
        do { header = format == .jpeg ? try jpeg.header(bytes) : try PNGDecoder.header(bytes) } catch {
            throw DataError(path: path, kind: .image((format == .jpeg ? "JPEG: " : "PNG: ") + error.description))
        }
        try checkSize(header.width, header.height, path: path, maximumPixels: maximumPixels)
        return header
    }

    /// The header of the image in `bytes` (read from `path`, named in errors).
    public static func probe(_ bytes: [UInt8], path: String, jpeg: JPEGDecoder, maximumPixels: Int = maximumPixels) throws(DataError) -> Probe {
        guard let format = format(of: bytes) else { throw unsupported(bytes, path: path) }
        switch format {
        case .jpeg:
            let header = try checkedHeader(.jpeg, bytes, path: path, jpeg: jpeg, maximumPixels: maximumPixels)
            let swaps = JPEGMarkers.scan(bytes).orientation >= 5
            return Probe(format: .jpeg, width: swaps ? header.height : header.width, height: swaps ? header.width : header.height,
                         grey: header.format == .grey)
        case .png:
            let header = try checkedHeader(.png, bytes, path: path, jpeg: jpeg, maximumPixels: maximumPixels)
            return Probe(format: .png, width: header.width, height: header.height, grey: header.format == .grey)
        case .netpbm:
            let image = try NetPBM.parse(bytes, path: path, maximumPixels: maximumPixels)
            return Probe(format: .netpbm, width: image.width, height: image.height, grey: image.channels == 1)
        }
    }

    /// Decodes the image in `bytes`: grey or RGB, EXIF orientation applied (JPEG), CMYK
    /// converted to RGB (Adobe's inverted CMYK recognised by its APP14 marker).
    /// `maximumPixels` is lowered only by the fuzzer (to keep its executions fast).
    public static func decode(_ bytes: [UInt8], path: String, jpeg: JPEGDecoder, maximumPixels: Int = maximumPixels) throws(DataError) -> DecodedImage {
        guard let format = format(of: bytes) else { throw unsupported(bytes, path: path) }
        switch format {
        case .jpeg:
            let header = try checkedHeader(.jpeg, bytes, path: path, jpeg: jpeg, maximumPixels: maximumPixels)
            let markers = JPEGMarkers.scan(bytes)
            let pixels: [UInt8]
            do { pixels = try jpeg.decode(bytes, header: header, as: header.format) } catch {
                throw DataError(path: path, kind: .image("JPEG: " + error.description))
            }
            var image: DecodedImage
            if header.format == .cmyk {
                image = DecodedImage(width: header.width, height: header.height, channels: 3,
                              pixels: cmykToRGB(pixels, inverted: markers.adobe))
            } else {
                image = DecodedImage(width: header.width, height: header.height, channels: header.format.channels, pixels: pixels)
            }
            if markers.orientation > 1 { image = oriented(image, exif: markers.orientation) }
            return image
        case .png:
            let header = try checkedHeader(.png, bytes, path: path, jpeg: jpeg, maximumPixels: maximumPixels)
            let decoded: (header: ImageHeader, pixels: [UInt8])
            do { decoded = try PNGDecoder.decode(bytes, as: header.format, maximumPixels: maximumPixels) } catch {
                throw DataError(path: path, kind: .image("PNG: " + error.description))
            }
            return DecodedImage(width: decoded.header.width, height: decoded.header.height, channels: decoded.header.format.channels,
                         pixels: decoded.pixels)
        case .netpbm:
            return try NetPBM.parse(bytes, path: path, maximumPixels: maximumPixels)
        }
    }

    static func checkSize(_ width: Int, _ height: Int, path: String, maximumPixels: Int) throws(DataError) {
        if width < 1 || height < 1 || width > Pack.maximumSide || height > Pack.maximumSide || width * height > maximumPixels {
            throw DataError(path: path, kind: .absurdDimensions(
                "\(width)x\(height) pixels (each side 1...\(Pack.maximumSide), at most \(maximumPixels >> 20) Mpx)"))
        }
    }

    static func unsupported(_ bytes: [UInt8], path: String) -> DataError {
        if bytes.isEmpty { return DataError(path: path, kind: .image("empty file")) }
        return DataError(path: path, kind: .image("unsupported format: not a JPEG, PNG or binary PGM/PPM file"))
    }

    /// Ink to light: C, M, Y, K in 0...255 (255 = full ink) give R = (255 - C)(255 - K) / 255;
    /// Adobe's files store 255 - ink, so there R = C K / 255.
    static func cmykToRGB(_ cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        let count = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: count * 3)
        for pixel in 0..<count {
            var k = Int(cmyk[pixel * 4 + 3])
            if !inverted { k = 255 - k }
            for channel in 0..<3 {
                var ink = Int(cmyk[pixel * 4 + channel])
                if !inverted { ink = 255 - ink }
                rgb[pixel * 3 + channel] = UInt8((ink * k + 127) / 255)
            }
        }
        return rgb
    }

    /// The picture as it should be displayed for EXIF orientation 1...8 (TIFF 6.0 tag 0x0112:
    /// where row 0 and column 0 of the stored picture belong). Output pixel (x, y) takes stored
    /// pixel (sx, sy); W and H are the stored width and height.
    public static func oriented(_ image: DecodedImage, exif orientation: Int) -> DecodedImage {
        guard orientation >= 2 && orientation <= 8 else { return image }
        let W = image.width, H = image.height, C = image.channels
        let swaps = orientation >= 5
        let outWidth = swaps ? H : W, outHeight = swaps ? W : H
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                let sx: Int, sy: Int
                switch orientation {
                case 2: sx = W - 1 - x; sy = y                  // mirrored left-right
                case 3: sx = W - 1 - x; sy = H - 1 - y          // rotated 180
                case 4: sx = x; sy = H - 1 - y                  // mirrored top-bottom
                case 5: sx = y; sy = x                          // transposed
                case 6: sx = y; sy = H - 1 - x                  // rotate 90 clockwise to display
                case 7: sx = W - 1 - y; sy = H - 1 - x          // transversed
                default: sx = W - 1 - y; sy = x                 // 8: rotate 90 counter-clockwise
                }
                let from = (sy * W + sx) * C, to = (y * outWidth + x) * C
                for channel in 0..<C { out[to + channel] = image.pixels[from + channel] }
            }
        }
        return DecodedImage(width: outWidth, height: outHeight, channels: C, pixels: out)
    }
}

/// The two facts the decoder needs from a JPEG's marker segments that TurboJPEG does not give:
/// the EXIF orientation (APP1 "Exif", TIFF tag 0x0112) and whether an Adobe APP14 segment is
/// present (Adobe CMYK is stored inverted). libexif is not worth a dependency for one tag, so
/// this is a small parser: every offset is checked against the segment before it is read, the
/// walk stops at the first scan (SOS) and after 64 segments or 64 IFD entries, and anything
/// unexpected means "orientation 1" rather than an error.
public enum JPEGMarkers {
    public static func scan(_ bytes: [UInt8]) -> (orientation: Int, adobe: Bool) {
        var orientation = 1, adobe = false, exifSeen = false
        guard bytes.count >= 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return (1, false) }
        var position = 2
        var segments = 0
        while position + 4 <= bytes.count && segments < 64 {
            guard bytes[position] == 0xFF else { break }
            let marker = bytes[position + 1]
            if marker == 0xFF { position += 1; continue }              // fill byte
            if marker == 0xDA || marker == 0xD9 { break }             // start of scan, end of image
            if marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7) { position += 2; continue }  // no length
            let length = Int(bytes[position + 2]) << 8 | Int(bytes[position + 3])
            guard length >= 2, position + 2 + length <= bytes.count else { break }
            let start = position + 4, end = position + 2 + length     // the payload
            if marker == 0xE1 && !exifSeen && end - start >= 6 && bytes[start..<start + 6].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) {
                exifSeen = true
                orientation = exifOrientation(bytes, tiff: start + 6, end: end) ?? 1
            }
            if marker == 0xEE && end - start >= 5 && bytes[start..<start + 5].elementsEqual([0x41, 0x64, 0x6F, 0x62, 0x65]) {
                adobe = true
            }
            position = end
            segments += 1
        }
        return (orientation, adobe)
    }

    /// Tag 0x0112 of IFD0 in the TIFF structure at bytes[tiff..<end], or nil.
    static func exifOrientation(_ bytes: [UInt8], tiff: Int, end: Int) -> Int? {
        guard end - tiff >= 8 else { return nil }
        let little: Bool
        if bytes[tiff] == 0x49 && bytes[tiff + 1] == 0x49 { little = true }         // "II"
        else if bytes[tiff] == 0x4D && bytes[tiff + 1] == 0x4D { little = false }   // "MM"
        else { return nil }
        func u16(_ at: Int) -> Int? {
            guard at >= tiff, at + 2 <= end else { return nil }
            return little ? Int(bytes[at]) | Int(bytes[at + 1]) << 8 : Int(bytes[at]) << 8 | Int(bytes[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(tiff + 2) == 42, let ifdOffset = u32(tiff + 4), ifdOffset >= 8, ifdOffset < end - tiff else { return nil }
        let ifd = tiff + ifdOffset
        guard let count = u16(ifd) else { return nil }
        for entry in 0..<min(count, 64) {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at), let type = u16(at + 2), let values = u32(at + 4) else { return nil }
            if tag == 0x0112 {
                guard type == 3, values == 1, let value = u16(at + 8), value >= 1, value <= 8 else { return nil }
                return value
            }
        }
        return nil
    }
}

/// Binary PGM (P5) and PPM (P6) images with maxval at most 255.
public enum NetPBM {
    /// Reads and parses a file (at most PackImport.maximumImageFileBytes).
    public static func read(_ path: String) throws(DataError) -> DecodedImage {
        try parse(try ImageFile.read(path), path: path)
    }

    public static func parse(_ bytes: [UInt8], path: String, maximumPixels: Int = ImageFile.maximumPixels) throws(DataError) -> DecodedImage {
        func fail(_ detail: String) -> DataError { DataError(path: path, kind: .invalidArgument("not a binary PGM/PPM image: " + detail)) }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "6") else {
            throw fail("the file does not start with P5 or P6")
        }
        let channels = bytes[1] == UInt8(ascii: "5") ? 1 : 3
        var position = 2
        var numbers: [Int] = []
        while numbers.count < 3 {
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "#") {
                    while position < bytes.count && bytes[position] != UInt8(ascii: "\n") { position += 1 }
                } else if byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d {
                    position += 1
                } else { break }
            }
            var value = 0, digits = 0
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39, digits < 9 {
                value = value * 10 + Int(bytes[position] - 0x30)
                position += 1
                digits += 1
            }
            if digits == 0 { throw fail("a header number is missing") }
            numbers.append(value)
        }
        position += 1  // the single whitespace byte before the raster
        let width = numbers[0], height = numbers[1], maxval = numbers[2]
        if width < 1 || height < 1 || width > Pack.maximumSide || height > Pack.maximumSide || width * height > maximumPixels {
            throw fail("absurd size \(width)x\(height)")
        }
        if maxval < 1 || maxval > 255 { throw fail("maxval \(maxval) (only 8-bit images)") }
        let count = width * height * channels
        if bytes.count - position < count {
            throw DataError(path: path, kind: .truncated(expectedBytes: position + count, gotBytes: bytes.count))
        }
        var pixels = Array(bytes[position..<position + count])
        if maxval != 255 {
            for index in 0..<count { pixels[index] = UInt8(min(255, Int(pixels[index]) * 255 / maxval)) }
        }
        return DecodedImage(width: width, height: height, channels: channels, pixels: pixels)
    }
}
