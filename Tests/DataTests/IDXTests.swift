import Data
import Testing

@Suite struct IDXTests {
    let classes = 10

    @Test(arguments: [false, true])
    func loadsEverySampleInOrder(gzip: Bool) throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let count = 300, rows = 5, cols = 7  // non-square, more samples than one index byte
        let images = fixtures.write("images", IDXFixtures.imagesBytes(count: count, rows: rows, cols: cols), gzip: gzip)
        let labels = fixtures.write("labels", IDXFixtures.labelsBytes(count: count, classes: classes), gzip: gzip)
        let dataset = try Dataset.loadIDX(images: images, labels: labels, classes: classes)
        #expect(dataset.count == count && dataset.channels == 1 && dataset.height == rows && dataset.width == cols)
        #expect(dataset.classCount == classes && dataset.pixels.count == count * rows * cols)
        for sample in 0..<count {
            let pixels = dataset.sample(sample)
            #expect(IDXFixtures.decodeIndex(pixels) == sample)
            for position in 0..<(rows * cols) where pixels[pixels.startIndex + position] != IDXFixtures.pixel(sample: sample, position: position) {
                Issue.record("sample \(sample) pixel \(position) differs (gzip \(gzip))")
                return
            }
            #expect(dataset.labels[sample] == IDXFixtures.label(sample: sample, classes: classes))
        }
    }

    @Test func plainAndGzippedFilesGiveTheSameDataset() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let imageBytes = IDXFixtures.imagesBytes(count: 50, rows: 28, cols: 28)
        let labelBytes = IDXFixtures.labelsBytes(count: 50, classes: classes)
        let plain = try Dataset.loadIDX(images: fixtures.write("i", imageBytes, gzip: false),
                                        labels: fixtures.write("l", labelBytes, gzip: false), classes: classes)
        let packed = try Dataset.loadIDX(images: fixtures.write("i.gz", imageBytes, gzip: true),
                                         labels: fixtures.write("l.gz", labelBytes, gzip: true), classes: classes)
        #expect(plain.pixels == packed.pixels && plain.labels == packed.labels)
        #expect(plain.normalization == packed.normalization)
    }

    @Test func meanAndStdMatchADoubleComputation() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let imageBytes = IDXFixtures.imagesBytes(count: 40, rows: 6, cols: 6)
        let dataset = try Dataset.loadIDX(images: fixtures.write("i", imageBytes, gzip: false),
                                          labels: fixtures.write("l", IDXFixtures.labelsBytes(count: 40, classes: classes), gzip: false),
                                          classes: classes)
        let values = imageBytes[16...].map { Double($0) / 255 }
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        let computed = dataset.computeMeanStd()
        #expect(abs(Double(computed.mean[0]) - mean) < 1e-6 && abs(Double(computed.std[0]) - std) < 1e-6)
        #expect(dataset.normalization == computed, "nil normalisation means computed from the data")
    }

    @Test func subsetAndPrefixKeepSamplesAndNormalisation() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let dataset = try Dataset.loadIDX(
            images: fixtures.write("i", IDXFixtures.imagesBytes(count: 20, rows: 3, cols: 3), gzip: true),
            labels: fixtures.write("l", IDXFixtures.labelsBytes(count: 20, classes: classes), gzip: true),
            classes: classes, classNames: FashionMNIST.classNames, normalization: .fashionMNIST)
        let picked = dataset.subset([19, 3, 3, 0])
        #expect(picked.count == 4 && picked.classNames == FashionMNIST.classNames)
        #expect([0, 1, 2, 3].map { IDXFixtures.decodeIndex(picked.sample($0)) } == [19, 3, 3, 0])
        #expect(picked.labels == [19, 3, 3, 0].map { dataset.labels[$0] })
        #expect(picked.normalization == .fashionMNIST)
        let first = dataset.prefix(5)
        #expect(first.count == 5 && (0..<5).map { IDXFixtures.decodeIndex(first.sample($0)) } == [0, 1, 2, 3, 4])
        #expect(dataset.prefix(100).count == 20)
    }

    // MARK: Malformed files: each gives a DataError naming the file, never a crash.

    /// Runs `body`, requires a DataError whose message names `file` and contains `words`.
    func expectDataError(naming file: String, containing words: String, _ body: () throws -> Void,
                         sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try body()
            Issue.record("no error for \(file) (expected \(words))", sourceLocation: sourceLocation)
        } catch let error as DataError {
            #expect(error.description.contains(file), "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.contains(words), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("not a DataError: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [false, true])
    func malformedFilesAreRejectedWithTheirName(gzip: Bool) throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let good = fixtures.write("good-images", IDXFixtures.imagesBytes(count: 10, rows: 4, cols: 4), gzip: gzip)
        let goodLabels = fixtures.write("good-labels", IDXFixtures.labelsBytes(count: 10, classes: classes), gzip: gzip)
        #expect(throws: Never.self) { try Dataset.loadIDX(images: good, labels: goodLabels, classes: classes) }

        // Wrong magic: a labels file given as images, and an images magic in a labels file.
        expectDataError(naming: goodLabels, containing: "bad magic") {
            _ = try Dataset.loadIDX(images: goodLabels, labels: goodLabels, classes: classes)
        }
        let oddMagic = fixtures.write("odd-magic", IDXFixtures.labelsBytes(count: 10, classes: classes, magic: 0x0000_0803), gzip: gzip)
        expectDataError(naming: oddMagic, containing: "bad magic") {
            _ = try Dataset.loadIDX(images: good, labels: oddMagic, classes: classes)
        }
        // Truncated payload, truncated header, empty file.
        let full = IDXFixtures.imagesBytes(count: 10, rows: 4, cols: 4)
        let short = fixtures.write("short-images", Array(full.dropLast(5)), gzip: gzip)
        expectDataError(naming: short, containing: "truncated: expected 176 bytes, the file ends after 171") {
            _ = try Dataset.loadIDX(images: short, labels: goodLabels, classes: classes)
        }
        let header = fixtures.write("header-only", Array(full.prefix(10)), gzip: gzip)
        expectDataError(naming: header, containing: "truncated") {
            _ = try Dataset.loadIDX(images: header, labels: goodLabels, classes: classes)
        }
        let empty = fixtures.write("empty", [], gzip: gzip)
        expectDataError(naming: empty, containing: "truncated") {
            _ = try Dataset.loadIDX(images: good, labels: empty, classes: classes)
        }
        let shortLabels = fixtures.write("short-labels", Array(IDXFixtures.labelsBytes(count: 10, classes: classes).dropLast()), gzip: gzip)
        expectDataError(naming: shortLabels, containing: "truncated") {
            _ = try Dataset.loadIDX(images: good, labels: shortLabels, classes: classes)
        }
        // More bytes than the header announces.
        let long = fixtures.write("long-images", full + [1, 2, 3], gzip: gzip)
        expectDataError(naming: long, containing: "data continues after the payload") {
            _ = try Dataset.loadIDX(images: long, labels: goodLabels, classes: classes)
        }
        // Count mismatch between images and labels.
        let elevenLabels = fixtures.write("eleven-labels", IDXFixtures.labelsBytes(count: 11, classes: classes), gzip: gzip)
        expectDataError(naming: elevenLabels, containing: "11 labels") {
            _ = try Dataset.loadIDX(images: good, labels: elevenLabels, classes: classes)
        }
        // Label >= class count (labels go up to 9; with 5 classes sample 1's label 0 is fine, 3's label 4 too).
        expectDataError(naming: goodLabels, containing: "out of range for 5 classes") {
            _ = try Dataset.loadIDX(images: good, labels: goodLabels, classes: 5)
        }
        // Absurd dimensions: 2^31 images, 2^31 rows, zero columns, a payload over 4 GiB.
        for (name, dims) in [("huge-count", [UInt32(1) << 31, 28, 28]), ("huge-rows", [10, UInt32(1) << 31, 4]),
                             ("zero-cols", [10, 4, 0]), ("huge-payload", [1 << 30, 1 << 13, 1 << 13]),
                             ("all-ones", [UInt32.max, UInt32.max, UInt32.max])] {
            let file = fixtures.write(name, IDXFixtures.bigEndian([0x0000_0803] + dims) + [0, 0, 0, 0], gzip: gzip)
            expectDataError(naming: file, containing: "absurd dimensions") {
                _ = try Dataset.loadIDX(images: file, labels: goodLabels, classes: classes)
            }
        }
        let hugeLabels = fixtures.write("huge-labels", IDXFixtures.bigEndian([0x0000_0801, UInt32(1) << 31]) + [1, 2], gzip: gzip)
        expectDataError(naming: hugeLabels, containing: "absurd dimensions") {
            _ = try Dataset.loadIDX(images: good, labels: hugeLabels, classes: classes)
        }
        // A header that claims a large but allowed payload and then ends: truncated, no giant read.
        let liar = fixtures.write("liar", IDXFixtures.bigEndian([0x0000_0803, 1_000_000, 28, 28]) + [7, 7, 7], gzip: gzip)
        expectDataError(naming: liar, containing: "truncated") {
            _ = try Dataset.loadIDX(images: liar, labels: goodLabels, classes: classes)
        }
        // A file that does not exist.
        let missing = fixtures.path("no-such-file")
        expectDataError(naming: missing, containing: "gzopen") {
            _ = try Dataset.loadIDX(images: missing, labels: goodLabels, classes: classes)
        }
    }

    @Test func corruptAndCutGzipStreamsAreRejected() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let labels = fixtures.write("labels", IDXFixtures.labelsBytes(count: 200, classes: classes), gzip: false)
        let compressed = fixtures.gzipped(IDXFixtures.imagesBytes(count: 200, rows: 28, cols: 28))
        // Cut the compressed stream in the middle: zlib reports an unexpected end of file.
        let cut = fixtures.write("cut.gz", Array(compressed.prefix(compressed.count / 2)), gzip: false)
        expectDataError(naming: cut, containing: "gzread") {
            _ = try Dataset.loadIDX(images: cut, labels: labels, classes: classes)
        }
        // Flip bytes inside the deflate data: zlib reports corrupt data (or the CRC fails).
        var damaged = compressed
        for offset in stride(from: 40, to: damaged.count - 16, by: 97) { damaged[offset] ^= 0x5A }
        let corrupt = fixtures.write("corrupt.gz", damaged, gzip: false)
        expectDataError(naming: corrupt, containing: corrupt) {
            _ = try Dataset.loadIDX(images: corrupt, labels: labels, classes: classes)
        }
    }

    @Test func datasetInitialiserChecksShapesAndNormalisation() {
        expectDataError(naming: "synthetic", containing: "dimension mismatch") {
            _ = try Dataset(name: "synthetic", pixels: [UInt8](repeating: 0, count: 11), labels: [0, 1],
                            channels: 1, height: 2, width: 3, classCount: 2)
        }
        expectDataError(naming: "synthetic", containing: "2 means") {
            _ = try Dataset(name: "synthetic", pixels: [UInt8](repeating: 0, count: 12), labels: [0, 1],
                            channels: 1, height: 2, width: 3, classCount: 2,
                            normalization: Normalization(mean: [0, 0], std: [1, 1]))
        }
        expectDataError(naming: "synthetic", containing: "3 class names") {
            _ = try Dataset(name: "synthetic", pixels: [UInt8](repeating: 0, count: 12), labels: [0, 1],
                            channels: 1, height: 2, width: 3, classCount: 2, classNames: ["a", "b", "c"])
        }
    }
}
