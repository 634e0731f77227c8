import Testing
import Kernels

/// Pool geometries: the 2x2 stride-2 fast path (widths around multiples of two vector widths),
/// overlapping 3x3 windows with padding, a non-square window, and a kernel covering the image.
func poolShapes() -> [Pool2DShape] {
    var shapes: [Pool2DShape] = []
    let sizes = [(1, 1), (7, 9), (9, 7), (4, 2 * floatVectorWidth - 1), (3, 2 * floatVectorWidth + 1), (6, 4 * floatVectorWidth + 3)]
    let windows: [(Int, Int, Int, Int, Int, Int)] = [  // kernel h, w, stride h, w, pad h, w
        (2, 2, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 3, 1, 1, 1, 1), (2, 3, 1, 2, 1, 1), (1, 1, 1, 1, 0, 0), (5, 5, 2, 2, 2, 2),
    ]
    for (height, width) in sizes {
        for window in windows {
            for (channels, batch) in [(1, 1), (3, 3), (5, 1)] {
                let shape = Pool2DShape(channels: channels, batch: batch, inHeight: height, inWidth: width,
                                        kernelHeight: window.0, kernelWidth: window.1, strideH: window.2,
                                        strideW: window.3, padH: window.4, padW: window.5)
                if shape.isValid { shapes.append(shape) }
            }
        }
    }
    // Big enough to split planes across threads.
    shapes.append(Pool2DShape(channels: 16, batch: 5, height: 28, width: 28, kernel: 2))
    shapes.append(Pool2DShape(channels: 16, batch: 5, height: 27, width: 27, kernel: 3, stride: 2, padding: 1))
    return shapes
}

func describe(_ s: Pool2DShape) -> String {
    "C\(s.channels) N\(s.batch) \(s.inHeight)x\(s.inWidth) k\(s.kernelHeight)x\(s.kernelWidth) s\(s.strideH)x\(s.strideW) p\(s.padH)x\(s.padW)"
}

