import CSystem

/// A JPEG or PNG the decoder refused: which library call, and the library's own account.
public struct ImageCodecError: Error, CustomStringConvertible {
    /// The C function that failed ("tjDecompress2", "png_image_finish_read", ...).
    public let call: StaticString
    /// The library's message ("Premature end of JPEG file", "Not a PNG file", ...).
    public let message: String

    public init(call: StaticString, message: String) {
        self.call = call
        self.message = message
    }

    public var description: String { "\(call): \(message)" }
}

/// How a decoded image's pixels are laid out: rows packed, channels interleaved.
public enum ImagePixelFormat: Equatable {
    /// One byte per pixel.
    case grey
    /// R, G, B.
    case rgb
    /// C, M, Y, K as stored in the file (Adobe files store them inverted; the caller converts).
    case cmyk

    public var channels: Int {
        switch self {
        case .grey: return 1
        case .rgb: return 3
        case .cmyk: return 4
        }
    }
}

/// The size and colour space of a JPEG or PNG, read from its header without decoding pixels.
public struct ImageHeader: Equatable {
    public let width: Int
    public let height: Int
    /// What the file holds: `.grey` (grey or grey+alpha), `.rgb` (colour, palette), `.cmyk`.
    public let format: ImagePixelFormat
}

/// libjpeg-turbo's TurboJPEG decompressor. One handle reused for every file, replaced after a
/// failure (TurboJPEG 2.1 can leave a handle that failed mid-header unusable: the next header
/// read then "succeeds" with a 0x0 image).
public final class JPEGDecoder {
    var handle: tjhandle

    public init() { handle = JPEGDecoder.newHandle() }

    deinit { tjDestroy(handle) }

    static func newHandle() -> tjhandle {
        guard let handle = tjInitDecompress() else { fatalError("tjInitDecompress failed: out of memory") }
        return handle
    }

    /// The error TurboJPEG reported, after which the handle is replaced.
    func failure(_ call: StaticString, _ message: [CChar]) -> ImageCodecError {
        tjDestroy(handle)
        handle = JPEGDecoder.newHandle()
        return ImageCodecError(call: call, message: Self.text(message))
    }

    /// The image's size and colour space (tjDecompressHeader3).
    public func header(_ bytes: [UInt8]) throws(ImageCodecError) -> ImageHeader {
        var width: Int32 = 0, height: Int32 = 0, space: Int32 = 0
        var message = [CChar](repeating: 0, count: 200)
        let status = bytes.withUnsafeBufferPointer { data in
            message.withUnsafeMutableBufferPointer { text in
                leitner_jpeg_header(handle, data.baseAddress, UInt(data.count), &width, &height, &space, text.baseAddress, text.count)
            }
        }
        if status != 0 { throw failure("tjDecompressHeader3", message) }
        if width < 1 || height < 1 { throw ImageCodecError(call: "tjDecompressHeader3", message: "no image size (\(width)x\(height))") }
        return ImageHeader(width: Int(width), height: Int(height), format: space == 0 ? .grey : space == 2 ? .cmyk : .rgb)
    }

    /// Decodes the whole image as `format` (tjDecompress2). Warnings (a truncated file, corrupt
    /// data) are errors. The caller checks the size first: this allocates width x height x channels.
    public func decode(_ bytes: [UInt8], header: ImageHeader, as format: ImagePixelFormat) throws(ImageCodecError) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: header.width * header.height * format.channels)
        var message = [CChar](repeating: 0, count: 200)
        let code: Int32 = format == .grey ? Int32(LEITNER_JPEG_GRAY) : format == .cmyk ? Int32(LEITNER_JPEG_CMYK) : Int32(LEITNER_JPEG_RGB)
        let status = bytes.withUnsafeBufferPointer { data in
            pixels.withUnsafeMutableBufferPointer { out in
                message.withUnsafeMutableBufferPointer { text in
                    leitner_jpeg_decode(handle, data.baseAddress, UInt(data.count), out.baseAddress, Int32(header.width), Int32(header.height),
                                        code, text.baseAddress, text.count)
                }
            }
        }
        if status != 0 { throw failure("tjDecompress2", message) }
        return pixels
    }

    static func text(_ message: [CChar]) -> String {
        let bytes = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// libpng's simplified API (png_image_*): palette, grey, grey+alpha, 16-bit and interlaced PNGs
/// arrive as 8-bit grey or RGB.
public enum PNGDecoder {
    /// The image's size and whether it has colour (png_image_begin_read_from_memory).
    public static func header(_ bytes: [UInt8]) throws(ImageCodecError) -> ImageHeader {
        var image = png_image()
        var width: UInt32 = 0, height: UInt32 = 0, color: Int32 = 0, alpha: Int32 = 0
        var message = [CChar](repeating: 0, count: 200)
        let status = bytes.withUnsafeBufferPointer { data in
            message.withUnsafeMutableBufferPointer { text in
                leitner_png_header(&image, data.baseAddress, data.count, &width, &height, &color, &alpha, text.baseAddress, text.count)
            }
        }
        if status != 0 { throw ImageCodecError(call: "png_image_begin_read_from_memory", message: JPEGDecoder.text(message)) }
        png_image_free(&image)
        return ImageHeader(width: Int(width), height: Int(height), format: color != 0 ? .rgb : .grey)
    }

    /// Decodes the whole image as 8-bit `.grey` or `.rgb`: 16-bit samples without gAMA/sRGB
    /// are read as sRGB (value / 257), alpha is composited on black. `maximumPixels` is checked
    /// against the header before the buffer is allocated.
    public static func decode(_ bytes: [UInt8], as format: ImagePixelFormat, maximumPixels: Int) throws(ImageCodecError) -> (header: ImageHeader, pixels: [UInt8]) {
        precondition(format != .cmyk, "PNG has no CMYK")
        // libpng keeps a pointer to the input from begin_read to finish_read: one scope for both.
        let result: Result<(header: ImageHeader, pixels: [UInt8]), ImageCodecError> = bytes.withUnsafeBufferPointer { data in
            var image = png_image()
            var width: UInt32 = 0, height: UInt32 = 0, color: Int32 = 0, alpha: Int32 = 0
            var message = [CChar](repeating: 0, count: 200)
            let status = message.withUnsafeMutableBufferPointer { text in
                leitner_png_header(&image, data.baseAddress, data.count, &width, &height, &color, &alpha, text.baseAddress, text.count)
            }
            if status != 0 { return .failure(ImageCodecError(call: "png_image_begin_read_from_memory", message: JPEGDecoder.text(message))) }
            let header = ImageHeader(width: Int(width), height: Int(height), format: color != 0 ? .rgb : .grey)
            if header.width * header.height > maximumPixels {
                png_image_free(&image)
                return .failure(ImageCodecError(call: "png_image_begin_read_from_memory",
                                                message: "\(header.width)x\(header.height) is more than \(maximumPixels) pixels"))
            }
            var pixels = [UInt8](repeating: 0, count: header.width * header.height * format.channels)
            let decoded = pixels.withUnsafeMutableBufferPointer { out in
                message.withUnsafeMutableBufferPointer { text in
                    leitner_png_decode(&image, out.baseAddress, format == .rgb ? 1 : 0, text.baseAddress, text.count)
                }
            }
            if decoded != 0 { return .failure(ImageCodecError(call: "png_image_finish_read", message: JPEGDecoder.text(message))) }
            return .success((header, pixels))
        }
        return try result.get()
    }
}
