import Testing
import Kernels

/// The sweep every convolution kernel is checked over: kernels 1x1, 3x3, 5x5 and 2x3,
/// strides 1 and 2, padding 0/1/2, odd and vector-width±1 image sizes, square and not.
func convShapes(kernel: (Int, Int)) -> [Conv2DShape] {
    let sizes = [(1, 1), (7, 9), (9, 7), (floatVectorWidth + 1, floatVectorWidth - 1), (5, 2 * floatVectorWidth + 3)]
    let channelPairs = [(1, 3), (3, 5), (5, 1)]
    var shapes: [Conv2DShape] = []
    for stride in [1, 2] {
        for pad in [0, 1, 2] {
            for (height, width) in sizes {
                for batch in [1, 3] {
                    for (inChannels, outChannels) in channelPairs {
                        let shape = Conv2DShape(
                            batch: batch, inChannels: inChannels, outChannels: outChannels, inHeight: height,
                            inWidth: width, kernelHeight: kernel.0, kernelWidth: kernel.1,
                            strideH: stride, strideW: stride, padH: pad, padW: pad)
                        if shape.isValid { shapes.append(shape) }
                    }
                }
            }
        }
    }
    return shapes
}

func describe(_ s: Conv2DShape) -> String {
    "N\(s.batch) \(s.inChannels)->\(s.outChannels) \(s.inHeight)x\(s.inWidth) k\(s.kernelHeight)x\(s.kernelWidth) s\(s.strideH) p\(s.padH)"
}

let convKernels = [(1, 1), (3, 3), (5, 5), (2, 3)]

/// `backwardData` with `accumulate: false` (a gradient buffer's first writer) over a buffer
/// of NaNs gives what it adds into zeros, bit for bit up to the sign of a zero: it writes every
/// element and reads none. Whatever path the shape, context and scratch take. (Some sweep
/// shapes have an all-zero data gradient: every tap in the padding.)
func checkOverwritingData(_ shape: Conv2DShape, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                          scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext, label: String) {
    var added = [Float](repeating: 0, count: shape.inputCount)
    Conv2D.backwardData(dInput: &added, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                        scratchCount: scratchCount, context: context)
    var written = [Float](repeating: .nan, count: shape.inputCount)
    Conv2D.backwardData(dInput: &written, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                        scratchCount: scratchCount, context: context, accumulate: false)
    // (Float ==: a NaN left unwritten differs, +0 and -0 do not)
    let differing = zip(added, written).filter { $0 != $1 }.count
    #expect(differing == 0, "Conv2D.backwardData \(label): writing differs from adding into zeros at \(differing) of \(shape.inputCount)")
}