@Suite struct PoolTests {
    /// The three backward passes with `accumulate: false` (a gradient buffer's first writer)
    /// over a dInput of NaNs give what they add into zeros, bit for bit up to the sign of a
    /// zero: every element written, none read. Over the whole shape sweep, 1 and 2 threads.
    @Test func writingTheInputGradientEqualsAddingIntoZeros() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2)]
        func same(_ added: [Float], _ written: [Float]) -> Int { zip(added, written).filter { $0 != $1 }.count }
        for (index, shape) in poolShapes().enumerated() {
            let context = contexts[index % 2]
            var random = SeededRandom(seed: UInt64(900 + index))
            let input = random.floats(shape.inputCount), dOut = random.floats(shape.outputCount)
            var out = [Float](repeating: 0, count: shape.outputCount)
            var indices = [Int32](repeating: 0, count: shape.outputCount)
            MaxPool2D.forward(out: &out, indices: &indices, input: input, shape: shape, context: context)
            var added = [Float](repeating: 0, count: shape.inputCount)
            var written = [Float](repeating: .nan, count: shape.inputCount)
            MaxPool2D.backward(dInput: &added, dOut: dOut, indices: indices, shape: shape, context: context)
            MaxPool2D.backward(dInput: &written, dOut: dOut, indices: indices, shape: shape, accumulate: false, context: context)
            #expect(same(added, written) == 0, "max pool \(describe(shape))")
            added = [Float](repeating: 0, count: shape.inputCount)
            written = [Float](repeating: .nan, count: shape.inputCount)
            AvgPool2D.backward(dInput: &added, dOut: dOut, shape: shape, context: context)
            AvgPool2D.backward(dInput: &written, dOut: dOut, shape: shape, accumulate: false, context: context)
            #expect(same(added, written) == 0, "average pool \(describe(shape))")
            let planes = shape.channels * shape.batch
            let pooled = random.floats(planes)
            added = [Float](repeating: 0, count: shape.inputCount)
            written = [Float](repeating: .nan, count: shape.inputCount)
            GlobalAvgPool.backward(dInput: &added, dOut: pooled, channels: shape.channels, batch: shape.batch,
                                   height: shape.inHeight, width: shape.inWidth, context: context)
            GlobalAvgPool.backward(dInput: &written, dOut: pooled, channels: shape.channels, batch: shape.batch,
                                   height: shape.inHeight, width: shape.inWidth, accumulate: false, context: context)
            #expect(same(added, written) == 0, "global average pool \(describe(shape))")
        }
    }

    @Test func maxPoolMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2)]
        for (index, shape) in poolShapes().enumerated() {
            let context = contexts[index % 2]
            let seed = UInt64(500 + index)
            var random = SeededRandom(seed: seed)
            let input = GuardedBuffer(count: shape.inputCount, values: random.floats(shape.inputCount))
            let dOut = GuardedBuffer(count: shape.outputCount, values: random.floats(shape.outputCount))
            var fastIndices = [Int32](repeating: -7, count: shape.outputCount + 1)
            var naiveIndices = [Int32](repeating: -7, count: shape.outputCount + 1)
            let label = describe(shape) + " threads \(context.threads)"
            checkAgainstTwin("MaxPool2D.forward", shape: label, seed: seed, outputCounts: [shape.outputCount]) { outputs, fast in
                if fast {
                    MaxPool2D.forward(out: outputs[0], indices: &fastIndices, input: input.pointer, shape: shape, context: context)
                } else {
                    MaxPool2D.naiveForward(out: outputs[0], indices: &naiveIndices, input: input.pointer, shape: shape)
                }
            }
            #expect(fastIndices == naiveIndices, "MaxPool2D.forward \(label) seed \(seed): argmax indices differ")
            #expect(fastIndices.last == -7, "MaxPool2D.forward \(label): wrote past the indices")
            checkAgainstTwin("MaxPool2D.backward", shape: label, seed: seed, outputCounts: [shape.inputCount]) { outputs, fast in
                if fast {
                    MaxPool2D.backward(dInput: outputs[0], dOut: dOut.pointer, indices: naiveIndices, shape: shape, context: context)
                } else {
                    MaxPool2D.naiveBackward(dInput: outputs[0], dOut: dOut.pointer, indices: naiveIndices, shape: shape)
                }
            }
        }
    }

    /// Ties keep the first maximum in window order; an all-equal image must pick each window's
    /// first real pixel, on the vector path and the scalar path alike.
    @Test func maxPoolTiesPickFirstPixel() throws {
        let context = try KernelContext(threads: 1)
        for shape in [Pool2DShape(channels: 1, batch: 1, height: 4, width: 4 * floatVectorWidth + 2, kernel: 2),
                      Pool2DShape(channels: 1, batch: 1, height: 5, width: 5, kernel: 3, stride: 2, padding: 1)] {
            let input = [Float](repeating: 3, count: shape.inputCount)
            var out = [Float](repeating: 0, count: shape.outputCount)
            var indices = [Int32](repeating: 0, count: shape.outputCount)
            MaxPool2D.forward(out: &out, indices: &indices, input: input, shape: shape, context: context)
            for oh in 0..<shape.outHeight {
                for ow in 0..<shape.outWidth {
                    let ih = max(oh * shape.strideH - shape.padH, 0), iw = max(ow * shape.strideW - shape.padW, 0)
                    #expect(indices[oh * shape.outWidth + ow] == Int32(ih * shape.inWidth + iw), "\(describe(shape)) at \(oh),\(ow)")
                }
            }
            #expect(out.allSatisfy { $0 == 3 })
        }
        // Hand-computed: 2x2 windows of [[1, 5, 2, 2], [3, 4, 8, 0]] -> 5 at 1, 8 at 6.
        let shape = Pool2DShape(channels: 1, batch: 1, height: 2, width: 4, kernel: 2)
        var out: [Float] = [0, 0], indices: [Int32] = [0, 0]
        MaxPool2D.naiveForward(out: &out, indices: &indices, input: [1, 5, 2, 2, 3, 4, 8, 0] as [Float], shape: shape)
        #expect(out == [5, 8] && indices == [1, 6])
    }

    /// Inputs drawn from {-1, 0, 1, NaN}: nearly every 2x2 window has ties or NaNs, so the vector
    /// path's row-then-column reduction must reproduce the scan's first-maximum and NaN rules
    /// exactly (values bit for bit, indices equal), widths with and without a scalar tail.
    @Test func maxPoolTiesAndNaNMatchNaiveTwin() throws {
        let context = try KernelContext(threads: 1)
        for width in [2 * floatVectorWidth, 4 * floatVectorWidth + 2, 28, 14, 6 * floatVectorWidth + 6] {
            let shape = Pool2DShape(channels: 3, batch: 2, height: 8, width: width, kernel: 2)
            var random = SeededRandom(seed: UInt64(900 + width))
            let palette: [Float] = [-1, 0, 1, .nan]
            let input = random.floats(shape.inputCount).map { palette[Int(($0 + 1) * 1000) & 3] }
            var fastOut = [Float](repeating: 7, count: shape.outputCount), naiveOut = fastOut
            var fastIndices = [Int32](repeating: -7, count: shape.outputCount), naiveIndices = fastIndices
            MaxPool2D.forward(out: &fastOut, indices: &fastIndices, input: input, shape: shape, context: context)
            MaxPool2D.naiveForward(out: &naiveOut, indices: &naiveIndices, input: input, shape: shape)
            #expect(fastIndices == naiveIndices, "\(describe(shape)): argmax indices differ")
            #expect(zip(fastOut, naiveOut).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(describe(shape)): values differ")
            #expect(input.contains { $0.isNaN } && input.contains { $0 == 1 })
        }
    }

    @Test func avgPoolMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2)]
        for (index, shape) in poolShapes().enumerated() {
            let context = contexts[index % 2]
            let seed = UInt64(700 + index)
            var random = SeededRandom(seed: seed)
            let input = GuardedBuffer(count: shape.inputCount, values: random.floats(shape.inputCount))
            let dOut = GuardedBuffer(count: shape.outputCount, values: random.floats(shape.outputCount))
            let label = describe(shape) + " threads \(context.threads)"
            checkAgainstTwin("AvgPool2D.forward", shape: label, seed: seed, outputCounts: [shape.outputCount]) { outputs, fast in
                if fast {
                    AvgPool2D.forward(out: outputs[0], input: input.pointer, shape: shape, context: context)
                } else {
                    AvgPool2D.naiveForward(out: outputs[0], input: input.pointer, shape: shape)
                }
            }
            checkAgainstTwin("AvgPool2D.backward", shape: label, seed: seed, outputCounts: [shape.inputCount]) { outputs, fast in
                if fast {
                    AvgPool2D.backward(dInput: outputs[0], dOut: dOut.pointer, shape: shape, context: context)
                } else {
                    AvgPool2D.naiveBackward(dInput: outputs[0], dOut: dOut.pointer, shape: shape)
                }
            }
        }
    }

    /// A window covering the whole plane (the squeeze-excitation pool of mobilenet_v3_small:
    /// 24x24 maps, 576 values per output) against a Double reference: the row path summed the 576
    /// values one by one in one Float (1.07e-6 relative on the backbone's activations, 13x PyTorch
    /// float32's 8e-8); the whole-plane path sums vector lanes and divides like PyTorch.
    @Test func avgPoolOverWholePlaneMatchesDoubleReference() throws {
        let context = try KernelContext(threads: 2)
        for (side, seed) in [(24, UInt64(901)), (12, UInt64(902)), (7, UInt64(903))] {
            let shape = Pool2DShape(channels: 16, batch: 32, height: side, width: side, kernel: side, stride: side)
            var random = SeededRandom(seed: seed)
            // Post-ReLU-like: non-negative, so every partial sum grows and rounding accumulates.
            let values = random.floats(shape.inputCount, 0, 1)
            let input = GuardedBuffer(count: shape.inputCount, values: values)
            let output = GuardedBuffer(count: shape.outputCount, values: [Float](repeating: 0, count: shape.outputCount))
            AvgPool2D.forward(out: output.pointer, input: input.pointer, shape: shape, context: context)
            let exactInput = values.map(Double.init)
            var exact = [Double](repeating: 0, count: shape.outputCount)
            exactInput.withUnsafeBufferPointer { source in
                exact.withUnsafeMutableBufferPointer { AvgPool2D.naiveForward(out: $0.baseAddress!, input: source.baseAddress!, shape: shape) }
            }
            var difference = 0.0, norm = 0.0
            for index in 0..<shape.outputCount {
                difference += (Double(output.pointer[index]) - exact[index]) * (Double(output.pointer[index]) - exact[index])
                norm += exact[index] * exact[index]
            }
            let relative = (difference / norm).squareRoot()
            #expect(relative < 1.5e-7, "AvgPool2D.forward \(describe(shape)): relative error \(relative) against Double")
            // The bar catches the old row path: it summed in the naive twin's order (row by
            // row, one Float), which misses it on the 24x24 plane.
            if side == 24 {
                let twin = GuardedBuffer(count: shape.outputCount, values: [Float](repeating: 0, count: shape.outputCount))
                AvgPool2D.naiveForward(out: twin.pointer, input: input.pointer, shape: shape)
                var twinDifference = 0.0
                for index in 0..<shape.outputCount {
                    twinDifference += (Double(twin.pointer[index]) - exact[index]) * (Double(twin.pointer[index]) - exact[index])
                }
                let twinRelative = (twinDifference / norm).squareRoot()
                #expect(twinRelative > 1.5e-7, "the sequential Float sum is \(twinRelative) from Double: the bar no longer separates")
            }
        }
    }

    /// count_include_pad = true: a corner window of a 2x2 image with padding 1 holds one real
    /// pixel and still divides by 4.
    @Test func avgPoolCountsPadding() throws {
        let shape = Pool2DShape(channels: 1, batch: 1, height: 2, width: 2, kernel: 2, stride: 1, padding: 1)
        var out = [Float](repeating: 0, count: shape.outputCount)
        AvgPool2D.naiveForward(out: &out, input: [1, 2, 3, 4] as [Float], shape: shape)
        #expect(out == [0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1])
        var fast = [Float](repeating: 0, count: shape.outputCount)
        AvgPool2D.forward(out: &fast, input: [1, 2, 3, 4] as [Float], shape: shape, context: try KernelContext(threads: 1))
        #expect(fast == out)
    }

    @Test func globalAvgPoolMatchesNaiveTwin() throws {
        let contexts = [try KernelContext(threads: 1), try KernelContext(threads: 2)]
        var index = 0
        for (height, width) in [(1, 1), (7, 9), (floatVectorWidth + 1, 1), (1, floatVectorWidth - 1), (28, 28), (7, 7)] {
            for (channels, batch) in [(1, 1), (3, 3), (5, 1), (64, 33)] {
                let context = contexts[index % 2]
                let seed = UInt64(900 + index)
                index += 1
                var random = SeededRandom(seed: seed)
                let inputCount = channels * batch * height * width
                let input = GuardedBuffer(count: inputCount, values: random.floats(inputCount))
                let dOut = GuardedBuffer(count: channels * batch, values: random.floats(channels * batch))
                let label = "C\(channels) N\(batch) \(height)x\(width) threads \(context.threads)"
                checkAgainstTwin("GlobalAvgPool.forward", shape: label, seed: seed, outputCounts: [channels * batch]) { outputs, fast in
                    if fast {
                        GlobalAvgPool.forward(out: outputs[0], input: input.pointer, channels: channels, batch: batch,
                                              height: height, width: width, context: context)
                    } else {
                        GlobalAvgPool.naiveForward(out: outputs[0], input: input.pointer, channels: channels, batch: batch,
                                                   height: height, width: width)
                    }
                }
                checkAgainstTwin("GlobalAvgPool.backward", shape: label, seed: seed, outputCounts: [inputCount]) { outputs, fast in
                    if fast {
                        GlobalAvgPool.backward(dInput: outputs[0], dOut: dOut.pointer, channels: channels, batch: batch,
                                               height: height, width: width, context: context)
                    } else {
                        GlobalAvgPool.naiveBackward(dInput: outputs[0], dOut: dOut.pointer, channels: channels, batch: batch,
                                                    height: height, width: width)
                    }
                }
            }
        }
        // Layout: out is [N, C] row-major. Channel 0 of 2 holds 1s and 3s, channel 1 holds 10s.
        var out: [Double] = [0, 0, 0, 0]
        GlobalAvgPool.naiveForward(out: &out, input: [1, 1, 3, 3, 10, 10, 10, 10] as [Double], channels: 2, batch: 2, height: 1, width: 2)
        #expect(out == [1, 10, 3, 10])
    }

    /// Pool twins in Double against central differences of loss = sum(out * R).
    @Test func poolNaiveGradientsMatchFiniteDifferences() {
        var random = SeededRandom(seed: 11)
        for shape in [Pool2DShape(channels: 2, batch: 2, inHeight: 5, inWidth: 6, kernelHeight: 3, kernelWidth: 2,
                                  strideH: 2, strideW: 1, padH: 1, padW: 1),
                      Pool2DShape(channels: 1, batch: 2, height: 4, width: 5, kernel: 2)] {
            var input = (0..<shape.inputCount).map { _ in random.double() }
            let lossWeights = (0..<shape.outputCount).map { _ in random.double() }
            var indices = [Int32](repeating: 0, count: shape.outputCount)
            func maxLoss(_ input: [Double]) -> Double {
                var out = [Double](repeating: 0, count: shape.outputCount)
                var scratchIndices = [Int32](repeating: 0, count: shape.outputCount)
                MaxPool2D.naiveForward(out: &out, indices: &scratchIndices, input: input, shape: shape)
                return zip(out, lossWeights).reduce(0) { $0 + $1.0 * $1.1 }
            }
            var out = [Double](repeating: 0, count: shape.outputCount)
            MaxPool2D.naiveForward(out: &out, indices: &indices, input: input, shape: shape)
            var dInput = [Double](repeating: 0, count: shape.inputCount)
            MaxPool2D.naiveBackward(dInput: &dInput, dOut: lossWeights, indices: indices, shape: shape)
            let maxError = finiteDifferenceError(x: &input, analytic: dInput, loss: maxLoss)
            #expect(maxError.error < 1e-7, "max pool \(describe(shape)) index \(maxError.index)")

            func avgLoss(_ input: [Double]) -> Double {
                var out = [Double](repeating: 0, count: shape.outputCount)
                AvgPool2D.naiveForward(out: &out, input: input, shape: shape)
                return zip(out, lossWeights).reduce(0) { $0 + $1.0 * $1.1 }
            }
            var dAvg = [Double](repeating: 0, count: shape.inputCount)
            AvgPool2D.naiveBackward(dInput: &dAvg, dOut: lossWeights, shape: shape)
            let avgError = finiteDifferenceError(x: &input, analytic: dAvg, loss: avgLoss)
            #expect(avgError.error < 1e-7, "avg pool \(describe(shape)) index \(avgError.index)")
        }
        let (channels, batch, height, width) = (3, 2, 3, 2)
        var input = (0..<channels * batch * height * width).map { _ in random.double() }
        let lossWeights = (0..<channels * batch).map { _ in random.double() }
        func globalLoss(_ input: [Double]) -> Double {
            var out = [Double](repeating: 0, count: channels * batch)
            GlobalAvgPool.naiveForward(out: &out, input: input, channels: channels, batch: batch, height: height, width: width)
            return zip(out, lossWeights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var dInput = [Double](repeating: 0, count: input.count)
        GlobalAvgPool.naiveBackward(dInput: &dInput, dOut: lossWeights, channels: channels, batch: batch, height: height, width: width)
        let globalError = finiteDifferenceError(x: &input, analytic: dInput, loss: globalLoss)
        #expect(globalError.error < 1e-7, "global avg pool index \(globalError.index)")
    }
}
