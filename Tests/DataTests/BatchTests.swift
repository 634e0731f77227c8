import AllocCounting
import Data
import Platform
import Testing

@Suite(.serialized) struct BatchTests {
    /// A synthetic dataset of `count` samples [channels, height, width] whose bytes encode the
    /// sample index, channel and position.
    static func synthetic(count: Int, channels: Int, height: Int, width: Int,
                          normalization: Normalization? = nil) throws -> Dataset {
        var pixels: [UInt8] = []
        for sample in 0..<count {
            for channel in 0..<channels {
                for position in 0..<(height * width) {
                    pixels.append(UInt8((sample * 31 + channel * 101 + position * 7 + 1) % 256))
                }
            }
        }
        let labels = (0..<count).map { UInt8($0 % 10) }
        return try Dataset(name: "synthetic", pixels: pixels, labels: labels, channels: channels, height: height,
                           width: width, classCount: 10, normalization: normalization)
    }

    /// Naive reference for one sample: pad with zeros by P into an (H+2P) x (W+2P) image, cut at
    /// (top, left), mirror if `flip`, normalise. Returns [C, H, W].
    static func reference(_ dataset: Dataset, sample: Int, padding: Int, top: Int, left: Int, flip: Bool) -> [Float] {
        let height = dataset.height, width = dataset.width
        let paddedHeight = height + 2 * padding, paddedWidth = width + 2 * padding
        var result: [Float] = []
        for channel in 0..<dataset.channels {
            var padded = [[UInt8]](repeating: [UInt8](repeating: 0, count: paddedWidth), count: paddedHeight)
            for y in 0..<height {
                for x in 0..<width {
                    padded[y + padding][x + padding] = dataset.pixels[((sample * dataset.channels + channel) * height + y) * width + x]
                }
            }
            for y in 0..<height {
                var row = (0..<width).map { padded[top + y][left + $0] }
                if flip { row.reverse() }
                for pixel in row {
                    let mean = Double(dataset.normalization.mean[channel]), std = Double(dataset.normalization.std[channel])
                    result.append(Float((Double(pixel) / 255 - mean) / std))
                }
            }
        }
        return result
    }

    /// Runs `assemble` and returns (input [C, N, H, W], labels).
    static func run(_ assembler: BatchAssembler, _ indices: [Int32], generator: inout SeededGenerator) -> ([Float], [Int32]) {
        let dataset = assembler.dataset
        var input = [Float](repeating: .nan, count: dataset.sampleBytes * indices.count + 1)
        var labels = [Int32](repeating: -1, count: indices.count + 1)
        input[input.count - 1] = 12345  // guard words after both outputs
        labels[labels.count - 1] = 777
        input.withUnsafeMutableBufferPointer { inputBuffer in
            labels.withUnsafeMutableBufferPointer { labelBuffer in
                assembler.assemble(indices: indices[...], input: inputBuffer.baseAddress!, labels: labelBuffer.baseAddress!,
                                   generator: &generator)
            }
        }
        #expect(input.last == 12345 && labels.last == 777, "assemble wrote past the batch")
        return (Array(input.dropLast()), Array(labels.dropLast()))
    }

