import Platform

/// Training-time augmentation, applied per sample in this order (torchvision's
/// `RandomCrop(H, padding: P)` then `RandomHorizontalFlip()`):
/// 1. crop: pad by `padding` zero pixels on every side, cut an H x W window at a uniform
///    offset (top, left) in 0...2P; the padding is pixel value 0, i.e. normalised (0 - mean)/std;
/// 2. flip: mirror left-right with probability 0.5.
/// Random draws per sample, in order: top = below(2P+1), left = below(2P+1) (only when P > 0),
/// then one `next()` whose top bit decides the flip (only when flipping is on).
public struct Augmentation: Equatable {
    public var padding: Int
    public var horizontalFlip: Bool

    public init(padding: Int = 0, horizontalFlip: Bool = false) {
        precondition(padding >= 0, "augmentation padding must not be negative")
        self.padding = padding
        self.horizontalFlip = horizontalFlip
    }

    public static let none = Augmentation()
    /// The usual 28x28/32x32 recipe: RandomCrop(padding: 4) + RandomHorizontalFlip.
    public static let cropAndFlip = Augmentation(padding: 4, horizontalFlip: true)

    public var isIdentity: Bool { padding == 0 && !horizontalFlip }
}

/// Writes batches of normalised floats from a dataset into caller-owned buffers.
/// Built once per dataset (it holds a 256-entry normalisation table per channel);
/// `assemble` performs no heap allocation.
///
/// A streamed pack can turn out unreadable or corrupt in the middle of training. The
/// assembler then keeps the first error in `failure`, writes zeros (label 0) for that sample
/// and every later one, and reads nothing more; the caller checks `failure` after a pass and
/// stops with the reader's message (file and block).
/// - Shapes: input CNHW [C, N, H, W] Float, labels [N] Int32, N = indices.count.
public struct BatchAssembler {
    public let dataset: Dataset
    public let augmentation: Augmentation
    /// table[c * 256 + p] = (p/255 - mean[c]) / std[c].
    private let table: [Float]
    private let failureRecord = FailureRecord()

    /// The first error reading the dataset (a streamed pack), or nil.
    public var failure: DataError? { failureRecord.error }

    public init(dataset: Dataset, augmentation: Augmentation = .none) {
        self.dataset = dataset
        self.augmentation = augmentation
        var table = [Float](repeating: 0, count: dataset.channels * 256)
        for channel in 0..<dataset.channels {
            for pixel in 0..<256 {
                table[channel * 256 + pixel] = dataset.normalization.normalize(UInt8(pixel), channel: channel)
            }
        }
        self.table = table
    }

    /// The normalised value of `pixel` in `channel`, as `assemble` writes it.
    public func normalizedValue(_ pixel: UInt8, channel: Int) -> Float {
        table[channel * 256 + Int(pixel)]
    }

    /// Writes samples `indices` (each in 0..<dataset.count) without augmentation (evaluation).
    public func assemble(
        indices: UnsafeBufferPointer<Int32>, input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>
    ) {
        var unused = SeededGenerator(seed: 0)
        write(indices: indices, input: input, labels: labels, augmentation: .none, generator: &unused)
    }

    /// Writes samples `indices` with this assembler's augmentation, drawing from `generator`:
    /// the same generator state gives the same batch.
    public func assemble(
        indices: UnsafeBufferPointer<Int32>, input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>,
        generator: inout SeededGenerator
    ) {
        write(indices: indices, input: input, labels: labels, augmentation: augmentation, generator: &generator)
    }

    /// `assemble` over a slice of an epoch order held in an array.
    public func assemble(
        indices: ArraySlice<Int32>, input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>,
        generator: inout SeededGenerator
    ) {
        indices.withUnsafeBufferPointer { buffer in
            write(indices: buffer, input: input, labels: labels, augmentation: augmentation, generator: &generator)
        }
    }

    /// Draws from `generator` what assembling `count` samples would draw, without writing them:
    /// a rank of a data-parallel run skips the other ranks' samples of a global batch, so its
    /// own samples get the augmentation they get in a one-process run.
    public func skipAugmentation(count: Int, generator: inout SeededGenerator) {
        guard count > 0 && !augmentation.isIdentity else { return }
        for _ in 0..<count {
            if augmentation.padding > 0 {
                _ = generator.below(2 * augmentation.padding + 1)
                _ = generator.below(2 * augmentation.padding + 1)
            }
            if augmentation.horizontalFlip { _ = generator.next() }
        }
    }

    /// The epoch's order of samples 0..<count into `buffer`: `EpochOrder.shuffled` for a
    /// dataset in memory; for a streamed pack, blocks in random order through a shuffle
    /// buffer (`PackStream.epochOrder`), so that streaming reads each needed block once.
    public func epochOrder(count: Int, generator: inout SeededGenerator, into buffer: UnsafeMutableBufferPointer<Int32>) {
        if let stream = dataset.stream {
            stream.epochOrder(count: count, generator: &generator, into: buffer)
        } else {
            EpochOrder.shuffled(count: count, generator: &generator, into: buffer)
        }
    }

    /// Announces the samples the next batches will ask for, in order (a training pass, a
    /// scoring pass, an evaluation): a streamed pack starts prefetching the blocks holding
    /// them. Nothing to do for a dataset in memory.
    public func beginPass(_ indices: UnsafeBufferPointer<Int32>) {
        guard let stream = dataset.stream, failureRecord.error == nil else { return }
        do throws(DataError) { try stream.beginPass(indices) } catch { failureRecord.error = error }
    }

