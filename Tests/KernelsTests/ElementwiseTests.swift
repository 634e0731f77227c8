import Testing
import Kernels

/// ReLU, bias, elementwise helpers and layout conversions: fast paths against their naive twins,
/// plus central-difference checks of the ReLU and bias gradients in Double.
@Suite struct ElementwiseTests {
    static let sizes = oddSizes + [64, 1000]

    // MARK: ReLU

    /// Random values with exact zeros and a NaN mixed in: the fast path's blend must agree with
    /// `x > 0 ? x : 0` on every one of them.
    static func reluInput(_ count: Int, seed: UInt64) -> [Float] {
        var random = SeededRandom(seed: seed)
        var values = random.floats(count)
        for index in stride(from: 0, to: count, by: 5) { values[index] = 0 }
        if count > 3 { values[3] = .nan }
        return values
    }

    @Test func reluForwardMatchesTwin() {
        for (seed, count) in Self.sizes.enumerated() {
            let input = Self.reluInput(count, seed: UInt64(seed))
            checkAgainstTwin("ReLU.forward", shape: "count \(count)", seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { ReLU.forward(output: outputs[0], input: input, count: count) }
                else { ReLU.naiveForward(output: outputs[0], input: input, count: count) }
            }
            // In place: the prefilled output buffer is its own input.
            checkAgainstTwin("ReLU.forwardInPlace", shape: "count \(count)", seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { ReLU.forwardInPlace(outputs[0], count: count) }
                else { ReLU.naiveForward(output: outputs[0], input: outputs[0], count: count) }
            }
        }
    }

    @Test func reluBackwardMatchesTwin() {
        for (seed, count) in Self.sizes.enumerated() {
            var output = Self.reluInput(count, seed: UInt64(seed))
            ReLU.naiveForward(output: &output, input: output, count: count)
            var random = SeededRandom(seed: UInt64(seed) + 100)
            let dOutput = random.floats(count)
            checkAgainstTwin("ReLU.backward", shape: "count \(count)", seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { ReLU.backward(dInput: outputs[0], dOutput: dOutput, output: output, count: count) }
                else { ReLU.naiveBackward(dInput: outputs[0], dOutput: dOutput, output: output, count: count) }
            }
        }
    }

    @Test func reluBackwardInPlaceMatchesTwin() {
        for (seed, count) in Self.sizes.enumerated() {
            var output = Self.reluInput(count, seed: UInt64(seed))
            ReLU.naiveForward(output: &output, input: output, count: count)
            // The prefilled buffer is the output gradient, masked in place.
            checkAgainstTwin("ReLU.backwardInPlace", shape: "count \(count)", seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { ReLU.backwardInPlace(gradient: outputs[0], output: output, count: count) }
                else { ReLU.naiveBackwardInPlace(gradient: outputs[0], output: output, count: count) }
            }
            // In place equals the accumulating form into a zeroed dInput.
            var random = SeededRandom(seed: UInt64(seed) + 200)
            let dOutput = random.floats(count)
            var accumulated = [Float](repeating: 0, count: count)
            ReLU.naiveBackward(dInput: &accumulated, dOutput: dOutput, output: output, count: count)
            var inPlace = dOutput
            ReLU.backwardInPlace(gradient: &inPlace, output: output, count: count)
            #expect(inPlace == accumulated, "ReLU.backwardInPlace differs from backward into zeros at count \(count)")
        }
    }