    /// Sample `slot`'s [C, H, W] values out of a CNHW batch of `batch` samples.
    static func extract(_ input: [Float], slot: Int, batch: Int, dataset: Dataset) -> [Float] {
        let plane = dataset.height * dataset.width
        var result: [Float] = []
        for channel in 0..<dataset.channels {
            let base = (channel * batch + slot) * plane
            result += input[base..<base + plane]
        }
        return result
    }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }
    }

    @Test func placesEverySampleAtItsCNHWOffsetNormalised() throws {
        let normalization = Normalization(mean: [0.25, 0.5, 0.125], std: [0.5, 0.25, 2])
        let dataset = try Self.synthetic(count: 40, channels: 3, height: 5, width: 6, normalization: normalization)
        let assembler = BatchAssembler(dataset: dataset)
        let indices: [Int32] = [7, 0, 39, 7, 12]
        var generator = SeededGenerator(seed: 1)
        let (input, labels) = Self.run(assembler, indices, generator: &generator)
        let plane = 30, batch = indices.count
        for (slot, index) in indices.enumerated() {
            #expect(labels[slot] == Int32(dataset.labels[Int(index)]))
            for channel in 0..<3 {
                for position in 0..<plane {
                    let pixel = dataset.pixels[(Int(index) * 3 + channel) * plane + position]
                    let expected = (Float(pixel) / 255 - normalization.mean[channel]) / normalization.std[channel]
                    let got = input[(channel * batch + slot) * plane + position]
                    #expect(abs(got - expected) <= 1e-6, "slot \(slot) channel \(channel) position \(position)")
                }
            }
        }
        #expect(generator.state == SeededGenerator(seed: 1).state, "no augmentation draws nothing")
    }

    @Test func evaluationAssemblyIgnoresAugmentation() throws {
        let dataset = try Self.synthetic(count: 12, channels: 1, height: 7, width: 7)
        let indices: [Int32] = [3, 11, 0]
        var plainGenerator = SeededGenerator(seed: 9)
        let (expected, _) = Self.run(BatchAssembler(dataset: dataset), indices, generator: &plainGenerator)
        var input = [Float](repeating: 0, count: expected.count)
        var labels = [Int32](repeating: 0, count: 3)
        indices.withUnsafeBufferPointer { buffer in
            BatchAssembler(dataset: dataset, augmentation: .cropAndFlip)
                .assemble(indices: buffer, input: &input, labels: &labels)
        }
        #expect(input == expected && labels == [3, 1, 0])
    }

    @Test func noPaddingAndNoFlipIsTheIdentity() throws {
        let dataset = try Self.synthetic(count: 20, channels: 2, height: 4, width: 9)
        let indices: [Int32] = [19, 2, 5]
        var generator = SeededGenerator(seed: 42)
        let (plain, _) = Self.run(BatchAssembler(dataset: dataset), indices, generator: &generator)
        let (augmented, _) = Self.run(BatchAssembler(dataset: dataset, augmentation: Augmentation(padding: 0, horizontalFlip: false)),
                                      indices, generator: &generator)
        #expect(plain == augmented)
        for (slot, index) in indices.enumerated() {
            #expect(Self.close(Self.extract(plain, slot: slot, batch: 3, dataset: dataset),
                               Self.reference(dataset, sample: Int(index), padding: 0, top: 0, left: 0, flip: false)))
        }
    }

    @Test func flipReversesEveryRow() throws {
        let dataset = try Self.synthetic(count: 64, channels: 2, height: 3, width: 5)
        let indices = (0..<64).map { Int32($0) }
        var generator = SeededGenerator(seed: 7)
        var mirror = generator
        let (input, _) = Self.run(BatchAssembler(dataset: dataset, augmentation: Augmentation(horizontalFlip: true)),
                                  indices, generator: &generator)
        var flips = 0
        for slot in 0..<64 {
            let flip = mirror.next() >> 63 == 1  // the documented draw: one next() per sample
            flips += flip ? 1 : 0
            let got = Self.extract(input, slot: slot, batch: 64, dataset: dataset)
            let unflipped = Self.reference(dataset, sample: slot, padding: 0, top: 0, left: 0, flip: false)
            // Row by row: flipped rows are the reversed source rows.
            var expected: [Float] = []
            for row in 0..<(2 * 3) {
                let source = Array(unflipped[row * 5..<(row + 1) * 5])
                expected += flip ? source.reversed() : source
            }
            #expect(Self.close(got, expected), "slot \(slot) flip \(flip)")
        }
        #expect(flips > 10 && flips < 54, "about half the samples flip: \(flips)")
        #expect(generator.state == mirror.state)
    }

    @Test(arguments: [(1, false), (2, false), (4, true), (3, true)])
    func cropMatchesANaivePadAndCut(padding: Int, flip: Bool) throws {
        // Non-square, odd sizes; padding larger than a side for the 3x5 case.
        for (height, width) in [(28, 28), (3, 5), (7, 4)] {
            let dataset = try Self.synthetic(count: 50, channels: 2, height: height, width: width)
            let indices: [Int32] = (0..<50).map { Int32(($0 * 17) % 50) }
            let seed = UInt64(padding * 1000 + height)
            var generator = SeededGenerator(seed: seed)
            var mirror = generator
            let assembler = BatchAssembler(dataset: dataset, augmentation: Augmentation(padding: padding, horizontalFlip: flip))
            let (input, labels) = Self.run(assembler, indices, generator: &generator)
            var offsets = Set<Int>()
            for (slot, index) in indices.enumerated() {
                let top = mirror.below(2 * padding + 1)
                let left = mirror.below(2 * padding + 1)
                let flipped = flip ? mirror.next() >> 63 == 1 : false
                offsets.insert(top * 100 + left)
                let expected = Self.reference(dataset, sample: Int(index), padding: padding, top: top, left: left, flip: flipped)
                let got = Self.extract(input, slot: slot, batch: indices.count, dataset: dataset)
                #expect(Self.close(got, expected), "\(height)x\(width) P \(padding) seed \(seed) slot \(slot) top \(top) left \(left) flip \(flipped)")
                #expect(labels[slot] == Int32(dataset.labels[Int(index)]))
            }
            #expect(offsets.count > 1, "the crop offsets vary")
            #expect(generator.state == mirror.state, "draw order as documented")
        }
    }

    @Test func paddingIsPixelZeroNormalised() throws {
        let normalization = Normalization(mean: [0.3], std: [0.7])
        let dataset = try Dataset(name: "white", pixels: [UInt8](repeating: 255, count: 16), labels: [1],
                                  channels: 1, height: 4, width: 4, classCount: 2, normalization: normalization)
        var generator = SeededGenerator(seed: 3)
        var sawPadding = false
        let assembler = BatchAssembler(dataset: dataset, augmentation: Augmentation(padding: 2))
        for _ in 0..<20 {
            let (input, _) = Self.run(assembler, [0], generator: &generator)
            for value in input {
                let isPad = abs(value - (0 - 0.3) / 0.7) < 1e-6
                let isWhite = abs(value - (1 - 0.3) / 0.7) < 1e-6
                #expect(isPad || isWhite)
                sawPadding = sawPadding || isPad
            }
        }
        #expect(sawPadding)
        #expect(assembler.normalizedValue(0, channel: 0) == normalization.normalize(0, channel: 0))
    }

    @Test func sameSeedSameBatchOtherSeedOtherBatch() throws {
        let dataset = try Self.synthetic(count: 100, channels: 1, height: 28, width: 28)
        let assembler = BatchAssembler(dataset: dataset, augmentation: .cropAndFlip)
        let indices = (0..<32).map { Int32($0 * 3) }
        var first = SeededGenerator(seed: 2024), second = SeededGenerator(seed: 2024), other = SeededGenerator(seed: 2025)
        let (a, _) = Self.run(assembler, indices, generator: &first)
        let (b, _) = Self.run(assembler, indices, generator: &second)
        let (c, _) = Self.run(assembler, indices, generator: &other)
        #expect(a == b && first.state == second.state)
        #expect(a != c)
    }

    /// Shuffling and assembling 40 augmented batches make no allocator call (Tests/CAllocCounter).
    @Test func assemblyAllocatesNothing() throws {
        let dataset = try Self.synthetic(count: 256, channels: 1, height: 28, width: 28)
        let assembler = BatchAssembler(dataset: dataset, augmentation: .cropAndFlip)
        let order = UnsafeMutableBufferPointer<Int32>.allocate(capacity: 256)
        let input = UnsafeMutablePointer<Float>.allocate(capacity: 64 * 784)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        defer { order.deallocate(); input.deallocate(); labels.deallocate() }
        var generator = SeededGenerator(seed: 5)
        EpochOrder.shuffled(count: 256, generator: &generator, into: order)
        assembler.assemble(indices: UnsafeBufferPointer(rebasing: order[0..<64]), input: input, labels: labels, generator: &generator)
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let (_, calls) = tracker.counting {
            for _ in 0..<10 {
                EpochOrder.shuffled(count: 256, generator: &generator, into: order)
                for start in stride(from: 0, to: 256, by: 64) {
                    assembler.assemble(indices: UnsafeBufferPointer(rebasing: order[start..<start + 64]), input: input,
                                       labels: labels, generator: &generator)
                }
            }
        }
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer")
        #expect(calls.total == 0, "40 batches made \(calls); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
    }
}