    private func write(
        indices: UnsafeBufferPointer<Int32>, input: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>,
        augmentation: Augmentation, generator: inout SeededGenerator
    ) {
        let batch = indices.count
        table.withUnsafeBufferPointer { table in
            if let stream = dataset.stream {
                for (slot, rawIndex) in indices.enumerated() {
                    let index = Int(rawIndex)
                    precondition(index >= 0 && index < dataset.count, "sample index \(index) is outside 0..<\(dataset.count)")
                    var read: UnsafePointer<UInt8>? = nil
                    if failureRecord.error == nil {
                        do throws(DataError) { read = try stream.record(index) } catch { failureRecord.error = error }
                    }
                    guard let record = read else {
                        labels[slot] = 0
                        writeZeros(slot: slot, batch: batch, input: input)
                        continue
                    }
                    labels[slot] = Int32(record[0])
                    writeSample(source: record + 1, slot: slot, batch: batch, input: input, table: table.baseAddress!,
                                augmentation: augmentation, generator: &generator)
                }
                return
            }
            dataset.pixels.withUnsafeBufferPointer { pixels in
                for (slot, rawIndex) in indices.enumerated() {
                    let index = Int(rawIndex)
                    precondition(index >= 0 && index < dataset.count, "sample index \(index) is outside 0..<\(dataset.count)")
                    labels[slot] = Int32(dataset.labels[index])
                    writeSample(source: pixels.baseAddress! + index * dataset.sampleBytes, slot: slot, batch: batch,
                                input: input, table: table.baseAddress!, augmentation: augmentation, generator: &generator)
                }
            }
        }
    }

    /// Zeros in batch slot `slot` (a sample that could not be read).
    private func writeZeros(slot: Int, batch: Int, input: UnsafeMutablePointer<Float>) {
        let plane = dataset.height * dataset.width
        for channel in 0..<dataset.channels {
            (input + (channel * batch + slot) * plane).update(repeating: 0, count: plane)
        }
    }

    /// Normalises (and augments) one sample's pixels [C, H, W] into batch slot `slot`.
    @inline(__always)
    private func writeSample(
        source sample: UnsafePointer<UInt8>, slot: Int, batch: Int, input: UnsafeMutablePointer<Float>,
        table: UnsafePointer<Float>, augmentation: Augmentation, generator: inout SeededGenerator
    ) {
        let channels = dataset.channels, height = dataset.height, width = dataset.width
        let plane = height * width
        let padding = augmentation.padding
        // Offsets of the crop window relative to the unpadded image: dy, dx in -P...P.
        var dy = 0, dx = 0, flip = false
        if padding > 0 {
            dy = generator.below(2 * padding + 1) - padding
            dx = generator.below(2 * padding + 1) - padding
        }
        if augmentation.horizontalFlip { flip = generator.next() >> 63 == 1 }
        for channel in 0..<channels {
            let source = sample + channel * plane
            let target = input + (channel * batch + slot) * plane
            let lookup = table + channel * 256
            if dy == 0 && dx == 0 && !flip {
                for pixel in 0..<plane { target[pixel] = lookup[Int(source[pixel])] }
            } else {
                BatchAssembler.shifted(target: target, source: source, lookup: lookup,
                                       height: height, width: width, dy: dy, dx: dx, flip: flip)
            }
        }
    }

    /// out[y, x] = in[y + dy, x' + dx] with x' = W-1-x when flipped, else x; lookup[0] outside.
    @inline(__always)
    private static func shifted(
        target: UnsafeMutablePointer<Float>, source: UnsafePointer<UInt8>, lookup: UnsafePointer<Float>,
        height: Int, width: Int, dy: Int, dx: Int, flip: Bool
    ) {
        let fill = lookup[0]
        for y in 0..<height {
            let row = target + y * width
            let sourceY = y + dy
            if sourceY < 0 || sourceY >= height {
                for x in 0..<width { row[x] = fill }
                continue
            }
            let sourceRow = source + sourceY * width
            for x in 0..<width {
                let sourceX = (flip ? width - 1 - x : x) + dx
                row[x] = sourceX >= 0 && sourceX < width ? lookup[Int(sourceRow[sourceX])] : fill
            }
        }
    }
}

/// Where a `BatchAssembler` keeps its first read error (the assembler is a value; its copies
/// share this).
final class FailureRecord {
    var error: DataError? = nil
}

/// Orders of sample indices for an epoch, written into caller buffers (no allocation).
public enum EpochOrder {
    /// buffer[0..<count] = a uniform random permutation of 0..<count (Fisher-Yates, drawing
    /// `below(i + 1)` for i = count-1 down to 1).
    public static func shuffled(count: Int, generator: inout SeededGenerator, into buffer: UnsafeMutableBufferPointer<Int32>) {
        precondition(count >= 0 && count <= buffer.count && count <= Int(Int32.max),
                     "epoch order of \(count) samples needs a buffer of at least that many")
        sequential(count: count, into: buffer)
        var position = count - 1
        while position > 0 {
            let other = generator.below(position + 1)
            buffer.swapAt(position, other)
            position -= 1
        }
    }

    /// buffer[0..<count] = 0, 1, ..., count-1.
    public static func sequential(count: Int, into buffer: UnsafeMutableBufferPointer<Int32>) {
        precondition(count >= 0 && count <= buffer.count, "epoch order of \(count) samples needs a buffer of at least that many")
        for index in 0..<count { buffer[index] = Int32(index) }
    }
}