    @Test func reluGradientMatchesCentralDifferences() {
        let count = 13
        var random = SeededRandom(seed: 7)
        // Keep |x| >= 0.1 so a +/- 1e-5 step never crosses the kink.
        var x = (0..<count).map { _ -> Double in
            let value = random.double(0.1, 1)
            return random.next() & 1 == 0 ? value : -value
        }
        let weights = (0..<count).map { _ in random.double() }
        func loss(_ x: [Double]) -> Double {
            var y = [Double](repeating: 0, count: count)
            ReLU.naiveForward(output: &y, input: x, count: count)
            return zip(y, weights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var y = [Double](repeating: 0, count: count)
        ReLU.naiveForward(output: &y, input: x, count: count)
        var dX = [Double](repeating: 0, count: count)
        ReLU.naiveBackward(dInput: &dX, dOutput: weights, output: y, count: count)
        let (error, index) = finiteDifferenceError(x: &x, analytic: dX, loss: loss)
        #expect(error < 1e-7, "ReLU gradient: error \(error) at \(index)")
    }

    // MARK: Bias

    @Test func biasChannelsMatchesTwin() {
        for channels in [1, 5] {
            for batch in [1, 3] {
                for (seed, plane) in oddSizes.enumerated() {
                    let spatial = batch * plane
                    var random = SeededRandom(seed: UInt64(seed))
                    let bias = random.floats(channels)
                    let dOutput = random.floats(channels * spatial)
                    let shape = "C \(channels) N \(batch) HW \(plane)"
                    checkAgainstTwin("Bias.addChannels", shape: shape, seed: UInt64(seed), outputCounts: [channels * spatial]) { outputs, fast in
                        if fast { Bias.addChannels(values: outputs[0], bias: bias, channels: channels, spatial: spatial) }
                        else { Bias.naiveAddChannels(values: outputs[0], bias: bias, channels: channels, spatial: spatial) }
                    }
                    checkAgainstTwin("Bias.backwardChannels", shape: shape, seed: UInt64(seed), outputCounts: [channels]) { outputs, fast in
                        if fast { Bias.backwardChannels(dBias: outputs[0], dOutput: dOutput, channels: channels, spatial: spatial) }
                        else { Bias.naiveBackwardChannels(dBias: outputs[0], dOutput: dOutput, channels: channels, spatial: spatial) }
                    }
                }
            }
        }
    }

    /// The threaded passes (`relu:` and `reluOutput:`) against the serial passes they replace:
    /// bias then ReLU, ReLU's in-place backward then the bias sums. Bit for bit on 1, 2 and 3
    /// threads, with zeros, negative zero and NaN among the values, sizes that stay on one
    /// thread and sizes that split.
    @Test func fusedBiasReLUMatchesTheTwoPassesBitForBit() throws {
        let contexts = try [1, 2, 3].map { try KernelContext(threads: $0) }
        for (channels, spatial) in [(1, 33), (5, 1000), (7, 10_007), (16, 8192)] {
            var random = SeededRandom(seed: UInt64(channels * 31 + spatial))
            var values = random.floats(channels * spatial)
            for index in stride(from: 0, to: values.count, by: 97) { values[index] = 0 }
            values[values.count / 2] = -0.0
            values[values.count / 3] = .nan
            let bias = random.floats(channels)
            let dOutput = random.floats(channels * spatial)
            // Serial: the two passes of before
            var expected = values
            Bias.addChannels(values: &expected, bias: bias, channels: channels, spatial: spatial)
            ReLU.forward(output: &expected, input: expected, count: expected.count)
            var expectedGradient = dOutput
            ReLU.backwardInPlace(gradient: &expectedGradient, output: expected, count: expected.count)
            var expectedBias = random.floats(channels)
            let startBias = expectedBias
            Bias.backwardChannels(dBias: &expectedBias, dOutput: expectedGradient, channels: channels, spatial: spatial)
            // The naive twins
            var naive = values.map(Double.init)
            Bias.naiveAddChannels(values: &naive, bias: bias.map(Double.init), channels: channels, spatial: spatial)
            ReLU.naiveForward(output: &naive, input: naive, count: naive.count)
            #expect(zip(naive, expected).allSatisfy { Float($0.0) == $0.1 || ($0.0.isNaN && $0.1.isNaN) },
                    "bias + ReLU differs from its naive twin")
            for context in contexts {
                var fused = values
                Bias.addChannels(values: &fused, bias: bias, channels: channels, spatial: spatial, relu: true, context: context)
                #expect(fused.map(\.bitPattern) == expected.map(\.bitPattern),
                        "bias + ReLU, C \(channels) x \(spatial), \(context.threads) threads")
                var plain = values, plainExpected = values
                Bias.addChannels(values: &plain, bias: bias, channels: channels, spatial: spatial, relu: false, context: context)
                Bias.addChannels(values: &plainExpected, bias: bias, channels: channels, spatial: spatial)
                #expect(plain.map(\.bitPattern) == plainExpected.map(\.bitPattern), "bias, \(context.threads) threads")
                var gradient = dOutput
                var dBias = startBias
                Bias.backwardChannels(dBias: &dBias, dOutput: &gradient, channels: channels, spatial: spatial,
                                      reluOutput: fused, context: context)
                #expect(gradient.map(\.bitPattern) == expectedGradient.map(\.bitPattern),
                        "ReLU backward, C \(channels) x \(spatial), \(context.threads) threads")
                #expect(dBias.map(\.bitPattern) == expectedBias.map(\.bitPattern),
                        "bias gradient after the ReLU, C \(channels) x \(spatial), \(context.threads) threads")
                var sums = startBias
                var untouched = dOutput
                Bias.backwardChannels(dBias: &sums, dOutput: &untouched, channels: channels, spatial: spatial,
                                      reluOutput: nil, context: context)
                var serialSums = startBias
                Bias.backwardChannels(dBias: &serialSums, dOutput: dOutput, channels: channels, spatial: spatial)
                #expect(sums.map(\.bitPattern) == serialSums.map(\.bitPattern) && untouched == dOutput,
                        "bias gradient, \(context.threads) threads")
            }
        }
    }

    @Test func biasRowsMatchesTwin() {
        for rows in [1, 3, 7] {
            for (seed, features) in oddSizes.enumerated() {
                var random = SeededRandom(seed: UInt64(seed))
                let bias = random.floats(features)
                let dOutput = random.floats(rows * features)
                let shape = "N \(rows) F \(features)"
                checkAgainstTwin("Bias.addRows", shape: shape, seed: UInt64(seed), outputCounts: [rows * features]) { outputs, fast in
                    if fast { Bias.addRows(values: outputs[0], bias: bias, rows: rows, features: features) }
                    else { Bias.naiveAddRows(values: outputs[0], bias: bias, rows: rows, features: features) }
                }
                checkAgainstTwin("Bias.backwardRows", shape: shape, seed: UInt64(seed), outputCounts: [features]) { outputs, fast in
                    if fast { Bias.backwardRows(dBias: outputs[0], dOutput: dOutput, rows: rows, features: features) }
                    else { Bias.naiveBackwardRows(dBias: outputs[0], dOutput: dOutput, rows: rows, features: features) }
                }
            }
        }
    }

    @Test func biasGradientsMatchCentralDifferences() {
        // loss = sum r * (x + b): for CNHW [C=3, S=5] and rows [N=4, F=3].
        var random = SeededRandom(seed: 11)
        let channels = 3, spatial = 5
        let x = (0..<channels * spatial).map { _ in random.double() }
        let r = (0..<channels * spatial).map { _ in random.double() }
        var bias = (0..<channels).map { _ in random.double() }
        func channelLoss(_ bias: [Double]) -> Double {
            var y = x
            Bias.naiveAddChannels(values: &y, bias: bias, channels: channels, spatial: spatial)
            return zip(y, r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var dBias = [Double](repeating: 0, count: channels)
        Bias.naiveBackwardChannels(dBias: &dBias, dOutput: r, channels: channels, spatial: spatial)
        let (channelError, channelIndex) = finiteDifferenceError(x: &bias, analytic: dBias, loss: channelLoss)
        #expect(channelError < 1e-8, "bias (channels) gradient: error \(channelError) at \(channelIndex)")

        let rows = 4, features = 3
        let xr = (0..<rows * features).map { _ in random.double() }
        let rr = (0..<rows * features).map { _ in random.double() }
        var rowBias = (0..<features).map { _ in random.double() }
        func rowLoss(_ bias: [Double]) -> Double {
            var y = xr
            Bias.naiveAddRows(values: &y, bias: bias, rows: rows, features: features)
            return zip(y, rr).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var dRowBias = [Double](repeating: 0, count: features)
        Bias.naiveBackwardRows(dBias: &dRowBias, dOutput: rr, rows: rows, features: features)
        let (rowError, rowIndex) = finiteDifferenceError(x: &rowBias, analytic: dRowBias, loss: rowLoss)
        #expect(rowError < 1e-8, "bias (rows) gradient: error \(rowError) at \(rowIndex)")
    }

    // MARK: Elementwise helpers

    @Test func elementwiseHelpersMatchTwins() {
        for (seed, count) in Self.sizes.enumerated() {
            var random = SeededRandom(seed: UInt64(seed))
            let source = random.floats(count)
            let shape = "count \(count)"
            checkAgainstTwin("Elementwise.add", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { Elementwise.add(outputs[0], source, count: count) } else { Elementwise.naiveAdd(outputs[0], source, count: count) }
            }
            checkAgainstTwin("Elementwise.addScalar", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { Elementwise.addScalar(outputs[0], 0.75, count: count) } else { Elementwise.naiveAddScalar(outputs[0], 0.75, count: count) }
            }
            checkAgainstTwin("Elementwise.scale", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { Elementwise.scale(outputs[0], by: -1.5, count: count) } else { Elementwise.naiveScale(outputs[0], by: -1.5, count: count) }
            }
            checkAgainstTwin("Elementwise.copy", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { Elementwise.copy(outputs[0], source, count: count) }
                else { for index in 0..<count { outputs[0][index] = source[index] } }
            }
            checkAgainstTwin("Elementwise.zero", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { Elementwise.zero(outputs[0], count: count) }
                else { for index in 0..<count { outputs[0][index] = 0 } }
            }
            checkAgainstTwin("Elementwise.sum", shape: shape, seed: UInt64(seed), outputCounts: [1]) { outputs, fast in
                outputs[0][0] = fast ? Elementwise.sum(source, count: count) : Elementwise.naiveSum(source, count: count)
            }
        }
    }

    // MARK: Layout

    @Test func layoutConversionsMatchTwins() {
        for channels in [1, 5] {
            for batch in [1, 3] {
                for (seed, (height, width)) in [(1, 1), (1, 7), (3, 3), (3, floatVectorWidth + 1), (5, 7)].enumerated() {
                    let count = channels * batch * height * width
                    var random = SeededRandom(seed: UInt64(seed))
                    let source = random.floats(count)
                    let shape = "C \(channels) N \(batch) H \(height) W \(width)"
                    checkAgainstTwin("Layout.cnhwToRows", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                        if fast { Layout.cnhwToRows(rows: outputs[0], cnhw: source, channels: channels, batch: batch, height: height, width: width) }
                        else { Layout.naiveCNHWToRows(rows: outputs[0], cnhw: source, channels: channels, batch: batch, height: height, width: width) }
                    }
                    checkAgainstTwin("Layout.rowsToCNHW", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                        if fast { Layout.rowsToCNHW(cnhw: outputs[0], rows: source, channels: channels, batch: batch, height: height, width: width) }
                        else { Layout.naiveRowsToCNHW(cnhw: outputs[0], rows: source, channels: channels, batch: batch, height: height, width: width, accumulate: false) }
                    }
                    checkAgainstTwin("Layout.rowsToCNHWAccumulate", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                        if fast { Layout.rowsToCNHWAccumulate(cnhw: outputs[0], rows: source, channels: channels, batch: batch, height: height, width: width) }
                        else { Layout.naiveRowsToCNHW(cnhw: outputs[0], rows: source, channels: channels, batch: batch, height: height, width: width, accumulate: true) }
                    }
                    checkAgainstTwin("Layout.nchwToCNHW", shape: shape, seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                        if fast { Layout.nchwToCNHW(cnhw: outputs[0], nchw: source, batch: batch, channels: channels, height: height, width: width) }
                        else { Layout.naiveNCHWToCNHW(cnhw: outputs[0], nchw: source, batch: batch, channels: channels, height: height, width: width) }
                    }
                    // Round trip: rows -> CNHW -> rows is the identity.
                    var cnhw = [Float](repeating: 0, count: count)
                    var rows = [Float](repeating: 0, count: count)
                    Layout.rowsToCNHW(cnhw: &cnhw, rows: source, channels: channels, batch: batch, height: height, width: width)
                    Layout.cnhwToRows(rows: &rows, cnhw: cnhw, channels: channels, batch: batch, height: height, width: width)
                    #expect(rows == source, "Layout round trip \(shape)")
                }
            }
        }
    }

    /// The flatten order is PyTorch's: rows[n] = x[n].flatten() of the NCHW tensor.
    @Test func cnhwToRowsIsPyTorchFlattenOrder() {
        // Element (c, n, h, w) encodes itself as 1000c + 100n + 10h + w.
        let channels = 2, batch = 3, height = 2, width = 3
        var cnhw = [Float]()
        for c in 0..<channels { for n in 0..<batch { for h in 0..<height { for w in 0..<width {
            cnhw.append(Float(1000 * c + 100 * n + 10 * h + w))
        } } } }
        var rows = [Float](repeating: -1, count: cnhw.count)
        Layout.cnhwToRows(rows: &rows, cnhw: cnhw, channels: channels, batch: batch, height: height, width: width)
        var expected = [Float]()
        for n in 0..<batch { for c in 0..<channels { for h in 0..<height { for w in 0..<width {
            expected.append(Float(1000 * c + 100 * n + 10 * h + w))
        } } } }
        #expect(rows == expected)
    }
}