@Suite struct EpochOrderTests {
    @Test func shuffledIsAPermutationAndDeterministic() {
        for count in [0, 1, 2, 7, 1000] {
            var a = [Int32](repeating: -1, count: count + 3)
            var b = a
            var generatorA = SeededGenerator(seed: 11), generatorB = SeededGenerator(seed: 11)
            a.withUnsafeMutableBufferPointer { EpochOrder.shuffled(count: count, generator: &generatorA, into: $0) }
            b.withUnsafeMutableBufferPointer { EpochOrder.shuffled(count: count, generator: &generatorB, into: $0) }
            #expect(a == b)
            #expect(a[0..<count].sorted() == (0..<count).map { Int32($0) }, "every index exactly once")
            #expect(a[count...].allSatisfy { $0 == -1 }, "nothing written past count")
            if count == 1000 {
                #expect(Array(a[0..<count]) != (0..<count).map { Int32($0) })
                var c = [Int32](repeating: 0, count: count)
                var generatorC = SeededGenerator(seed: 12)
                c.withUnsafeMutableBufferPointer { EpochOrder.shuffled(count: count, generator: &generatorC, into: $0) }
                #expect(Array(a[0..<count]) != c)
            }
        }
    }

    @Test func shuffledIsUniformOverSmallPermutations() {
        // 3! = 6 orders, 60000 draws: each within 5% of 10000.
        var tally: [[Int32]: Int] = [:]
        var generator = SeededGenerator(seed: 99)
        var order = [Int32](repeating: 0, count: 3)
        for _ in 0..<60000 {
            order.withUnsafeMutableBufferPointer { EpochOrder.shuffled(count: 3, generator: &generator, into: $0) }
            tally[order, default: 0] += 1
        }
        #expect(tally.count == 6)
        #expect(tally.values.allSatisfy { abs($0 - 10000) < 500 }, "\(tally)")
    }
}
