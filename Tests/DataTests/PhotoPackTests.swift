import CSystem
import Data
import Platform
import Testing

/// A temporary tree of image files; JPEG and PNG written with TurboJPEG and libpng (the
/// libraries the decoder uses, through CSystem), so the tests make their own inputs.
final class PhotoFixtures {
    let directory: String

    init() {
        var template = Array("/tmp/leitner-photo-tests-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        directory = String(cString: template)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    /// Writes `bytes` at `name` (folders created). Returns the path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let target = path(name)
        if let slash = target.lastIndex(of: "/") { try! FileSystem.makeDirectories(String(target[..<slash])) }
        let file = try! FileHandle.create(target)
        bytes.withUnsafeBytes { raw in if raw.count > 0 { try! file.writeAll(raw.baseAddress!, count: raw.count) } }
        try! file.close()
        return target
    }

    func remove() { PhotoFixtures.removeTree(directory) }

    static func removeTree(_ path: String) {
        if FileSystem.isDirectory(path) {
            for name in (try? FileSystem.list(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            try? FileSystem.remove(path)
        }
    }

    /// The checked-in fixture `name` under Tests/Fixtures/images (tools/make-image-fixtures).
    static func fixture(_ name: String) -> String {
        var base = "\(#filePath)"
        for _ in 0..<2 { base = String(base[..<base.lastIndex(of: "/")!]) }
        return base + "/Fixtures/images/" + name
    }

    /// A JPEG of interleaved `pixels` (1 or 3 channels) from TurboJPEG, 4:4:4, quality 95.
    static func jpeg(width: Int, height: Int, channels: Int, pixels: [UInt8], quality: Int32 = 95) -> [UInt8] {
        let handle = tjInitCompress()!
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let format = channels == 1 ? Int32(TJPF_GRAY.rawValue) : Int32(TJPF_RGB.rawValue)
        let sampling = channels == 1 ? Int32(TJSAMP_GRAY.rawValue) : Int32(TJSAMP_444.rawValue)
        let status = pixels.withUnsafeBufferPointer { source in
            tjCompress2(handle, source.baseAddress, Int32(width), 0, Int32(height), format, &buffer, &size, sampling, quality, TJFLAG_ACCURATEDCT)
        }
        precondition(status == 0, "tjCompress2: " + String(cString: tjGetErrorStr2(handle)))
        defer { tjFree(buffer) }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }

    /// A PNG of interleaved `pixels` (1 or 3 channels) from libpng's simplified writer.
    static func png(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        var size = 0
        pixels.withUnsafeBufferPointer { source in
            precondition(png_image_write_to_memory(&image, nil, &size, 0, source.baseAddress, 0, nil) != 0, "png size")
        }
        var out = [UInt8](repeating: 0, count: size)
        pixels.withUnsafeBufferPointer { source in
            out.withUnsafeMutableBufferPointer { target in
                precondition(png_image_write_to_memory(&image, target.baseAddress, &size, 0, source.baseAddress, 0, nil) != 0, "png write")
            }
        }
        return Array(out[0..<size])
    }

    /// A solid image of `colour` (interleaved).
    static func solid(width: Int, height: Int, _ colour: [UInt8]) -> [UInt8] {
        (0..<width * height).flatMap { _ in colour }
    }
}

/// `leitner pack images`: photos in class folders or a CSV, decoded by libjpeg-turbo and libpng,
/// oriented, resized and packed; bad files stop the pack or are skipped and listed.
@Suite struct PhotoPackTests {
    /// Pixel (x, y) of an interleaved image.
    func pixel(_ image: DecodedImage, _ x: Int, _ y: Int) -> [Int] {
        (0..<image.channels).map { Int(image.pixels[(y * image.width + x) * image.channels + $0]) }
    }

    func close(_ got: [Int], _ want: [Int], within tolerance: Int) -> Bool {
        got.count == want.count && zip(got, want).allSatisfy { abs($0 - $1) <= tolerance }
    }

    func decodeFixture(_ name: String) throws -> DecodedImage {
        let path = PhotoFixtures.fixture(name)
        return try ImageFile.decode(try ImageFile.read(path), path: path, jpeg: JPEGDecoder())
    }

    /// The quadrant pattern of tools/make-image-fixtures at the centre of each quadrant.
    func expectQuadrants(_ image: DecodedImage, tolerance: Int, _ what: String) {
        #expect(image.width == 16 && image.height == 16 && image.channels == 3, "\(what)")
        let want = [(4, 4, [255, 0, 0]), (12, 4, [0, 255, 0]), (4, 12, [0, 0, 255]), (12, 12, [255, 255, 255])]
        for (x, y, colour) in want {
            #expect(close(pixel(image, x, y), colour, within: tolerance), "\(what) at \(x),\(y): \(pixel(image, x, y)), want \(colour)")
        }
    }

    @Test func progressiveAndCMYKJPEGsKeepTheQuadrants() throws {
        expectQuadrants(try decodeFixture("progressive.jpg"), tolerance: 8, "progressive")
        // PIL writes CMYK with Adobe's APP14 marker and inverted values; read plainly, the
        // colours would come out as their complements.
        let cmyk = PhotoFixtures.fixture("cmyk.jpg")
        #expect(JPEGMarkers.scan(try ImageFile.read(cmyk)).adobe)
        expectQuadrants(try decodeFixture("cmyk.jpg"), tolerance: 8, "cmyk")
    }

    @Test func exifOrientationSixMovesTheMarkedCornerToTheTopRight() throws {
        let bytes = try ImageFile.read(PhotoFixtures.fixture("exif6.jpg"))
        #expect(JPEGMarkers.scan(bytes).orientation == 6)
        let probe = try ImageFile.probe(bytes, path: "exif6.jpg", jpeg: JPEGDecoder())
        #expect(probe.width == 8 && probe.height == 16, "stored 16x8, displayed 8x16")
        let image = try decodeFixture("exif6.jpg")
        #expect(image.width == 8 && image.height == 16)
        #expect(close(pixel(image, 6, 1), [255, 0, 0], within: 10), "red corner at the top-right: \(pixel(image, 6, 1))")
        #expect(close(pixel(image, 1, 1), [128, 128, 128], within: 10), "top-left is grey: \(pixel(image, 1, 1))")
        #expect(close(pixel(image, 6, 14), [128, 128, 128], within: 10), "bottom-right is grey: \(pixel(image, 6, 14))")
    }

    @Test func everyOrientationMatchesItsRotationOrMirror() {
        // A 3x2 image whose pixel values are their stored index.
        let stored = DecodedImage(width: 3, height: 2, channels: 1, pixels: [0, 1, 2, 3, 4, 5])
        // Displayed rows for orientations 1...8 (TIFF 6.0 / PIL's exif_transpose).
        let expected: [[[UInt8]]] = [
            [[0, 1, 2], [3, 4, 5]],           // 1
            [[2, 1, 0], [5, 4, 3]],           // 2 mirrored
            [[5, 4, 3], [2, 1, 0]],           // 3 rotated 180
            [[3, 4, 5], [0, 1, 2]],           // 4 flipped
            [[0, 3], [1, 4], [2, 5]],         // 5 transposed
            [[3, 0], [4, 1], [5, 2]],         // 6 rotated 90 clockwise
            [[5, 2], [4, 1], [3, 0]],         // 7 transversed
            [[2, 5], [1, 4], [0, 3]],         // 8 rotated 90 counter-clockwise
        ]
        for orientation in 1...8 {
            let image = ImageFile.oriented(stored, exif: orientation)
            let rows = (0..<image.height).map { Array(image.pixels[$0 * image.width..<($0 + 1) * image.width]) }
            #expect(rows == expected[orientation - 1], "orientation \(orientation): \(rows)")
        }
    }

    @Test func exifParserSurvivesCutAndLyingSegments() throws {
        let bytes = try ImageFile.read(PhotoFixtures.fixture("exif6.jpg"))
        // Every prefix, and every single-byte corruption of the first 200 bytes: no trap, a
        // valid orientation.
        for length in 0...min(bytes.count, 400) {
            let orientation = JPEGMarkers.scan(Array(bytes[0..<length])).orientation
            #expect((1...8).contains(orientation))
        }
        for position in 0..<min(bytes.count, 200) {
            for value: UInt8 in [0x00, 0xFF, 0x7F] {
                var copy = bytes
                copy[position] = value
                #expect((1...8).contains(JPEGMarkers.scan(copy).orientation))
            }
        }
    }

    @Test func pngPaletteSixteenBitAndGreyAlphaDecodeToKnownValues() throws {
        let palette = try decodeFixture("palette.png")
        #expect(palette.channels == 3 && palette.width == 4)
        #expect(palette.pixels == [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
        // 16-bit samples become value / 257 (taken as sRGB, as most tools read them).
        let deep = try decodeFixture("rgb16.png")
        #expect(deep.channels == 3 && deep.width == 4 && deep.height == 2)
        let want16: [Int] = [65535, 0, 0, 0, 65535, 0, 0, 0, 65535, 257 * 128, 257 * 64, 257 * 32,
                             0, 0, 0, 65535, 65535, 65535, 1000, 30000, 60000, 257 * 10, 257 * 20, 257 * 30]
        for (index, value) in want16.enumerated() {
            #expect(abs(Int(deep.pixels[index]) - (value + 128) / 257) <= 1, "sample \(index): \(deep.pixels[index]) for \(value)")
        }
        // Grey + alpha: grey, alpha composited on black (transparent -> 0).
        let greyAlpha = try decodeFixture("grey-alpha.png")
        #expect(greyAlpha.channels == 1)
        #expect(greyAlpha.pixels == [200, 0, 0, 255])
    }

    @Test func turboJPEGAndLibpngRoundTripsOfGreyAndColour() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        var colour: [UInt8] = []
        for y in 0..<12 { for x in 0..<20 { colour += [UInt8(x * 12), UInt8(y * 20), 77] } }
        let jpeg = JPEGDecoder()
        let png = try ImageFile.decode(PhotoFixtures.png(width: 20, height: 12, channels: 3, pixels: colour), path: "c.png", jpeg: jpeg)
        #expect(png == DecodedImage(width: 20, height: 12, channels: 3, pixels: colour), "PNG is lossless")
        let viaJPEG = try ImageFile.decode(PhotoFixtures.jpeg(width: 20, height: 12, channels: 3, pixels: colour), path: "c.jpg", jpeg: jpeg)
        #expect(viaJPEG.width == 20 && viaJPEG.height == 12 && viaJPEG.channels == 3)
        #expect(zip(viaJPEG.pixels, colour).allSatisfy { abs(Int($0) - Int($1)) <= 6 })
        let grey = (0..<64).map { UInt8($0 * 4) }
        let greyJPEG = try ImageFile.decode(PhotoFixtures.jpeg(width: 8, height: 8, channels: 1, pixels: grey), path: "g.jpg", jpeg: jpeg)
        #expect(greyJPEG.channels == 1 && zip(greyJPEG.pixels, grey).allSatisfy { abs(Int($0) - Int($1)) <= 4 })
        #expect(greyJPEG.withChannels(3).pixels[0..<6] == [greyJPEG.pixels[0], greyJPEG.pixels[0], greyJPEG.pixels[0],
                                                           greyJPEG.pixels[1], greyJPEG.pixels[1], greyJPEG.pixels[1]])
    }

