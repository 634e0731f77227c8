import Data
import Kernels
import Platform

/// `leitner bench data`: how fast packs decode, against what training consumes.
enum DataBench {
    /// What cnn-s training consumes on the build machine (about 1500-2000 samples/s with two
    /// threads, README): the bar is ten times this.
    static let trainingSamplesPerSecond = 2000.0

    static func run(seconds: Double, packPath: String?) -> Bool {
        let path: String
        if let packPath {
            path = packPath
        } else if let directory = DatasetLocator.shippedSubsetDirectory() {
            path = directory + "/" + DatasetLocator.packNames.train
        } else {
            print("data: no pack found (pass --pack FILE)")
            return false
        }
        do throws(DataError) {
            let pack = try PackFile.open(path)
            let header = pack.header
            print("\ndata: \(path): \(header.sampleCount) samples of \(header.recordBytes) bytes in \(pack.blocks.count) blocks, \(pack.fileBytes) bytes packed (ratio \(BenchSupport.format(Double(pack.uncompressedBytes) / Double(pack.fileBytes), decimals: 2)):1); one thread, file in the page cache")
            print("  reference: cnn-s training consumes about \(Int(trainingSamplesPerSecond)) samples/s; bar: 10x")
            print("stage                                         MB/s out   samples/s   x training")

            // 1. Read + inflate + CRC-32 + label check of every block, one thread.
            let compressed = UnsafeMutableRawPointer.allocate(byteCount: pack.largestCompressedBlock, alignment: 64)
            let output = UnsafeMutableRawPointer.allocate(byteCount: pack.largestBlock, alignment: 64)
            defer { compressed.deallocate(); output.deallocate() }
            let codec = GzipCodec.decoder()
            var passes = 0
            let started = Clock.seconds()
            repeat {
                for block in 0..<pack.blocks.count {
                    try pack.readBlock(block, into: compressed)
                    try pack.decodeBlock(block, compressed: compressed, into: output, codec: codec)
                }
                passes += 1
            } while Clock.seconds() - started < seconds
            row("read + inflate + CRC (decode)", bytes: passes * pack.uncompressedBytes, samples: passes * header.sampleCount,
                seconds: Clock.seconds() - started)

            // 2. The training path: streamed in the least memory streaming needs (prefetch
            //    thread, shuffle buffer), then cached; each batch of 64 normalised into floats.
            guard header.elementType == .uint8 && header.labelType == .uint8 else { return true }
            let streamingBytes = PackStream.requiredBytes(pack: pack).streaming
            for budget in [streamingBytes, PackStream.requiredBytes(pack: pack).cached] {
                let stream = try PackStream(pack: try PackFile.open(path), budgetBytes: budget)
                let name = stream.cacheMode ? "streamed, cached (\(budget >> 10) KiB) -> batches" : "streamed (\(budget >> 10) KiB) -> float batches"
                let rate = try streamBatches(stream, seconds: seconds)
                row(name, bytes: rate.samples * header.recordBytes, samples: rate.samples, seconds: rate.seconds)
            }
        } catch {
            print("data: " + error.description)
            return false
        }
        return true
    }

    /// Epochs of shuffled batches of 64 assembled from `stream` for about `seconds`.
    static func streamBatches(_ stream: PackStream, seconds: Double) throws(DataError) -> (samples: Int, seconds: Double) {
        let header = stream.pack.header
        let assembler = BatchAssembler(dataset: try Dataset(streaming: stream))
        let batch = 64
        let input = UnsafeMutablePointer<Float>.allocate(capacity: batch * header.elementsPerSample)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
        var order = [Int32](repeating: 0, count: header.sampleCount)
        defer { input.deallocate(); labels.deallocate() }
        var generator = SeededGenerator(seed: 1)
        var samples = 0
        let started = Clock.seconds()
        repeat {
            order.withUnsafeMutableBufferPointer { assembler.epochOrder(count: header.sampleCount, generator: &generator, into: $0) }
            order.withUnsafeBufferPointer { buffer in
                assembler.beginPass(buffer)
                var done = 0
                while done < buffer.count {
                    let size = min(batch, buffer.count - done)
                    assembler.assemble(indices: UnsafeBufferPointer(rebasing: buffer[done..<done + size]), input: input, labels: labels)
                    done += size
                }
            }
            if let failure = assembler.failure { throw failure }
            samples += header.sampleCount
        } while Clock.seconds() - started < seconds
        return (samples, Clock.seconds() - started)
    }

    static func row(_ name: String, bytes: Int, samples: Int, seconds: Double) {
        let rate = Double(samples) / seconds
        let padded = name.count < 44 ? name + String(repeating: " ", count: 44 - name.count) : name
        print(padded + "  " + Format.pad(BenchSupport.format(Double(bytes) / 1e6 / seconds, decimals: 1), 9)
              + "  " + Format.pad(BenchSupport.format(rate, decimals: 0), 10) + "  " + Format.pad(BenchSupport.format(rate / trainingSamplesPerSecond, decimals: 1), 11))
    }
}