/// Runs all three Conv2D kernels against their twins for one shape. `scratchCount` nil means
/// the recommended size; otherwise it forces small chunks.
func checkConv(_ shape: Conv2DShape, context: KernelContext, seed: UInt64, scratchCount requested: Int? = nil,
               tolerance: Float = 2e-5) {
    var random = SeededRandom(seed: seed)
    let input = GuardedBuffer(count: shape.inputCount, values: random.floats(shape.inputCount))
    let weights = GuardedBuffer(count: shape.weightCount, values: random.floats(shape.weightCount))
    let dOut = GuardedBuffer(count: shape.outputCount, values: random.floats(shape.outputCount))
    let scratchCount = requested ?? Conv2D.scratchFloats(shape: shape, threads: context.threads)
    let scratch = GuardedBuffer(count: scratchCount)
    let label = describe(shape) + " threads \(context.threads) scratch \(scratchCount)"
    // A 1-element output normalises by its own value, which cancellation can make ~1e-4 of the
    // terms summed into it; float rounding of those terms is then a large fraction of it.
    func bound(_ count: Int) -> Float { count < 4 ? 20 * tolerance : tolerance }

    checkAgainstTwin("Conv2D.forward", shape: label, seed: seed, outputCounts: [shape.outputCount], tolerance: bound(shape.outputCount)) { outputs, fast in
        if fast {
            Conv2D.forward(out: outputs[0], input: input.pointer, weights: weights.pointer, shape: shape,
                           scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        } else {
            Conv2D.naiveForward(out: outputs[0], input: input.pointer, weights: weights.pointer, shape: shape)
        }
    }
    checkAgainstTwin("Conv2D.backwardData", shape: label, seed: seed, outputCounts: [shape.inputCount], tolerance: bound(shape.inputCount)) { outputs, fast in
        if fast {
            Conv2D.backwardData(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape,
                                scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        } else {
            Conv2D.naiveBackwardData(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape)
        }
    }
    checkOverwritingData(shape, dOut: dOut.pointer, weights: weights.pointer, scratch: scratch.pointer,
                         scratchCount: scratchCount, context: context, label: label)
    if Conv2D.usesImplicitForward(shape) {
        // The implicit GEMM (forward's path unless Winograd takes the shape) is bit for bit the
        // column path (same packed values, same K blocks, same micro-kernel).
        let implicitOut = GuardedBuffer(count: shape.outputCount)
        let columnOut = GuardedBuffer(count: shape.outputCount)
        Conv2D.forwardImplicit(out: implicitOut.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                               context: context)
        Conv2D.forwardColumns(out: columnOut.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                              scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        let differing = (0..<shape.outputCount).filter { implicitOut.pointer[$0].bitPattern != columnOut.pointer[$0].bitPattern }
        #expect(differing.isEmpty, "Conv2D \(label): implicit and column forward differ at \(differing.count) outputs")
        #expect(implicitOut.firstDamagedGuard() == nil && columnOut.firstDamagedGuard() == nil)
    }
    if Conv2D.phasedBlockImages(shape, scratchCount: scratchCount) > 0 {
        // forward took the phase planes: bit for bit the column path (same packed values, same
        // K blocks, same micro-kernel).
        let phasedOut = GuardedBuffer(count: shape.outputCount)
        let columnOut = GuardedBuffer(count: shape.outputCount)
        Conv2D.forward(out: phasedOut.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                       scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        Conv2D.forwardColumns(out: columnOut.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                              scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        let differing = (0..<shape.outputCount).filter { phasedOut.pointer[$0].bitPattern != columnOut.pointer[$0].bitPattern }
        #expect(differing.isEmpty, "Conv2D \(label): phased and column forward differ at \(differing.count) outputs")
        #expect(phasedOut.firstDamagedGuard() == nil && columnOut.firstDamagedGuard() == nil)
    }
    if Conv2D.transposedShape(shape) != nil || Conv2D.phasedBackwardBlockImages(shape, scratchCount: scratchCount) > 0 {
        // backwardData took the transposed convolution or the phase planes; the column path must
        // stay right too.
        checkAgainstTwin("Conv2D.backwardDataColumns", shape: label, seed: seed, outputCounts: [shape.inputCount], tolerance: bound(shape.inputCount)) { outputs, fast in
            if fast {
                Conv2D.backwardDataColumns(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape,
                                           scratch: scratch.pointer, scratchCount: scratchCount, context: context)
            } else {
                Conv2D.naiveBackwardData(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape)
            }
        }
    }
    checkAgainstTwin("Conv2D.backwardWeights", shape: label, seed: seed, outputCounts: [shape.weightCount], tolerance: bound(shape.weightCount)) { outputs, fast in
        if fast {
            Conv2D.backwardWeights(dWeights: outputs[0], dOut: dOut.pointer, input: input.pointer, shape: shape,
                                   scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        } else {
            Conv2D.naiveBackwardWeights(dWeights: outputs[0], dOut: dOut.pointer, input: input.pointer, shape: shape)
        }
    }
    if Conv2D.directWeightBlockImages(shape, scratchCount: scratchCount) > 0 {
        // backwardWeights took the direct correlation; the column path must stay right too.
        checkAgainstTwin("Conv2D.backwardWeightsColumns", shape: label, seed: seed, outputCounts: [shape.weightCount], tolerance: bound(shape.weightCount)) { outputs, fast in
            if fast {
                Conv2D.backwardWeightsColumns(dWeights: outputs[0], dOut: dOut.pointer, input: input.pointer, shape: shape,
                                              scratch: scratch.pointer, scratchCount: scratchCount, context: context)
            } else {
                Conv2D.naiveBackwardWeights(dWeights: outputs[0], dOut: dOut.pointer, input: input.pointer, shape: shape)
            }
        }
    }
    #expect(scratch.firstDamagedGuard() == nil, "Conv2D \(label): wrote past the scratch")
    #expect(input.firstDamagedGuard() == nil && weights.firstDamagedGuard() == nil && dOut.firstDamagedGuard() == nil)
}

func checkDepthwise(_ shape: Conv2DShape, context: KernelContext, seed: UInt64) {
    var random = SeededRandom(seed: seed)
    let taps = shape.kernelHeight * shape.kernelWidth
    let input = GuardedBuffer(count: shape.inputCount, values: random.floats(shape.inputCount))
    let weights = GuardedBuffer(count: shape.inChannels * taps, values: random.floats(shape.inChannels * taps))
    let dOut = GuardedBuffer(count: shape.outputCount, values: random.floats(shape.outputCount))
    let label = describe(shape) + " threads \(context.threads)"
    checkAgainstTwin("DepthwiseConv2D.forward", shape: label, seed: seed, outputCounts: [shape.outputCount]) { outputs, fast in
        if fast {
            DepthwiseConv2D.forward(out: outputs[0], input: input.pointer, weights: weights.pointer, shape: shape, context: context)
        } else {
            DepthwiseConv2D.naiveForward(out: outputs[0], input: input.pointer, weights: weights.pointer, shape: shape)
        }
    }
    checkAgainstTwin("DepthwiseConv2D.backwardData", shape: label, seed: seed, outputCounts: [shape.inputCount]) { outputs, fast in
        if fast {
            DepthwiseConv2D.backwardData(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape, context: context)
        } else {
            DepthwiseConv2D.naiveBackwardData(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape)
        }
    }
    checkAgainstTwin("DepthwiseConv2D.backwardWeights", shape: label, seed: seed, outputCounts: [shape.inChannels * taps]) { outputs, fast in
        if fast {
            DepthwiseConv2D.backwardWeights(dWeights: outputs[0], dOut: dOut.pointer, input: input.pointer, shape: shape, context: context)
        } else {
            DepthwiseConv2D.naiveBackwardWeights(dWeights: outputs[0], dOut: dOut.pointer, input: input.pointer, shape: shape)
        }
    }
}

@Suite struct ConvTests {
    @Test(arguments: 0..<convKernels.count)
    func conv2DMatchesNaiveTwin(kernelIndex: Int) throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2, wideKernels: false)]
        for (index, shape) in convShapes(kernel: convKernels[kernelIndex]).enumerated() {
            let context = contexts[index % 2]
            // Every third shape runs with the smallest scratch, one output row per chunk.
            let scratch = index % 3 == 0 && !shape.isPointwise ? Conv2D.minimumScratchFloats(shape: shape) : nil
            checkConv(shape, context: context, seed: UInt64(1000 * kernelIndex + index), scratchCount: scratch)
        }
    }

    /// The reference models' layers at batch 2: large enough for the vector runs, threaded
    /// im2col/col2im and several chunks.
    @Test func conv2DModelLayersMatchNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2, wideKernels: false)]
        let layers = [
            Conv2DShape(batch: 2, inChannels: 1, outChannels: 32, height: 28, width: 28, kernel: 3, padding: 1),
            Conv2DShape(batch: 2, inChannels: 16, outChannels: 32, height: 28, width: 28, kernel: 3, stride: 2, padding: 1),
            Conv2DShape(batch: 2, inChannels: 32, outChannels: 64, height: 14, width: 14, kernel: 3, padding: 1),
            Conv2DShape(batch: 2, inChannels: 16, outChannels: 32, height: 28, width: 28, kernel: 1, stride: 2),
            Conv2DShape(batch: 2, inChannels: 32, outChannels: 16, height: 14, width: 14, kernel: 1),
            Conv2DShape(batch: 2, inChannels: 16, outChannels: 16, height: 28, width: 28, kernel: 3, padding: 1),
            Conv2DShape(batch: 2, inChannels: 64, outChannels: 64, height: 7, width: 7, kernel: 3, padding: 1),
            // Stride 2 on even sizes (phase planes), odd channel counts, a non-square image.
            Conv2DShape(batch: 3, inChannels: 5, outChannels: 7, height: 8, width: 2 * floatVectorWidth + 4, kernel: 3, stride: 2, padding: 1),
            Conv2DShape(batch: 2, inChannels: 32, outChannels: 64, height: 14, width: 14, kernel: 3, stride: 2, padding: 1),
        ]
        #expect(layers.filter { Conv2D.usesPhasedForward($0) }.count == 3)
        // The 3x3 stride-2 layers take the phase planes for backward data too, where the
        // recommended scratch holds them (the smallest scratch below keeps them on the column
        // path). At batch 2 the 32->64 layer's im2col chunk (28,224 floats) is smaller than its
        // rearranged weights and one padded image (36,480); at the models' batch 64 it is not.
        // With AVX-512 the scratch also holds the weight gradient with output channels in the
        // lanes (sums and a block of images: 57,376 floats), and then it fits.
        func phasedData(_ shape: Conv2DShape) -> Bool {
            Conv2D.phasedBackwardBlockImages(shape, scratchCount: Conv2D.scratchFloats(shape: shape, threads: 1)) > 0
        }
        #expect(layers.filter(phasedData).count == (contexts[0].wideKernels ? 3 : 2))
        #expect(layers.filter { $0.strideH == 2 && $0.kernelHeight == 3 }.map {
            phasedData(Conv2DShape(batch: 64, inChannels: $0.inChannels, outChannels: $0.outChannels, inHeight: $0.inHeight,
                                   inWidth: $0.inWidth, kernelHeight: 3, kernelWidth: 3, strideH: 2, strideW: 2, padH: 1, padW: 1))
        } == [true, true, true])
        // The 3x3 stride-1 layers take the transposed backward-data path, the others do not.
        #expect(layers.filter { Conv2D.transposedShape($0) != nil }.count == 3)
        for (index, shape) in layers.enumerated() {
            for context in contexts {
                checkConv(shape, context: context, seed: UInt64(77 + index), tolerance: 1e-4)
                if !shape.isPointwise {
                    checkConv(shape, context: context, seed: UInt64(88 + index),
                              scratchCount: 3 * Conv2D.minimumScratchFloats(shape: shape) + 5, tolerance: 1e-4)
                }
            }
        }
    }

    /// Winograd F(2x2, 3x3), forward and the flipped accumulate form backwardData uses: odd and
    /// even image sizes from 1x1 (partial tiles, a tile row's last vector group spilling into the
    /// next row), channel counts off the micro-tile, scratch for one tile row per chunk up to the
    /// target, both micro-kernel widths; against the naive twins, and bit for bit the same for
    /// any thread count.
    @Test func winogradMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2),
                        try KernelContext(threads: 3, wideKernels: false)]
        let shapes = [
            Conv2DShape(batch: 2, inChannels: 16, outChannels: 16, height: 28, width: 28, kernel: 3, padding: 1),
            Conv2DShape(batch: 3, inChannels: 17, outChannels: 21, inHeight: 7, inWidth: 9, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
            Conv2DShape(batch: 1, inChannels: 16, outChannels: 19, inHeight: 1, inWidth: 1, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
            Conv2DShape(batch: 2, inChannels: 33, outChannels: 16, inHeight: 2, inWidth: 11, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
            Conv2DShape(batch: 2, inChannels: 64, outChannels: 64, height: 7, width: 7, kernel: 3, padding: 1),
            Conv2DShape(batch: 2, inChannels: 32, outChannels: 40, inHeight: 13, inWidth: 2 * floatVectorWidth + 3, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
        ]
        #expect(shapes.allSatisfy { Conv2D.usesWinograd($0) })
        #expect(!Conv2D.usesWinograd(Conv2DShape(batch: 2, inChannels: 8, outChannels: 16, height: 8, width: 8, kernel: 3, padding: 1)))
        #expect(!Conv2D.usesWinograd(Conv2DShape(batch: 2, inChannels: 16, outChannels: 16, height: 8, width: 8, kernel: 3, stride: 2, padding: 1)))
        for (index, shape) in shapes.enumerated() {
            guard let transposed = Conv2D.transposedShape(shape) else { Issue.record("no transposed shape"); continue }
            var random = SeededRandom(seed: UInt64(500 + index))
            let input = GuardedBuffer(count: shape.inputCount, values: random.floats(shape.inputCount))
            let weights = GuardedBuffer(count: shape.weightCount, values: random.floats(shape.weightCount))
            let dOut = GuardedBuffer(count: shape.outputCount, values: random.floats(shape.outputCount))
            var firstForward: [Float]? = nil, firstData: [Float]? = nil
            for context in contexts {
                let full = max(Conv2D.winogradScratchFloats(shape, threads: context.threads),
                               Conv2D.winogradScratchFloats(transposed, threads: context.threads))
                // The smallest scratch: one tile row per chunk, on every thread.
                let tight = max(Conv2D.winogradMinimumScratchFloats(shape, threads: context.threads),
                                Conv2D.winogradMinimumScratchFloats(transposed, threads: context.threads))
                #expect(tight <= full)
                for scratchCount in [full, tight] {
                    #expect(Conv2D.winogradFits(shape, scratchCount: scratchCount, context: context))
                    #expect(!Conv2D.winogradFits(shape, scratchCount: Conv2D.winogradMinimumScratchFloats(shape, threads: context.threads) - 1, context: context))
                    let scratch = GuardedBuffer(count: scratchCount)
                    let label = describe(shape) + " threads \(context.threads) wide \(context.wideKernels) scratch \(scratchCount)"
                    var forwardResult: [Float] = []
                    checkAgainstTwin("Conv2D.forwardWinograd", shape: label, seed: UInt64(index), outputCounts: [shape.outputCount],
                                     tolerance: 1e-4) { outputs, fast in
                        if fast {
                            Conv2D.forwardWinograd(out: outputs[0], input: input.pointer, weights: weights.pointer, shape: shape,
                                                   scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                            forwardResult = Array(UnsafeBufferPointer(start: outputs[0], count: shape.outputCount))
                        } else {
                            Conv2D.naiveForward(out: outputs[0], input: input.pointer, weights: weights.pointer, shape: shape)
                        }
                    }
                    var dataResult: [Float] = []
                    checkAgainstTwin("Conv2D.backwardData (Winograd)", shape: label, seed: UInt64(index), outputCounts: [shape.inputCount],
                                     tolerance: 1e-4) { outputs, fast in
                        if fast {
                            Conv2D.forwardWinograd(out: outputs[0], input: dOut.pointer, weights: weights.pointer, shape: transposed,
                                                   flipped: true, accumulate: true, scratch: scratch.pointer,
                                                   scratchCount: scratchCount, context: context)
                            dataResult = Array(UnsafeBufferPointer(start: outputs[0], count: shape.inputCount))
                        } else {
                            Conv2D.naiveBackwardData(dInput: outputs[0], dOut: dOut.pointer, weights: weights.pointer, shape: shape)
                        }
                    }
                    #expect(scratch.firstDamagedGuard() == nil, "Winograd \(label): wrote past the scratch")
                    // Same bits for every thread count and chunk size (each tile is computed alone);
                    // the AVX2 and AVX-512 micro-kernels agree bit for bit as well.
                    if let firstForward, let firstData {
                        #expect(forwardResult == firstForward, "Winograd \(label): forward differs from the first run")
                        #expect(dataResult == firstData, "Winograd \(label): backwardData differs from the first run")
                    } else {
                        firstForward = forwardResult
                        firstData = dataResult
                    }
                }
            }
        }
    }

    /// The dispatch: `forward` and `backwardData` take Winograd where `prefersWinograd` says so
    /// with the recommended scratch, and
    /// stay right against the naive twins either way; with `winograd: false` they do not take it.
    @Test func winogradDispatchMatchesNaiveTwin() throws {
        let shape = Conv2DShape(batch: 1, inChannels: 256, outChannels: 256, height: 14, width: 14, kernel: 3, padding: 1)
        func shape3x3(_ cin: Int, _ cout: Int, _ size: Int, stride: Int = 1) -> Conv2DShape {
            Conv2DShape(batch: 1, inChannels: cin, outChannels: cout, height: size, width: size, kernel: 3, stride: stride, padding: 1)
        }
        // AVX-512: 64 channels and more on maps of 14x14 and up.
        #expect(Conv2D.prefersWinograd(shape, wide: true))
        #expect(Conv2D.prefersWinograd(shape3x3(64, 64, 56), wide: true))
        #expect(!Conv2D.prefersWinograd(shape3x3(256, 256, 7), wide: true))
        #expect(!Conv2D.prefersWinograd(shape3x3(32, 32, 14), wide: true))
        #if arch(x86_64)
        // AVX2: every shape Winograd serves (16 channels and more, 3x3 stride 1 pad 1).
        #expect(Conv2D.prefersWinograd(shape, wide: false))
        #expect(Conv2D.prefersWinograd(shape3x3(16, 16, 28), wide: false))
        #expect(Conv2D.prefersWinograd(shape3x3(64, 64, 7), wide: false))
        #else
        // NEON: the AVX-512 rule.
        #expect(Conv2D.prefersWinograd(shape, wide: false))
        #expect(!Conv2D.prefersWinograd(shape3x3(16, 16, 28), wide: false))
        #expect(!Conv2D.prefersWinograd(shape3x3(64, 64, 7), wide: false))
        #endif
        #expect(!Conv2D.prefersWinograd(shape3x3(8, 16, 28), wide: false))
        #expect(!Conv2D.prefersWinograd(shape3x3(16, 32, 28, stride: 2), wide: false))
        let context = try KernelContext(threads: 2)
        let scratchCount = Conv2D.scratchFloats(shape: shape, threads: context.threads)
        #expect(Conv2D.winogradFits(shape, scratchCount: scratchCount, context: context) == Conv2D.prefersWinograd(shape, context: context))
        checkConv(shape, context: context, seed: 4242, tolerance: 1e-4)
        // With winograd: false the direct path runs: bit for bit the implicit GEMM.
        var random = SeededRandom(seed: 4243)
        let input = GuardedBuffer(count: shape.inputCount, values: random.floats(shape.inputCount))
        let weights = GuardedBuffer(count: shape.weightCount, values: random.floats(shape.weightCount))
        let scratch = GuardedBuffer(count: scratchCount)
        let direct = GuardedBuffer(count: shape.outputCount), implicit = GuardedBuffer(count: shape.outputCount)
        let viaDispatch = GuardedBuffer(count: shape.outputCount), winograd = GuardedBuffer(count: shape.outputCount)
        Conv2D.forward(out: direct.pointer, input: input.pointer, weights: weights.pointer, shape: shape, scratch: scratch.pointer,
                       scratchCount: scratchCount, context: context, winograd: false)
        Conv2D.forwardColumns(out: implicit.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                              scratch: scratch.pointer, scratchCount: scratchCount, context: context)
        #expect(direct.array == implicit.array)
        if Conv2D.prefersWinograd(shape, context: context) {
            Conv2D.forward(out: viaDispatch.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                           scratch: scratch.pointer, scratchCount: scratchCount, context: context)
            Conv2D.forwardWinograd(out: winograd.pointer, input: input.pointer, weights: weights.pointer, shape: shape,
                                   scratch: scratch.pointer, scratchCount: scratchCount, context: context)
            #expect(viaDispatch.array == winograd.array)
            #expect(viaDispatch.array != direct.array, "Winograd rounds differently from the direct sum")
        }
    }

    /// The direct weight gradient (3x3 pad 1; stride 1, and stride 2 on even sizes through the
    /// phase planes): odd channel counts (a last single output channel), images from 1x1 up,
    /// scratch for one image per block up to the whole batch, both micro-kernel widths; against
    /// the naive twin, and bit for bit the same for any thread count.
    @Test func directWeightGradientMatchesNaiveTwin() throws {
        // Default width (AVX-512 where the CPU has it) on 1 and 2 threads, AVX2 on 1 and 3.
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2),
                        try KernelContext(threads: 1, wideKernels: false), try KernelContext(threads: 3, wideKernels: false)]
        var index = 0
        var blockCounts = Set<Int>()
        var alignedBlockCounts = Set<Int>(), alignedStrides = Set<Int>()
        var strides = Set<Int>()
        for stride in [1, 2] {
        // (28, 28) and (4, 30) also take the lane-aligned layout at both strides (rows of 32 for 29
        // and 31 floats, 16 for 15 and 16)
        for (height, width) in [(1, 1), (2, 6), (7, 9), (14, 14), (floatVectorWidth + 1, 2 * floatVectorWidth + 3), (8, 2 * floatVectorWidth + 4),
                                (28, 28), (4, 30)] {
            for (inChannels, outChannels) in [(1, 16), (3, 5), (16, 16), (5, 1), (17, 3)] {
                let shape = Conv2DShape(batch: 5, inChannels: inChannels, outChannels: outChannels,
                                        height: height, width: width, kernel: 3, stride: stride, padding: 1)
                // One block per image, two images, the whole batch (Conv2D.directWeightBlockImages),
                // for the plain layout and for the AVX-512 tile's lane-aligned one (rows rounded up
                // to 16 floats, 3 or 2 shifted copies per input plane; it needs more scratch, and
                // falls back to the plain layout when one image does not fit).
                let sequences = inChannels * stride * stride + outChannels
                let perImage = sequences * (shape.outHeight + 1) * (shape.outWidth + 1)
                let slack = sequences * (3 * (shape.outWidth + 1) + 2 + 32)
                let alignedRow = (shape.outWidth + 1 + 15) / 16 * 16
                let alignedSequences = inChannels * stride * stride * (stride == 1 ? 3 : 2) + outChannels
                let alignedPerImage = alignedSequences * (shape.outHeight + 1) * alignedRow
                let alignedSlack = alignedSequences * (3 * alignedRow + 47)
                // (+ 16: the layout starts at the scratch's first 64-byte boundary)
                let scratchCounts = [1, 2, 5].map { $0 * perImage + slack } + [1, 2, 5].map { $0 * alignedPerImage + alignedSlack + 16 }
                for scratchCount in scratchCounts {
                    let blockImages = Conv2D.directWeightBlockImages(shape, scratchCount: scratchCount)
                    guard blockImages > 0 else { continue }  // odd sizes at stride 2, past the block limit
                    blockCounts.insert((shape.batch + blockImages - 1) / blockImages)
                    strides.insert(stride)
                    var random = SeededRandom(seed: UInt64(4000 + index))
                    let input = random.floats(shape.inputCount), dOut = random.floats(shape.outputCount)
                    let initial = random.floats(shape.weightCount)
                    let scratch = GuardedBuffer(count: scratchCount)
                    let alignedImages = Conv2D.directAlignedBlockImages(shape, scratchCount: scratchCount)
                    if alignedImages > 0 {
                        alignedBlockCounts.insert((shape.batch + alignedImages - 1) / alignedImages)
                        alignedStrides.insert(stride)
                    }
                    let label = describe(shape) + " scratch \(scratchCount) (\(blockImages) images per block, "
                        + "\(alignedImages) lane-aligned)"
                    var results: [[Float]] = []
                    for context in contexts {
                        checkAgainstTwin("Conv2D.backwardWeightsDirect", shape: label + " threads \(context.threads)",
                                         seed: UInt64(index), outputCounts: [shape.weightCount], tolerance: 1e-4) { outputs, fast in
                            if fast {
                                Conv2D.backwardWeightsDirect(dWeights: outputs[0], dOut: dOut, input: input, shape: shape,
                                                             scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                            } else {
                                Conv2D.naiveBackwardWeights(dWeights: outputs[0], dOut: dOut, input: input, shape: shape)
                            }
                        }
                        var dW = initial
                        Conv2D.backwardWeightsDirect(dWeights: &dW, dOut: dOut, input: input, shape: shape,
                                                     scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                        results.append(dW)
                    }
                    #expect(scratch.firstDamagedGuard() == nil, "\(label): wrote past the scratch")
                    // The thread count never changes a bit (the width may: other lanes, other sums).
                    #expect(zip(results[0], results[1]).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(label): 1 and 2 threads differ")
                    #expect(zip(results[2], results[3]).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(label): AVX2 1 and 3 threads differ")
                    index += 1
                }
            }
        }
        }
        #expect(index > 80 && blockCounts.contains(5) && blockCounts.contains(1) && strides == [1, 2])
        // The lane-aligned layout (run by the AVX-512 contexts) with one image per block and one block.
        #expect(alignedBlockCounts.contains(5) && alignedBlockCounts.contains(1) && alignedStrides == [1, 2])
    }

    /// The 3x3 stride-1 convolution with output channels in the lanes (AVX-512 only): sizes down
    /// to one 16-position tile (with an overlapping last tile), output channel counts that leave
    /// a partly used last vector, odd input channel counts; forward against the naive forward and
    /// the flipped, accumulating form against the naive data gradient of the original layer; no
    /// write past the scratch, the same bits on 1, 2 and 3 threads, and taken by `forward` and
    /// `backwardData` where preferred.
    /// A weight-gradient path (`run` adds dW into its first argument) on every context: against
    /// the naive twin, then from `initial` once more for the caller's bit comparisons; returns
    /// those results, one per context.
    func checkWeightPass(_ kernel: String, label: String, seed: UInt64, tolerance: Float, contexts: [KernelContext],
                         shape: Conv2DShape, input: [Float], dOut: [Float], initial: [Float],
                         run: (_ dWeights: UnsafeMutablePointer<Float>, _ context: KernelContext) -> Void) -> [[Float]] {
        var results: [[Float]] = []
        for context in contexts {
            checkAgainstTwin(kernel, shape: label + " threads \(context.threads)", seed: seed, outputCounts: [shape.weightCount],
                             tolerance: tolerance) { outputs, fast in
                if fast { run(outputs[0], context) }
                else { Conv2D.naiveBackwardWeights(dWeights: outputs[0], dOut: dOut, input: input, shape: shape) }
            }
            var dWeights = initial
            run(&dWeights, context)
            results.append(dWeights)
        }
        return results
    }

    typealias LanePass = (_ out: UnsafeMutablePointer<Float>, _ input: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                          _ scratch: UnsafeMutablePointer<Float>, _ scratchCount: Int, _ context: KernelContext) -> Void

    /// One shape of a lane path's forward and data gradient (the accumulating one): each against
    /// the naive twin on every context, guard words after `scratchCount` floats of scratch, the
    /// same bits on every thread count, and, where `prefersForward` / `prefersData`, the same
    /// bits through `Conv2D.forward` / `backwardData` with the scratch the plan gives. Returns
    /// how many of the two passes the dispatch took.
    func checkLanePasses(_ shape: Conv2DShape, seed: UInt64, contexts: [KernelContext], scratchCount: Int,
                         prefersForward: Bool, prefersData: Bool, forward: LanePass, data: LanePass) -> Int {
        var random = SeededRandom(seed: seed)
        let input = random.floats(shape.inputCount), weights = random.floats(shape.weightCount)
        let dOut = random.floats(shape.outputCount), initial = random.floats(shape.inputCount)
        let scratch = GuardedBuffer(count: scratchCount)
        var forwards: [[Float]] = [], datas: [[Float]] = []
        for context in contexts {
            let label = describe(shape) + " threads \(context.threads)"
            checkAgainstTwin("lane forward", shape: label, seed: seed, outputCounts: [shape.outputCount], tolerance: 1e-5) { outputs, fast in
                if fast { forward(outputs[0], input, weights, scratch.pointer, scratchCount, context) }
                else { Conv2D.naiveForward(out: outputs[0], input: input, weights: weights, shape: shape) }
            }
            checkAgainstTwin("lane data gradient", shape: label, seed: seed, outputCounts: [shape.inputCount], tolerance: 1e-5) { outputs, fast in
                if fast { data(outputs[0], dOut, weights, scratch.pointer, scratchCount, context) }
                else { Conv2D.naiveBackwardData(dInput: outputs[0], dOut: dOut, weights: weights, shape: shape) }
            }
            #expect(scratch.firstDamagedGuard() == nil, "\(label): wrote past the scratch")
            var out = [Float](repeating: .nan, count: shape.outputCount)
            forward(&out, input, weights, scratch.pointer, scratchCount, context)
            forwards.append(out)
            var dInput = initial
            data(&dInput, dOut, weights, scratch.pointer, scratchCount, context)
            datas.append(dInput)
        }
        for results in [forwards, datas] {
            #expect(results.dropFirst().allSatisfy { zip(results[0], $0).allSatisfy { $0.bitPattern == $1.bitPattern } },
                    "\(describe(shape)): the thread count changed bits")
        }
        let planned = Conv2D.scratchFloats(shape: shape, threads: 2, wide: true)
        let plannedScratch = GuardedBuffer(count: planned)
        var dispatched = 0
        if prefersForward {
            var out = [Float](repeating: .nan, count: shape.outputCount)
            Conv2D.forward(out: &out, input: input, weights: weights, shape: shape, scratch: plannedScratch.pointer,
                           scratchCount: planned, context: contexts[1])
            #expect(zip(forwards[0], out).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(describe(shape)): forward took another path")
            dispatched += 1
        }
        if prefersData {
            var dInput = initial
            Conv2D.backwardData(dInput: &dInput, dOut: dOut, weights: weights, shape: shape, scratch: plannedScratch.pointer,
                                scratchCount: planned, context: contexts[1])
            #expect(zip(datas[0], dInput).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(describe(shape)): backwardData took another path")
            checkOverwritingData(shape, dOut: dOut, weights: weights, scratch: plannedScratch.pointer, scratchCount: planned,
                                 context: contexts[1], label: describe(shape) + " (lanes)")
            dispatched += 1
        }
        #expect(plannedScratch.firstDamagedGuard() == nil)
        return dispatched
    }

    /// The 3x3 stride-2 forms with output channels in the lanes (`forwardStridedLanes`,
    /// `backwardDataStridedLanes`) against the naive twins: even sizes from 2x8 (one 16-position
    /// tile) to 28x28, odd channel counts and counts past one 16-lane block, on 1, 2 and 3
    /// threads (the same bits on each), guard words after the scratch, and the dispatch.
    @Test func stridedLanesMatchNaiveTwins() throws {
        let contexts = [try KernelContext(threads: 1, wideKernels: true), try KernelContext(threads: 2, wideKernels: true),
                        try KernelContext(threads: 3, wideKernels: true)]
        guard contexts[0].wideKernels else { return }  // AVX-512 only (KernelsAVX512)
        var index = 0, dispatched = 0
        for (height, width) in [(4, 14), (6, 6), (14, 14), (8, 28), (28, 28), (7, 8)] {
            for (inChannels, outChannels) in [(1, 16), (3, 5), (16, 32), (17, 33), (32, 64)] {
                let shape = Conv2DShape(batch: 5, inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                                        kernel: 3, stride: 2, padding: 1)
                #expect(Conv2D.stridedLanesShape(shape) == (height % 2 == 0 && width % 2 == 0
                                                            && shape.outHeight * (shape.outWidth + 1) >= 16))
                guard Conv2D.stridedLanesShape(shape) else { index += 1; continue }
                dispatched += checkLanePasses(shape, seed: UInt64(12000 + index), contexts: contexts,
                                              scratchCount: Conv2D.stridedLanesScratchFloats(shape, threads: 3),
                                              prefersForward: Conv2D.prefersStridedLanes(shape),
                                              prefersData: Conv2D.prefersStridedLanes(shape),
                                              forward: { out, input, weights, scratch, count, context in
                    Conv2D.forwardStridedLanes(out: out, input: input, weights: weights, shape: shape,
                                               scratch: scratch, scratchCount: count, context: context)
                }, data: { dInput, dOut, weights, scratch, count, context in
                    Conv2D.backwardDataStridedLanes(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                                    scratch: scratch, scratchCount: count, context: context)
                })
                index += 1
            }
        }
        // both passes take all 20 shapes of the path (at most 128 in and 256 out)
        #expect(index == 30 && dispatched == 40, "\(index) shapes, \(dispatched) dispatched")
    }

    /// The 1x1 stride-2 form (`pointwiseLanes`, forward and data gradient) against the naive
    /// twins: even and odd sizes, channel counts off the 16-lane blocks, 1, 2 and 3 threads
    /// (the same bits), guard words after the scratch, and the dispatch.
    @Test func pointwiseLanesMatchNaiveTwins() throws {
        let contexts = [try KernelContext(threads: 1, wideKernels: true), try KernelContext(threads: 2, wideKernels: true),
                        try KernelContext(threads: 3, wideKernels: true)]
        guard contexts[0].wideKernels else { return }  // AVX-512 only (KernelsAVX512)
        var index = 0, dispatched = 0
        for (height, width) in [(8, 8), (7, 9), (14, 14), (28, 28), (5, 5)] {
            for (inChannels, outChannels) in [(1, 16), (3, 5), (16, 32), (17, 33), (32, 64)] {
                let shape = Conv2DShape(batch: 4, inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                                        kernel: 1, stride: 2, padding: 0)
                #expect(!Conv2D.prefersPointwiseLanesData(Conv2DShape(batch: 4, inChannels: 64, outChannels: 128, height: 56,
                                                                      width: 56, kernel: 1, stride: 2, padding: 0)))
                #expect(Conv2D.pointwiseLanesShape(shape) == (shape.outHeight * shape.outWidth >= 16))
                guard Conv2D.pointwiseLanesShape(shape) else { index += 1; continue }
                dispatched += checkLanePasses(shape, seed: UInt64(13000 + index), contexts: contexts,
                                              scratchCount: Conv2D.pointwiseLanesScratchFloats(shape, threads: 3),
                                              prefersForward: Conv2D.prefersPointwiseLanesForward(shape),
                                              prefersData: Conv2D.prefersPointwiseLanesData(shape),
                                              forward: { out, input, weights, scratch, count, context in
                    Conv2D.pointwiseLanes(out: out, input: input, weights: weights, shape: shape, forward: true,
                                          scratch: scratch, scratchCount: count, context: context)
                }, data: { dInput, dOut, weights, scratch, count, context in
                    Conv2D.pointwiseLanes(out: dInput, input: dOut, weights: weights, shape: shape, forward: false,
                                          scratch: scratch, scratchCount: count, context: context)
                })
                index += 1
            }
        }
        // (5, 5) gives 3x3 outputs: fewer than 16 positions, no such path; both passes take the
        // 20 others (at most 32 in and 64 out)
        #expect(index == 25 && dispatched == 40, "\(index) shapes, \(dispatched) dispatched")
    }

    /// The 1x1 stride-2 weight gradient with positions in the lanes (`backwardWeightsPointwise`)
    /// against the naive twin (accumulating into dW): even and odd sizes, position counts on and
    /// off a whole vector, channel counts on and off the 4 x 4 blocks; the same bits on 1, 2 and
    /// 3 threads and with the smallest scratch (chunks of 16 positions) as with the planned one,
    /// guard words after the scratch, and the dispatch.
    @Test func pointwiseWeightsMatchNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1, wideKernels: true), try KernelContext(threads: 2, wideKernels: true),
                        try KernelContext(threads: 3, wideKernels: true)]
        guard contexts[0].wideKernels else { return }  // AVX-512 only (KernelsAVX512)
        var index = 0, taken = 0, dispatchedCount = 0
        for (height, width) in [(8, 8), (7, 9), (14, 14), (28, 28), (10, 6)] {
            for (inChannels, outChannels) in [(1, 16), (3, 5), (16, 32), (17, 33), (32, 64), (8, 6)] {
                let shape = Conv2DShape(batch: 3, inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                                        kernel: 1, stride: 2, padding: 0)
                guard Conv2D.pointwiseLanesShape(shape) else { index += 1; continue }
                taken += 1
                var random = SeededRandom(seed: UInt64(14000 + index))
                let input = random.floats(shape.inputCount), dOut = random.floats(shape.outputCount)
                let initial = random.floats(shape.weightCount)
                let planned = Conv2D.scratchFloats(shape: shape, threads: 3, wide: true)
                let smallest = Conv2D.pointwiseWeightsScratchFloats(shape)
                #expect(planned >= smallest || !Conv2D.prefersPointwiseWeights(shape))
                var results: [[Float]] = []
                // one chunk for up to 640 positions, and chunks of 16
                for scratchCount in [max(planned, smallest + 16 * inChannels * 40), smallest] {
                    let scratch = GuardedBuffer(count: scratchCount)
                    results += checkWeightPass("pointwise weight gradient", label: describe(shape) + " scratch \(scratchCount)",
                                               seed: UInt64(index), tolerance: 1e-5, contexts: contexts, shape: shape,
                                               input: input, dOut: dOut, initial: initial) { dWeights, context in
                        Conv2D.backwardWeightsPointwise(dWeights: dWeights, dOut: dOut, input: input, shape: shape,
                                                        scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                    }
                    #expect(scratch.firstDamagedGuard() == nil, "\(describe(shape)): wrote past the scratch")
                }
                #expect(results.dropFirst().allSatisfy { zip(results[0], $0).allSatisfy { $0.bitPattern == $1.bitPattern } },
                        "\(describe(shape)): the thread count or the chunk size changed bits")
                if Conv2D.prefersPointwiseWeights(shape) {
                    let scratch = GuardedBuffer(count: planned)
                    var dispatched = initial
                    Conv2D.backwardWeights(dWeights: &dispatched, dOut: dOut, input: input, shape: shape, scratch: scratch.pointer,
                                           scratchCount: planned, context: contexts[1])
                    #expect(zip(results[0], dispatched).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(describe(shape)): another path")
                    dispatchedCount += 1
                }
                index += 1
            }
        }
        // 10x6 gives 5x3 outputs: fewer than 16 positions, no such path; at batch 3 only 28x28
        // has the 256 positions the dispatch asks for
        #expect(index == 30 && taken == 24 && dispatchedCount == 6, "\(index) shapes, \(taken) taken, \(dispatchedCount) dispatched")
    }

    /// The 3x3 stride-1 form (`forwardLanes`, and flipped on the transposed shape for the data
    /// gradient) through `checkLanePasses`.
    @Test func convLanesMatchNaiveTwins() throws {
        let contexts = [try KernelContext(threads: 1, wideKernels: true), try KernelContext(threads: 2, wideKernels: true),
                        try KernelContext(threads: 3, wideKernels: true)]
        guard contexts[0].wideKernels else { return }  // AVX-512 only (KernelsAVX512)
        var index = 0, dispatched = 0
        for (height, width) in [(1, 15), (2, 7), (3, 5), (7, 7), (14, 14), (5, 28)] {
            for (inChannels, outChannels) in [(1, 16), (3, 5), (16, 16), (5, 33), (32, 17)] {
                let shape = Conv2DShape(batch: 5, inChannels: inChannels, outChannels: outChannels, height: height, width: width,
                                        kernel: 3, stride: 1, padding: 1)
                #expect(Conv2D.convLanesShape(shape) == (height * (width + 1) >= 16))
                // (no transposed shape with one input channel: the first layer has no data gradient)
                guard Conv2D.convLanesShape(shape), let transposed = Conv2D.transposedShape(shape) else { continue }
                let scratchCount = max(Conv2D.convLanesScratchFloats(shape, threads: 3), Conv2D.convLanesScratchFloats(transposed, threads: 3))
                // the data gradient: the transposed convolution, flipped and accumulated
                dispatched += checkLanePasses(shape, seed: UInt64(11000 + index), contexts: contexts, scratchCount: scratchCount,
                                              prefersForward: Conv2D.prefersConvLanes(shape),
                                              prefersData: Conv2D.prefersConvLanes(transposed),
                                              forward: { out, input, weights, scratch, count, context in
                    Conv2D.forwardLanes(out: out, input: input, weights: weights, shape: shape,
                                        scratch: scratch, scratchCount: count, context: context)
                }, data: { dInput, dOut, weights, scratch, count, context in
                    Conv2D.forwardLanes(out: dInput, input: dOut, weights: weights, shape: transposed, flipped: true, accumulate: true,
                                        scratch: scratch, scratchCount: count, context: context)
                })
                index += 1
            }
        }
        #expect(index == 24 && dispatched > 20, "\(index) shapes, \(dispatched) dispatched")
        #expect(!Conv2D.prefersConvLanes(Conv2DShape(batch: 2, inChannels: 64, outChannels: 64, height: 7, width: 7,
                                                     kernel: 3, stride: 1, padding: 1)))
    }

    /// The AVX-512 one-channel 3x3 forward (`forwardNineTapWide`): widths from 16 (one segment)
    /// to 41 (an overlapping last segment), heights from 1, output channel counts from 1, scratch
    /// for one image per block up to the whole batch, 1-3 threads; against the naive twin, no
    /// write past the scratch, the same bits for every thread count and block size, and taken by
    /// `Conv2D.forward`.
    @Test func wideNineTapForwardMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1, wideKernels: true), try KernelContext(threads: 2, wideKernels: true),
                        try KernelContext(threads: 3, wideKernels: true)]
        guard contexts[0].wideKernels else { return }  // AVX-512 only (KernelsAVX512)
        var index = 0
        var blockCounts = Set<Int>()
        for (height, width) in [(1, 16), (3, 17), (28, 28), (5, 32), (4, 41)] {
            for outChannels in [1, 7, 32] {
                let shape = Conv2DShape(batch: 5, inChannels: 1, outChannels: outChannels, height: height, width: width,
                                        kernel: 3, stride: 1, padding: 1)
                let imageFloats = (height + 2) * (width + 2)
                var reference: [Float]? = nil
                var random = SeededRandom(seed: UInt64(9000 + index))
                let input = random.floats(shape.inputCount), weights = random.floats(shape.weightCount)
                for images in [1, 2, 5] {
                    let scratchCount = images * imageFloats
                    #expect(Conv2D.wideNineTapBlockImages(shape, scratchCount: scratchCount) == images)
                    #expect(Conv2D.wideNineTapBlockImages(shape, scratchCount: scratchCount - 1) == images - 1)
                    blockCounts.insert((shape.batch + images - 1) / images)
                    let scratch = GuardedBuffer(count: scratchCount)
                    for context in contexts {
                        let label = describe(shape) + " \(images) images per block, threads \(context.threads)"
                        checkAgainstTwin("Conv2D.forwardNineTapWide", shape: label, seed: UInt64(index),
                                         outputCounts: [shape.outputCount]) { outputs, fast in
                            if fast {
                                Conv2D.forwardNineTapWide(out: outputs[0], input: input, weights: weights, shape: shape,
                                                          scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                            } else {
                                Conv2D.naiveForward(out: outputs[0], input: input, weights: weights, shape: shape)
                            }
                        }
                        var out = [Float](repeating: .nan, count: shape.outputCount)
                        Conv2D.forward(out: &out, input: input, weights: weights, shape: shape, scratch: scratch.pointer,
                                       scratchCount: scratchCount, context: context)
                        if let reference {
                            #expect(zip(reference, out).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(label): bits differ")
                        } else {
                            reference = out
                        }
                        #expect(scratch.firstDamagedGuard() == nil, "\(label): wrote past the scratch")
                    }
                    index += 1
                }
            }
        }
        #expect(index == 45 && blockCounts == [5, 3, 1])
        // Not taken under 16 columns or with two input channels.
        #expect(Conv2D.wideNineTapBlockImages(Conv2DShape(batch: 2, inChannels: 1, outChannels: 4, height: 8, width: 15,
                                                          kernel: 3, stride: 1, padding: 1), scratchCount: 1 << 18) == 0)
        #expect(Conv2D.wideNineTapBlockImages(Conv2DShape(batch: 2, inChannels: 2, outChannels: 4, height: 8, width: 28,
                                                          kernel: 3, stride: 1, padding: 1), scratchCount: 1 << 18) == 0)
    }

    /// The weight gradient with output channels in the lanes (AVX-512 only; 3x3 pad 1, stride 1
    /// or 2, any size): odd sizes at both strides, channel counts that leave a last odd input
    /// channel and a last single 16-channel vector, scratch for one image per block up to the
    /// whole batch; against the naive twin (accumulating into a prefilled dW), no write past the
    /// scratch, bit for bit the same on 1, 2 and 3 threads, and taken by `backwardWeights`.
    @Test func weightLanesMatchNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1, wideKernels: true), try KernelContext(threads: 2, wideKernels: true),
                        try KernelContext(threads: 3, wideKernels: true)]
        // The path is AVX-512 only (KernelsAVX512); a CPU without it has nothing to check here.
        guard contexts[0].wideKernels else { return }
        var index = 0
        var blockCounts = Set<Int>(), strides = Set<Int>(), tileKinds = Set<String>()
        var dispatchedCases = 0
        for stride in [1, 2] {
            for (height, width) in [(1, 1), (2, 6), (7, 9), (14, 14), (5, 28)] {
                for (inChannels, outChannels) in [(1, 16), (3, 5), (16, 16), (5, 33), (2, 64), (17, 48)] {
                    let shape = Conv2DShape(batch: 5, inChannels: inChannels, outChannels: outChannels,
                                            height: height, width: width, kernel: 3, stride: stride, padding: 1)
                    // (the tiles: two 16-channel vectors of one input channel, one of two, one of one)
                    let vectors = (outChannels + 15) / 16
                    if vectors >= 2 { tileKinds.insert("1x2") }
                    if vectors % 2 == 1 { tileKinds.insert(inChannels % 2 == 1 ? "1x1" : "2x1") }
                    let paddedOut = vectors * 16
                    let perImage = shape.outHeight * shape.outWidth * paddedOut + inChannels * (height + 2) * (width + 1)
                    let fixed = inChannels * 9 * paddedOut + 16 + 15
                    for images in [1, 2, 5] {
                        let scratchCount = fixed + images * perImage
                        let blockImages = Conv2D.weightLanesBlockImages(shape, scratchCount: scratchCount)
                        #expect(blockImages == images || scratchCount > 1 << 18, "\(describe(shape)): \(blockImages) images per block, expected \(images)")
                        guard blockImages > 0 else { continue }
                        #expect(Conv2D.weightLanesBlockImages(shape, scratchCount: scratchCount - 1) < blockImages || scratchCount > 1 << 18)
                        blockCounts.insert((shape.batch + blockImages - 1) / blockImages)
                        strides.insert(stride)
                        var random = SeededRandom(seed: UInt64(7000 + index))
                        let input = random.floats(shape.inputCount), dOut = random.floats(shape.outputCount)
                        let initial = random.floats(shape.weightCount)
                        let scratch = GuardedBuffer(count: scratchCount)
                        let label = describe(shape) + " scratch \(scratchCount) (\(blockImages) images per block)"
                        let results = checkWeightPass("Conv2D.backwardWeightsLanes", label: label, seed: UInt64(index), tolerance: 1e-4,
                                                      contexts: contexts, shape: shape, input: input, dOut: dOut,
                                                      initial: initial) { dWeights, context in
                            Conv2D.backwardWeightsLanes(dWeights: dWeights, dOut: dOut, input: input, shape: shape,
                                                        scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                        }
                        #expect(scratch.firstDamagedGuard() == nil, "\(label): wrote past the scratch")
                        #expect(results.dropFirst().allSatisfy { zip(results[0], $0).allSatisfy { $0.bitPattern == $1.bitPattern } },
                                "\(label): the thread count changed bits")
                        // The dispatch takes it where preferred: the same bits through backwardWeights.
                        if Conv2D.prefersWeightLanes(shape) {
                            var dispatched = initial
                            Conv2D.backwardWeights(dWeights: &dispatched, dOut: dOut, input: input, shape: shape,
                                                   scratch: scratch.pointer, scratchCount: scratchCount, context: contexts[1])
                            #expect(zip(results[0], dispatched).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(label): backwardWeights took another path")
                            dispatchedCases += 1
                        }
                        index += 1
                    }
                }
            }
        }
        #expect(index > 100 && blockCounts.contains(5) && blockCounts.contains(1) && strides == [1, 2])
        #expect(tileKinds == ["1x2", "1x1", "2x1"])
        #expect(dispatchedCases > 30)
        #expect(!Conv2D.prefersWeightLanes(Conv2DShape(batch: 2, inChannels: 1, outChannels: 16, height: 8, width: 8,
                                                       kernel: 3, stride: 1, padding: 1)))
        #expect(!Conv2D.prefersWeightLanes(Conv2DShape(batch: 2, inChannels: 512, outChannels: 512, height: 7, width: 7,
                                                       kernel: 3, stride: 1, padding: 1)))
        // Not taken where the path does not apply.
        #expect(Conv2D.weightLanesBlockImages(Conv2DShape(batch: 2, inChannels: 4, outChannels: 4, height: 8, width: 8,
                                                          kernel: 3, stride: 1, padding: 0), scratchCount: 1 << 18) == 0)
        #expect(Conv2D.weightLanesBlockImages(Conv2DShape(batch: 2, inChannels: 4, outChannels: 4, height: 8, width: 8,
                                                          kernel: 5, stride: 1, padding: 1), scratchCount: 1 << 18) == 0)
    }

    /// The stride-2 data gradient through the phase planes (3x3 pad 1, even sizes): odd channel
    /// counts, images from 2x2 up, scratch for one image per block up to the whole batch, both
    /// micro-kernel widths; against the naive twin (accumulating into a prefilled dInput), no
    /// write past the scratch, and bit for bit the same for any thread count.
    @Test func phasedBackwardDataMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2),
                        try KernelContext(threads: 1, wideKernels: false), try KernelContext(threads: 3, wideKernels: false)]
        var index = 0
        var blockCounts = Set<Int>()
        for (height, width) in [(2, 2), (2, 6), (4, 4), (14, 14), (8, 2 * floatVectorWidth + 4), (28, 28)] {
            for (inChannels, outChannels) in [(2, 1), (3, 5), (16, 32), (5, 7), (17, 3)] {
                let shape = Conv2DShape(batch: 5, inChannels: inChannels, outChannels: outChannels,
                                        height: height, width: width, kernel: 3, stride: 2, padding: 1)
                #expect(Conv2D.usesPhasedBackwardData(shape))
                // One block per image, two images, the whole batch.
                let imageFloats = (shape.outHeight + 1) * (shape.outWidth + 1)
                let weightFloats = (9 * inChannels * outChannels + 15) / 16 * 16
                let slack = outChannels * (3 * (shape.outWidth + 1) + 2 + 32) + 4 * inChannels * 16
                for images in [1, 2, 5] {
                    let scratchCount = weightFloats + images * (outChannels + 4 * inChannels) * imageFloats + slack
                    let blockImages = Conv2D.phasedBackwardBlockImages(shape, scratchCount: scratchCount)
                    #expect(blockImages == images || scratchCount > 1 << 18, "\(describe(shape)): \(blockImages) images per block, expected \(images)")
                    guard blockImages > 0 else { continue }
                    #expect(Conv2D.phasedBackwardBlockImages(shape, scratchCount: scratchCount - 1) < blockImages || scratchCount > 1 << 18)
                    blockCounts.insert((shape.batch + blockImages - 1) / blockImages)
                    var random = SeededRandom(seed: UInt64(7000 + index))
                    let weights = random.floats(shape.weightCount), dOut = random.floats(shape.outputCount)
                    let initial = random.floats(shape.inputCount)
                    let scratch = GuardedBuffer(count: scratchCount)
                    let label = describe(shape) + " scratch \(scratchCount) (\(blockImages) images per block)"
                    var results: [[Float]] = []
                    for context in contexts {
                        checkAgainstTwin("Conv2D.backwardDataPhased", shape: label + " threads \(context.threads)",
                                         seed: UInt64(index), outputCounts: [shape.inputCount], tolerance: 1e-4) { outputs, fast in
                            if fast {
                                Conv2D.backwardDataPhased(dInput: outputs[0], dOut: dOut, weights: weights, shape: shape,
                                                          scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                            } else {
                                Conv2D.naiveBackwardData(dInput: outputs[0], dOut: dOut, weights: weights, shape: shape)
                            }
                        }
                        var dInput = initial
                        Conv2D.backwardDataPhased(dInput: &dInput, dOut: dOut, weights: weights, shape: shape,
                                                  scratch: scratch.pointer, scratchCount: scratchCount, context: context)
                        results.append(dInput)
                    }
                    #expect(scratch.firstDamagedGuard() == nil, "\(label): wrote past the scratch")
                    #expect(zip(results[0], results[1]).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(label): 1 and 2 threads differ")
                    #expect(zip(results[2], results[3]).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(label): AVX2 1 and 3 threads differ")
                    index += 1
                }
            }
        }
        #expect(index >= 80 && blockCounts.contains(5) && blockCounts.contains(1))
        // Stride 1, odd sizes, one input channel and 1x1 kernels stay off this path.
        #expect(!Conv2D.usesPhasedBackwardData(Conv2DShape(batch: 2, inChannels: 4, outChannels: 4, height: 8, width: 8, kernel: 3, padding: 1)))
        #expect(!Conv2D.usesPhasedBackwardData(Conv2DShape(batch: 2, inChannels: 4, outChannels: 4, height: 7, width: 8, kernel: 3, stride: 2, padding: 1)))
        #expect(!Conv2D.usesPhasedBackwardData(Conv2DShape(batch: 2, inChannels: 1, outChannels: 4, height: 8, width: 8, kernel: 3, stride: 2, padding: 1)))
        #expect(!Conv2D.usesPhasedBackwardData(Conv2DShape(batch: 2, inChannels: 4, outChannels: 4, height: 8, width: 8, kernel: 1, stride: 2)))
    }

    /// The naive twin against a product worked by hand, so the oracle itself can fail.
    @Test func naiveForwardMatchesHandComputedConvolution() {
        // input 1x1x3x3 = 1...9; channel 0: all-ones 2x2, channel 1: [1, 0; 0, -1]
        let shape = Conv2DShape(batch: 1, inChannels: 1, outChannels: 2, height: 3, width: 3, kernel: 2)
        let input: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        let weights: [Float] = [1, 1, 1, 1, 1, 0, 0, -1]
        var out = [Float](repeating: 0, count: shape.outputCount)
        Conv2D.naiveForward(out: &out, input: input, weights: weights, shape: shape)
        #expect(out == [12, 16, 24, 28, -4, -4, -4, -4])
        // padding 1, stride 2 with the ones kernel: windows at (-1,-1), (-1,1), (1,-1), (1,1)
        let padded = Conv2DShape(batch: 1, inChannels: 1, outChannels: 1, height: 3, width: 3, kernel: 2, stride: 2, padding: 1)
        var paddedOut = [Float](repeating: 0, count: padded.outputCount)
        Conv2D.naiveForward(out: &paddedOut, input: input, weights: [1, 1, 1, 1], shape: padded)
        #expect(paddedOut == [1, 5, 11, 28])
    }

    /// Conv2D's twins in Double: loss = sum(out * R) so dOut = R; both backward twins must
    /// match central differences of the forward twin.
    @Test func conv2DNaiveGradientsMatchFiniteDifferences() {
        let shapes = [
            Conv2DShape(batch: 2, inChannels: 2, outChannels: 3, inHeight: 5, inWidth: 4, kernelHeight: 3,
                        kernelWidth: 2, strideH: 2, strideW: 1, padH: 1, padW: 1),
            Conv2DShape(batch: 1, inChannels: 3, outChannels: 2, height: 4, width: 5, kernel: 3, stride: 1, padding: 2),
        ]
        for shape in shapes {
            var random = SeededRandom(seed: 5)
            var input = (0..<shape.inputCount).map { _ in random.double() }
            var weights = (0..<shape.weightCount).map { _ in random.double() }
            let lossWeights = (0..<shape.outputCount).map { _ in random.double() }
            func loss(_ input: [Double], _ weights: [Double]) -> Double {
                var out = [Double](repeating: 0, count: shape.outputCount)
                Conv2D.naiveForward(out: &out, input: input, weights: weights, shape: shape)
                return zip(out, lossWeights).reduce(0) { $0 + $1.0 * $1.1 }
            }
            var dInput = [Double](repeating: 0, count: shape.inputCount)
            var dWeights = [Double](repeating: 0, count: shape.weightCount)
            Conv2D.naiveBackwardData(dInput: &dInput, dOut: lossWeights, weights: weights, shape: shape)
            Conv2D.naiveBackwardWeights(dWeights: &dWeights, dOut: lossWeights, input: input, shape: shape)
            let fixedWeights = weights, fixedInput = input
            let inputError = finiteDifferenceError(x: &input, analytic: dInput) { loss($0, fixedWeights) }
            let weightError = finiteDifferenceError(x: &weights, analytic: dWeights) { loss(fixedInput, $0) }
            #expect(inputError.error < 1e-7, "Conv2D dInput \(describe(shape)) index \(inputError.index)")
            #expect(weightError.error < 1e-7, "Conv2D dWeights \(describe(shape)) index \(weightError.index)")
        }
    }

    @Test func depthwiseMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2, wideKernels: false)]
        var index = 0
        for kernel in convKernels {
            for shape in convShapes(kernel: kernel) {
                var depthwise = shape
                depthwise.outChannels = shape.inChannels
                checkDepthwise(depthwise, context: contexts[index % 2], seed: UInt64(3000 + index))
                index += 1
            }
        }
        // The same-padding stride-1 path (3x3 p1, 5x5 p2) over narrow, odd and vector-width+-1 rows,
        // as the mobilenets' depthwise layers meet it down to 3x3 maps.
        for (offset, (kernel, side)) in [(3, 1), (3, 2), (3, 3), (3, 6), (3, 7), (3, 9), (3, 12), (3, 17), (5, 3), (5, 6), (5, 11)].enumerated() {
            let same = Conv2DShape(batch: 3, inChannels: 5, outChannels: 5, height: side + offset % 2, width: side, kernel: kernel,
                                   padding: kernel / 2)
            #expect(DepthwiseConv2D.isSamePadding(same))
            checkDepthwise(same, context: contexts[offset % 2], seed: UInt64(4000 + offset))
        }
        // Large enough to split channels across threads.
        for context in contexts {
            checkDepthwise(Conv2DShape(batch: 3, inChannels: 16, outChannels: 16, height: 28, width: 28, kernel: 3, padding: 1),
                           context: context, seed: 9)
            checkDepthwise(Conv2DShape(batch: 3, inChannels: 16, outChannels: 16, height: 28, width: 27, kernel: 3, stride: 2, padding: 1),
                           context: context, seed: 10)
        }
    }

    @Test func depthwiseNaiveGradientsMatchFiniteDifferences() {
        let shape = Conv2DShape(batch: 2, inChannels: 3, outChannels: 3, inHeight: 5, inWidth: 4, kernelHeight: 3,
                                kernelWidth: 2, strideH: 1, strideW: 2, padH: 1, padW: 1)
        let taps = shape.kernelHeight * shape.kernelWidth
        var random = SeededRandom(seed: 6)
        var input = (0..<shape.inputCount).map { _ in random.double() }
        var weights = (0..<shape.inChannels * taps).map { _ in random.double() }
        let lossWeights = (0..<shape.outputCount).map { _ in random.double() }
        func loss(_ input: [Double], _ weights: [Double]) -> Double {
            var out = [Double](repeating: 0, count: shape.outputCount)
            DepthwiseConv2D.naiveForward(out: &out, input: input, weights: weights, shape: shape)
            return zip(out, lossWeights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var dInput = [Double](repeating: 0, count: shape.inputCount)
        var dWeights = [Double](repeating: 0, count: weights.count)
        DepthwiseConv2D.naiveBackwardData(dInput: &dInput, dOut: lossWeights, weights: weights, shape: shape)
        DepthwiseConv2D.naiveBackwardWeights(dWeights: &dWeights, dOut: lossWeights, input: input, shape: shape)
        let fixedWeights = weights, fixedInput = input
        let inputError = finiteDifferenceError(x: &input, analytic: dInput) { loss($0, fixedWeights) }
        let weightError = finiteDifferenceError(x: &weights, analytic: dWeights) { loss(fixedInput, $0) }
        #expect(inputError.error < 1e-7, "depthwise dInput index \(inputError.index)")
        #expect(weightError.error < 1e-7, "depthwise dWeights index \(weightError.index)")
        // The depthwise twin equals a dense conv whose off-diagonal channel weights are zero.
        var dense = [Double](repeating: 0, count: shape.weightCount)
        for channel in 0..<shape.inChannels {
            for tap in 0..<taps { dense[(channel * shape.inChannels + channel) * taps + tap] = weights[channel * taps + tap] }
        }
        var viaDense = [Double](repeating: 0, count: shape.outputCount)
        var viaDepthwise = [Double](repeating: 0, count: shape.outputCount)
        Conv2D.naiveForward(out: &viaDense, input: input, weights: dense, shape: shape)
        DepthwiseConv2D.naiveForward(out: &viaDepthwise, input: input, weights: weights, shape: shape)
        #expect(zip(viaDense, viaDepthwise).allSatisfy { abs($0 - $1) < 1e-12 })
    }
}