    /// The reference: every output pixel as one 2D sum over the whole source, in Double, with
    /// the same triangle filter (support scaled by the shrink factor), normalised.
    func naiveResizeAndCrop(_ image: DecodedImage, side: Int) -> [UInt8] {
        let resized = ImageResize.resizedSize(width: image.width, height: image.height, side: side)
        let left = (resized.width - side) / 2, top = (resized.height - side) / 2
        let scaleX = Double(image.width) / Double(resized.width), scaleY = Double(image.height) / Double(resized.height)
        let filterX = max(scaleX, 1), filterY = max(scaleY, 1)
        var out = [UInt8](repeating: 0, count: side * side * image.channels)
        for y in 0..<side {
            let centreY = (Double(y + top) + 0.5) * scaleY
            for x in 0..<side {
                let centreX = (Double(x + left) + 0.5) * scaleX
                for channel in 0..<image.channels {
                    var sum = 0.0, total = 0.0
                    for sy in 0..<image.height {
                        let wy = ImageResize.triangle((Double(sy) + 0.5 - centreY) / filterY)
                        if wy == 0 { continue }
                        for sx in 0..<image.width {
                            let weight = wy * ImageResize.triangle((Double(sx) + 0.5 - centreX) / filterX)
                            sum += weight * Double(image.pixels[(sy * image.width + sx) * image.channels + channel])
                            total += weight
                        }
                    }
                    out[(y * side + x) * image.channels + channel] = UInt8(max(0, min(255, (sum / total + 0.5).rounded(.down))))
                }
            }
        }
        return out
    }

