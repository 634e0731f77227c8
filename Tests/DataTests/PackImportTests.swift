import CSystem
import Data
import Platform
import Testing

/// The converters: each input format's samples arrive in the pack unchanged, in order.
@Suite struct PackImportTests {
    @Test func idxPairBecomesAPackWithTheSameSamples() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let images = fixtures.write("images.gz", IDXFixtures.imagesBytes(count: 300, rows: 5, cols: 7), gzip: true)
        let labels = fixtures.write("labels", IDXFixtures.labelsBytes(count: 300, classes: 10), gzip: false)
        var options = PackImport.Options()
        options.blockBytes = 1000
        options.classNames = (0..<10).map { "n\($0)" }
        let header = try PackImport.idx(images: images, labels: labels, output: fixtures.path("idx.pack"), options: options)
        #expect(header.sampleCount == 300 && header.height == 5 && header.width == 7 && header.classNames[9] == "n9")
        let packed = try PackFile.open(fixtures.path("idx.pack")).loadDataset()
        let direct = try Dataset.loadIDX(images: images, labels: labels, classes: 10)
        #expect(packed.pixels == direct.pixels && packed.labels == direct.labels)
    }

    @Test(arguments: [false, true])
    func cifarBatchesKeepLabelsAndPlanes(hundred: Bool) throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        // Two batches of 5 records: label byte(s), then 3 planes of 32x32 encoding the index.
        var paths: [String] = []
        for batch in 0..<2 {
            var bytes: [UInt8] = []
            for record in 0..<5 {
                let sample = batch * 5 + record
                if hundred { bytes += [UInt8(sample % 20), UInt8(sample * 7 % 100)] } else { bytes.append(UInt8(sample % 10)) }
                for position in 0..<3072 { bytes.append(IDXFixtures.pixel(sample: sample, position: position)) }
            }
            paths.append(fixtures.write("batch\(batch).bin", bytes, gzip: false))
        }
        let output = fixtures.path("cifar.pack")
        let header = try PackImport.cifar(batches: paths, hundred: hundred, coarse: false, output: output, options: PackImport.Options())
        #expect(header.channels == 3 && header.height == 32 && header.classCount == (hundred ? 100 : 10))
        let set = try PackFile.open(output).loadDataset()
        #expect(set.count == 10)
        for sample in 0..<10 {
            #expect(IDXFixtures.decodeIndex(set.sample(sample)) == sample)
            #expect(set.labels[sample] == UInt8(hundred ? sample * 7 % 100 : sample % 10))
        }
        // A batch that is not whole records is refused with its name.
        let broken = fixtures.write("broken.bin", [1, 2, 3], gzip: false)
        #expect(throws: DataError.self) { try PackImport.cifar(batches: [broken], hundred: hundred, coarse: false, output: output, options: PackImport.Options()) }
    }

    @Test func pgmAndPpmFoldersWithALabelsCSV() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        // Three 4x3 PPMs (with a comment in the header), labels by class name.
        var csv = "file,label\n"
        for sample in 0..<3 {
            var bytes = Array("P6\n# made by a test\n4 3\n255\n".utf8)
            for pixel in 0..<12 { for channel in 0..<3 { bytes.append(UInt8(sample * 50 + channel * 10 + pixel)) } }
            fixtures.write("img\(sample).ppm", bytes, gzip: false)
            csv += "img\(sample).ppm,\(sample == 1 ? "dog" : "cat")\n"
        }
        let labels = fixtures.write("labels.csv", Array(csv.utf8), gzip: false)
        let output = fixtures.path("images.pack")
        let header = try PackImport.images(directory: fixtures.directory, labelsCSV: labels, output: output, options: PackImport.Options()).header
        #expect(header.channels == 3 && header.height == 3 && header.width == 4 && header.classNames == ["cat", "dog"])
        let set = try PackFile.open(output).loadDataset()
        #expect(set.labels == [0, 1, 0])
        // Planes: channel c of pixel p of sample s is s*50 + c*10 + p.
        for sample in 0..<3 { for channel in 0..<3 { for pixel in 0..<12 {
            #expect(set.pixels[sample * 36 + channel * 12 + pixel] == UInt8(sample * 50 + channel * 10 + pixel))
        } } }
        // A grey image among colour ones is replicated into R, G and B (docs/datasets.md).
        fixtures.write("img1.ppm", Array("P5 4 3 255\n".utf8) + [UInt8](repeating: 9, count: 12), gzip: false)
        let mixed = try PackImport.images(directory: fixtures.directory, labelsCSV: labels, output: output, options: PackImport.Options()).header
        #expect(mixed.channels == 3)
        #expect(Array(try PackFile.open(output).loadDataset().sample(1)) == [UInt8](repeating: 9, count: 36))
    }

    @Test func csvRowsWithIntegerAndFloatValues() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        var text = "label,a,b,c,d\n"
        for sample in 0..<20 { text += "\(sample % 3),\(sample),\(sample + 1),\(sample + 2),\(255 - sample)\n" }
        let path = fixtures.write("table.csv", Array(text.utf8), gzip: false)
        let output = fixtures.path("table.pack")
        let header = try PackImport.csv(path, output: output, options: PackImport.Options())
        #expect(header.height == 2 && header.width == 2 && header.classCount == 3, "4 values: 1x2x2")
        let set = try PackFile.open(output).loadDataset()
        #expect(set.count == 20 && set.labels[4] == 1 && Array(set.sample(4)) == [4, 5, 6, 251])
        var floats = PackImport.Options()
        floats.elementType = .float32
        floats.shape = (1, 4, 1)
        let floatHeader = try PackImport.csv(path, output: fixtures.path("float.pack"), options: floats)
        #expect(floatHeader.elementType == .float32 && floatHeader.height == 4)
        let raw = PackFixture.gunzip(fixtures.path("float.pack"))
        #expect(raw.count == 20 * 17)
        let value = UInt32(raw[17 + 1]) | UInt32(raw[17 + 2]) << 8 | UInt32(raw[17 + 3]) << 16 | UInt32(raw[17 + 4]) << 24
        #expect(Float(bitPattern: value) == 1, "sample 1's first value")
        // A value out of uint8 range names the line.
        let bad = fixtures.write("bad.csv", Array("1,2,300\n".utf8), gzip: false)
        do {
            _ = try PackImport.csv(bad, output: output, options: PackImport.Options())
            Issue.record("300 accepted as uint8")
        } catch {
            #expect(error.description.contains("line 1") && error.description.contains("300"), "\(error)")
        }
    }
}
