import Testing
import Kernels

/// The kernels partial updates add: ReLU with a bit mask, and batch norm's backward with
/// frozen (running) statistics, against their naive twins and central differences.
@Suite struct FineTuneKernelTests {
    @Test func maskedReLUMatchesTwin() {
        for (seed, count) in (oddSizes + [32, 64, 65, 1000]).enumerated() {
            var random = SeededRandom(seed: UInt64(seed))
            let x = random.floats(count)
            let dOutput = random.floats(count)
            var naiveMask = [UInt32](repeating: 0xFFFF_FFFF, count: ReLU.maskWords(count) + 1)
            var fastMask = naiveMask
            checkAgainstTwin("ReLU.forwardMasked", shape: "\(count)", seed: UInt64(seed), outputCounts: [count]) { outputs, fast in
                if fast { ReLU.forwardMasked(output: outputs[0], mask: &fastMask, input: x, count: count) }
                else { ReLU.naiveForwardMasked(output: outputs[0], mask: &naiveMask, input: x, count: count) }
            }
            #expect(fastMask == naiveMask, "mask of \(count)")
            #expect(fastMask.last == 0xFFFF_FFFF, "mask of \(count) written past its words")
            // The mask gives exactly the Float-output backward.
            var output = [Float](repeating: 0, count: count)
            ReLU.forward(output: &output, input: x, count: count)
            checkAgainstTwin("ReLU.backwardMasked", shape: "\(count)", seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { ReLU.backwardMasked(dInput: outputs[0], dOutput: dOutput, mask: fastMask, count: count) }
                else { ReLU.naiveBackward(dInput: outputs[0], dOutput: dOutput, output: output, count: count) }
            }
            checkAgainstTwin("ReLU.backwardMaskedInPlace", shape: "\(count)", seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                for index in 0..<count { outputs[0][index] = dOutput[index] }
                if fast { ReLU.backwardMaskedInPlace(gradient: outputs[0], mask: fastMask, count: count) }
                else { ReLU.naiveBackwardInPlace(gradient: outputs[0], output: output, count: count) }
            }
        }
    }

    @Test func frozenBatchNormBackwardMatchesTwin() throws {
        let context = try KernelContext(threads: 2)
        for (seed, spatial) in (oddSizes + [3 * 35 * 35]).enumerated() {
            let channels = 5
            var random = SeededRandom(seed: UInt64(seed))
            let x = random.floats(channels * spatial, -2, 3)
            let dOutput = random.floats(channels * spatial)
            let gamma = random.floats(channels, 0.5, 1.5)
            let mean = random.floats(channels)
            let variance = random.floats(channels, 0.2, 2)
            checkAgainstTwin("BatchNorm.backwardFrozen", shape: "C \(channels) M \(spatial)", seed: UInt64(seed),
                             outputCounts: [channels * spatial, channels, channels]) { outputs, fast in
                if fast {
                    BatchNorm.backwardFrozen(dInput: outputs[0], dGamma: outputs[1], dBeta: outputs[2], dOutput: dOutput, input: x,
                                             gamma: gamma, runningMean: mean, runningVariance: variance, channels: channels,
                                             spatial: spatial, context: context)
                } else {
                    BatchNorm.naiveBackwardFrozen(dInput: outputs[0], dGamma: outputs[1], dBeta: outputs[2], dOutput: dOutput, input: x,
                                                  gamma: gamma, runningMean: mean, runningVariance: variance, channels: channels, spatial: spatial)
                }
            }
        }
    }

    /// All three gradients of the eval-mode affine map by central differences in Double.
    @Test func frozenBatchNormGradientsByFiniteDifferences() {
        let channels = 3, spatial = 7
        var random = SeededRandom(seed: 5)
        var x = random.doubles(channels * spatial)
        var gamma = random.doubles(channels).map { $0 + 1.5 }
        var beta = random.doubles(channels)
        let mean = random.doubles(channels)
        let variance = random.doubles(channels).map { $0 + 1.5 }
        let weights = random.doubles(channels * spatial)
        func loss(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
            var output = [Double](repeating: 0, count: x.count)
            BatchNorm.naiveForwardInference(output: &output, input: x, gamma: gamma, beta: beta, runningMean: mean,
                                            runningVariance: variance, channels: channels, spatial: spatial)
            return zip(output, weights).reduce(0) { $0 + $1.0 * $1.1 }
        }
        var dX = [Double](repeating: 0, count: x.count)
        var dGamma = [Double](repeating: 0, count: channels)
        var dBeta = [Double](repeating: 0, count: channels)
        BatchNorm.naiveBackwardFrozen(dInput: &dX, dGamma: &dGamma, dBeta: &dBeta, dOutput: weights, input: x, gamma: gamma,
                                      runningMean: mean, runningVariance: variance, channels: channels, spatial: spatial)
        let (gammaNow, betaNow, xNow) = (gamma, beta, x)
        #expect(finiteDifferenceError(x: &x, analytic: dX) { loss($0, gammaNow, betaNow) }.error < 1e-7)
        #expect(finiteDifferenceError(x: &gamma, analytic: dGamma) { loss(xNow, $0, betaNow) }.error < 1e-7)
        #expect(finiteDifferenceError(x: &beta, analytic: dBeta) { loss(xNow, gammaNow, $0) }.error < 1e-7)
    }
}

extension SeededRandom {
    mutating func doubles(_ count: Int) -> [Double] { (0..<count).map { _ in double() } }
}