    /// `predict` with a grey checkpoint makes colour photos grey: BT.601 luma as Pillow's
    /// convert("L") rounds it; grey to RGB replicates.
    @Test func rgbBecomesGreyByLumaAndGreyBecomesRGB() {
        let colours: [[UInt8]] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [200, 100, 50]]
        let image = DecodedImage(width: 3, height: 2, channels: 3, pixels: colours.flatMap { $0 })
        let grey = image.withChannels(1)
        #expect(grey.channels == 1 && grey.width == 3 && grey.height == 2)
        #expect(grey.pixels == [76, 150, 29, 255, 0, 124], "\(grey.pixels)")
        #expect(grey.withChannels(3).pixels == grey.pixels.flatMap { [$0, $0, $0] })
    }

    @Test func resizeMatchesTheNaiveTwinOnOddShapes() {
        var generator = SeededGenerator(seed: 19)
        let cases: [(width: Int, height: Int, channels: Int, side: Int)] = [
            (37, 23, 3, 16), (23, 37, 1, 16), (5, 9, 3, 12), (1, 1, 3, 3), (64, 64, 3, 64), (100, 7, 1, 5),
            (9, 9, 3, 7), (31, 17, 3, 32), (200, 150, 3, 24), (17, 200, 1, 9),
        ]
        for shape in cases {
            let pixels = (0..<shape.width * shape.height * shape.channels).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let image = DecodedImage(width: shape.width, height: shape.height, channels: shape.channels, pixels: pixels)
            let fast = ImageResize.resizeAndCrop(image, side: shape.side)
            let reference = naiveResizeAndCrop(image, side: shape.side)
            #expect(fast.width == shape.side && fast.height == shape.side && fast.channels == shape.channels)
            var worst = 0, worstIndex = -1
            for index in 0..<reference.count where abs(Int(fast.pixels[index]) - Int(reference[index])) > worst {
                worst = abs(Int(fast.pixels[index]) - Int(reference[index]))
                worstIndex = index
            }
            #expect(worst <= 1, "\(shape): differs by \(worst) at \(worstIndex)")
        }
        // Same size: the identity. A constant image stays constant at any scale.
        let same = DecodedImage(width: 8, height: 8, channels: 1, pixels: (0..<64).map { UInt8($0 * 3) })
        #expect(ImageResize.resizeAndCrop(same, side: 8) == same)
        let flat = DecodedImage(width: 50, height: 30, channels: 3, pixels: [UInt8](repeating: 99, count: 4500))
        #expect(ImageResize.resizeAndCrop(flat, side: 7).pixels.allSatisfy { $0 == 99 })
        #expect(ImageResize.resizeAndCrop(flat, side: 90).pixels.allSatisfy { $0 == 99 })
    }

    @Test func classFoldersGiveSortedNamesLabelsAndFileOrder() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        // Folders written out of order; each image a solid grey level that names it.
        // PNGs are lossless, so the packed values are exact.
        let layout: [(String, UInt8)] = [
            ("zebra/b.png", 30), ("zebra/a.PNG", 20), ("ant/x.png", 10), ("mole/deep/z.png", 60), ("mole/m.png", 50),
            ("mole/aa.png", 40),
        ]
        for (name, value) in layout {
            fixtures.write("set/" + name, PhotoFixtures.png(width: 6, height: 4, channels: 3, pixels: PhotoFixtures.solid(width: 6, height: 4, [value, value, 255 - value])))
        }
        fixtures.write("set/ant/notes.txt", Array("not an image".utf8))
        fixtures.write("set/ant/.hidden.png", [1, 2, 3])
        fixtures.write("set/top-level.png", [1, 2, 3])
        let output = fixtures.path("set.pack")
        let report = try PackImport.images(directory: fixtures.path("set"), labelsCSV: nil, output: output, options: PackImport.Options())
        #expect(report.header.classNames == ["ant", "mole", "zebra"])
        #expect(report.header.channels == 3 && report.header.height == 4 && report.header.width == 6)
        #expect(report.ignoredFiles == 1 && report.skipped.isEmpty && report.layout == "class folders")
        let set = try PackFile.open(output).loadDataset()
        // ant/x; mole/aa, mole/m, then mole/deep/z; zebra/a.PNG, zebra/b.
        #expect(set.labels == [0, 1, 1, 1, 2, 2])
        #expect((0..<6).map { set.sample($0).first! } == [10, 40, 50, 60, 20, 30])
        #expect((0..<6).map { set.sample($0)[set.sample($0).startIndex + 24 * 2] } == [245, 215, 205, 195, 235, 225], "blue plane")
    }

    @Test func greyStaysGreyUnlessSizedMixedOrForced() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        let grey = PhotoFixtures.png(width: 5, height: 5, channels: 1, pixels: [UInt8](repeating: 70, count: 25))
        fixtures.write("g/a/1.png", grey)
        fixtures.write("g/b/2.pgm", Array("P5 5 5 255\n".utf8) + [UInt8](repeating: 90, count: 25))
        let output = fixtures.path("g.pack")
        #expect(try PackImport.images(directory: fixtures.path("g"), labelsCSV: nil, output: output, options: PackImport.Options()).header.channels == 1)
        var forced = PackImport.Options()
        forced.forceRGB = true
        #expect(try PackImport.images(directory: fixtures.path("g"), labelsCSV: nil, output: output, options: forced).header.channels == 3)
        let rgb = try PackFile.open(output).loadDataset()
        #expect(Array(rgb.sample(1)) == [UInt8](repeating: 90, count: 75), "grey replicated into R, G, B")
        var sized = PackImport.Options()
        sized.imageSide = 3
        let header = try PackImport.images(directory: fixtures.path("g"), labelsCSV: nil, output: output, options: sized).header
        #expect(header.channels == 3 && header.height == 3 && header.width == 3)
        fixtures.write("g/b/3.ppm", Array("P6 5 5 255\n".utf8) + [UInt8](repeating: 1, count: 75))
        #expect(try PackImport.images(directory: fixtures.path("g"), labelsCSV: nil, output: output, options: PackImport.Options()).header.channels == 3)
    }

    @Test func sizedPackOfJPEGsAndTheCSVLayout() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        // Different sizes and formats, resized to 8x8; listed by a CSV with class names.
        fixtures.write("p/one.jpg", PhotoFixtures.jpeg(width: 40, height: 30, channels: 3, pixels: PhotoFixtures.solid(width: 40, height: 30, [200, 100, 50])))
        fixtures.write("p/two.png", PhotoFixtures.png(width: 9, height: 13, channels: 1, pixels: [UInt8](repeating: 33, count: 117)))
        fixtures.write("p/labels.csv", Array("file,label\none.jpg,owl\ntwo.png,cat\n".utf8))
        var options = PackImport.Options()
        options.imageSide = 8
        let output = fixtures.path("p.pack")
        let report = try PackImport.images(directory: fixtures.path("p"), labelsCSV: fixtures.path("p/labels.csv"), output: output, options: options)
        #expect(report.header.classNames == ["cat", "owl"] && report.header.height == 8 && report.header.channels == 3)
        let set = try PackFile.open(output).loadDataset()
        #expect(set.labels == [1, 0])
        #expect(set.sample(0).enumerated().allSatisfy { abs(Int($0.element) - [200, 100, 50][$0.offset / 64]) <= 3 })
        #expect(set.sample(1).allSatisfy { $0 == 33 })
    }

    @Test func sizeMismatchNamesTheFileAndBothSizes() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        fixtures.write("m/a/1.png", PhotoFixtures.png(width: 4, height: 4, channels: 3, pixels: [UInt8](repeating: 1, count: 48)))
        fixtures.write("m/a/2.png", PhotoFixtures.png(width: 5, height: 4, channels: 3, pixels: [UInt8](repeating: 1, count: 60)))
        do {
            _ = try PackImport.images(directory: fixtures.path("m"), labelsCSV: nil, output: fixtures.path("m.pack"), options: PackImport.Options())
            Issue.record("mixed sizes accepted")
        } catch {
            #expect(error.description.contains("2.png") && error.description.contains("5x4") && error.description.contains("4x4")
                    && error.description.contains("--size"), "\(error)")
        }
        #expect(!FileSystem.exists(fixtures.path("m.pack")) && !FileSystem.exists(fixtures.path("m.pack.partial")))
    }

    /// A tree with good images and bad ones: a cut JPEG, a PNG with garbage after the
    /// signature, an empty file, a text file named .jpg.
    func treeWithBadFiles(_ fixtures: PhotoFixtures, onlyTheCutJPEG: Bool = false) -> (good: Int, bad: [String]) {
        let jpeg = PhotoFixtures.jpeg(width: 16, height: 16, channels: 3, pixels: PhotoFixtures.solid(width: 16, height: 16, [10, 200, 30]))
        fixtures.write("t/a/good1.jpg", jpeg)
        // Noise, so that the file cut 100 bytes short ends inside the scan data (past the header).
        var generator = SeededGenerator(seed: 5)
        let noisy = PhotoFixtures.jpeg(width: 16, height: 16, channels: 3, pixels: (0..<16 * 16 * 3).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        fixtures.write("t/a/good2.png", PhotoFixtures.png(width: 16, height: 16, channels: 3, pixels: PhotoFixtures.solid(width: 16, height: 16, [9, 9, 9])))
        fixtures.write("t/a/good4.png", PhotoFixtures.png(width: 16, height: 16, channels: 3, pixels: PhotoFixtures.solid(width: 16, height: 16, [9, 9, 9])))
        fixtures.write("t/b/good3.jpg", jpeg)
        let cut = fixtures.write("t/a/cut.jpg", Array(noisy[0..<noisy.count - 100]))
        if onlyTheCutJPEG { return (4, [cut]) }
        let bad = [cut,
                   fixtures.write("t/b/broken.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + [UInt8](repeating: 7, count: 40)),
                   fixtures.write("t/b/empty.jpg", []),
                   fixtures.write("t/b/text.jpg", Array("hello".utf8))]
        return (4, bad)
    }

    @Test func aBadFileStopsThePackLeavingNoOutput() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        // The cut JPEG's header reads (the header pass accepts it and the pack is begun); its
        // scan data ends early, which the decode finds.
        _ = treeWithBadFiles(fixtures, onlyTheCutJPEG: true)
        let output = fixtures.path("t.pack")
        for side in [nil, 8] as [Int?] {
            var options = PackImport.Options()
            options.imageSide = side
            do {
                _ = try PackImport.images(directory: fixtures.path("t"), labelsCSV: nil, output: output, options: options)
                Issue.record("a cut JPEG was packed")
            } catch {
                // The first bad file in order is a/cut.jpg: its name and libjpeg-turbo's reason.
                #expect(error.description.contains("t/a/cut.jpg") && error.description.contains("Premature end of JPEG file"), "\(error)")
            }
            #expect(!FileSystem.exists(output) && !FileSystem.exists(output + ".partial"), "no partial output")
        }
    }

    @Test func skipBadListsEveryBadFileAndPacksTheRest() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        let tree = treeWithBadFiles(fixtures)
        for side in [nil, 8] as [Int?] {
            var options = PackImport.Options()
            options.skipBadImages = true
            options.imageSide = side
            let report = try PackImport.images(directory: fixtures.path("t"), labelsCSV: nil, output: fixtures.path("t.pack"), options: options)
            #expect(report.header.sampleCount == tree.good)
            #expect(report.skipped.map { $0.file }.sorted() == tree.bad.sorted(), "\(report.skipped)")
            #expect(report.skipped.allSatisfy { !$0.reason.isEmpty })
            #expect(report.skipped.first { $0.file.hasSuffix("empty.jpg") }?.reason.contains("empty") == true)
            #expect(report.skipped.first { $0.file.hasSuffix("text.jpg") }?.reason.contains("unsupported format") == true)
        }
        // Nothing readable at all: an error, no pack.
        let none = PhotoFixtures()
        defer { none.remove() }
        none.write("n/a/x.jpg", [0xFF, 0xD8, 0xFF, 0, 0])
        var options = PackImport.Options()
        options.skipBadImages = true
        #expect(throws: DataError.self) {
            try PackImport.images(directory: none.path("n"), labelsCSV: nil, output: none.path("n.pack"), options: options)
        }
        #expect(!FileSystem.exists(none.path("n.pack")))
    }

    @Test func hugeDeclaredSizesAreRefusedBeforeDecoding() throws {
        let jpeg = JPEGDecoder()
        // A PNG header claiming 20000 x 20000 (400 Mpx) and no data.
        var ihdr: [UInt8] = [0, 0, 0, 13] + Array("IHDR".utf8) + [0, 0, 0x4E, 0x20, 0, 0, 0x4E, 0x20, 8, 2, 0, 0, 0]
        let crc = ihdr[4...].withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, UInt32($0.count))) }
        ihdr += [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)]
        // begin_read reads up to the first IDAT: an empty one and IEND follow.
        let tail: [UInt8] = [0, 0, 0, 0] + Array("IDAT".utf8) + [0x35, 0xAF, 0x06, 0x1E] + [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82]
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + ihdr + tail
        do {
            _ = try ImageFile.decode(png, path: "big.png", jpeg: jpeg)
            Issue.record("a 400 Mpx PNG was decoded")
        } catch {
            #expect(error.description.contains("big.png") && error.description.contains("20000x20000") && error.description.contains("Mpx"), "\(error)")
        }
        // A JPEG whose frame header says 30000 x 30000: the SOF0 of a small JPEG rewritten.
        var small = PhotoFixtures.jpeg(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 1, count: 64))
        let sof = (0..<small.count - 1).first { small[$0] == 0xFF && small[$0 + 1] == 0xC0 }!
        small[sof + 5] = 0x75; small[sof + 6] = 0x30; small[sof + 7] = 0x75; small[sof + 8] = 0x30
        do {
            _ = try ImageFile.decode(small, path: "big.jpg", jpeg: jpeg)
            Issue.record("a 900 Mpx JPEG was decoded")
        } catch {
            #expect(error.description.contains("big.jpg") && error.description.contains("30000x30000"), "\(error)")
        }
    }
}
