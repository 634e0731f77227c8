import Testing
import Kernels

/// BatchNorm over CNHW: fast paths against the naive twins (one and two threads), the running
/// statistics against hand-computed PyTorch values, and all three training-mode gradients
/// against central differences in Double.
@Suite struct BatchNormTests {
    /// A fresh two-thread context per use: tests run concurrently and one ThreadPool must not
    /// be driven by two callers at once.
    static func makeContext() -> KernelContext { try! KernelContext(threads: 2) }

    struct Case {
        let channels: Int
        let spatial: Int
        var shape: String { "C \(channels) M \(spatial)" }
    }

    /// Channels 1 and 5, batch 1 and 3, odd planes; M = 1 is excluded (training needs M > 1),
    /// and one case large enough to take the threaded path.
    static var cases: [Case] {
        var cases: [Case] = []
        for channels in [1, 5] {
            for batch in [1, 3] {
                for plane in oddSizes where batch * plane > 1 {
                    cases.append(Case(channels: channels, spatial: batch * plane))
                }
            }
        }
        cases.append(Case(channels: 5, spatial: 3 * 35 * 35))  // 18375 values: threaded
        return cases
    }

    /// Inputs with a per-channel offset, so the mean is far from 0 and a one-pass variance
    /// would show its cancellation.
    /// x (`input` at `seed`), then gamma, beta and dOutput drawn at seed + 1.
    static func backwardInputs(_ test: Case, seed: UInt64) -> (x: [Float], gamma: [Float], beta: [Float], dOutput: [Float]) {
        var random = SeededRandom(seed: seed + 1)
        let gamma = random.floats(test.channels), beta = random.floats(test.channels)
        return (input(test, seed: seed), gamma, beta, random.floats(test.channels * test.spatial))
    }

    static func input(_ test: Case, seed: UInt64) -> [Float] {
        var random = SeededRandom(seed: seed)
        var x = random.floats(test.channels * test.spatial)
        for channel in 0..<test.channels {
            for index in 0..<test.spatial { x[channel * test.spatial + index] = 3 * x[channel * test.spatial + index] + Float(channel) }
        }
        return x
    }

    @Test func forwardTrainingMatchesTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() {
            let x = Self.input(test, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 1000)
            let gamma = random.floats(test.channels, 0.5, 1.5)
            let beta = random.floats(test.channels)
            let c = test.channels, m = test.spatial
            checkAgainstTwin("BatchNorm.forwardTraining", shape: test.shape, seed: UInt64(seed),
                             outputCounts: [c * m, c, c, c, c]) { outputs, fast in
                if fast {
                    BatchNorm.forwardTraining(output: outputs[0], savedMean: outputs[1], savedInvStd: outputs[2],
                                              runningMean: outputs[3], runningVariance: outputs[4],
                                              input: x, gamma: gamma, beta: beta, channels: c, spatial: m, context: context)
                } else {
                    BatchNorm.naiveForwardTraining(output: outputs[0], savedMean: outputs[1], savedInvStd: outputs[2],
                                                   runningMean: outputs[3], runningVariance: outputs[4],
                                                   input: x, gamma: gamma, beta: beta, channels: c, spatial: m)
                }
            }
        }
    }

    @Test func forwardInferenceMatchesTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() {
            let x = Self.input(test, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 2000)
            let gamma = random.floats(test.channels, 0.5, 1.5)
            let beta = random.floats(test.channels)
            let mean = random.floats(test.channels)
            let variance = random.floats(test.channels, 0.1, 4)
            let c = test.channels, m = test.spatial
            checkAgainstTwin("BatchNorm.forwardInference", shape: test.shape, seed: UInt64(seed), outputCounts: [c * m]) { outputs, fast in
                if fast {
                    BatchNorm.forwardInference(output: outputs[0], input: x, gamma: gamma, beta: beta, runningMean: mean,
                                               runningVariance: variance, channels: c, spatial: m, context: context)
                } else {
                    BatchNorm.naiveForwardInference(output: outputs[0], input: x, gamma: gamma, beta: beta, runningMean: mean,
                                                    runningVariance: variance, channels: c, spatial: m)
                }
            }
        }
    }

    @Test func backwardMatchesTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() {
            let c = test.channels, m = test.spatial
            let x = Self.input(test, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 3000)
            let gamma = random.floats(c, 0.5, 1.5)
            let beta = random.floats(c)
            let dOutput = random.floats(c * m)
            var y = [Float](repeating: 0, count: c * m)
            var mean = [Float](repeating: 0, count: c), invStd = mean, runningMean = mean, runningVariance = mean
            BatchNorm.naiveForwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                           runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                           channels: c, spatial: m)
            checkAgainstTwin("BatchNorm.backward", shape: test.shape, seed: UInt64(seed), outputCounts: [c * m, c, c],
                             tolerance: 1e-4) { outputs, fast in
                if fast {
                    BatchNorm.backward(dInput: outputs[0], dGamma: outputs[1], dBeta: outputs[2], dOutput: dOutput,
                                       savedMean: mean, savedInvStd: invStd, input: x, gamma: gamma,
                                       channels: c, spatial: m, context: context)
                } else {
                    BatchNorm.naiveBackward(dInput: outputs[0], dGamma: outputs[1], dBeta: outputs[2], dOutput: dOutput,
                                            savedMean: mean, savedInvStd: invStd, input: x, gamma: gamma,
                                            channels: c, spatial: m)
                }
            }
        }
    }

    /// Splitting channels over threads must not change a single bit.
    @Test func threadCountDoesNotChangeResults() throws {
        let context = Self.makeContext()
        let single = try KernelContext(threads: 1)
        let test = Case(channels: 7, spatial: 4099)
        let c = test.channels, m = test.spatial
        let x = Self.input(test, seed: 5)
        var random = SeededRandom(seed: 6)
        let gamma = random.floats(c, 0.5, 1.5), beta = random.floats(c), dOutput = random.floats(c * m)
        func run(_ context: KernelContext) -> [Float] {
            var y = [Float](repeating: 0, count: c * m), dX = y
            var mean = [Float](repeating: 0, count: c), invStd = mean, runningMean = mean, runningVariance = mean
            var dGamma = mean, dBeta = mean
            BatchNorm.forwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                      runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                      channels: c, spatial: m, context: context)
            BatchNorm.backward(dInput: &dX, dGamma: &dGamma, dBeta: &dBeta, dOutput: dOutput, savedMean: mean,
                               savedInvStd: invStd, input: x, gamma: gamma, channels: c, spatial: m, context: context)
            return y + dX + mean + invStd + runningMean + runningVariance + dGamma + dBeta
        }
        let one = run(single), two = run(context)
        let differing = zip(one, two).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(one.count) values differ between 1 and 2 threads")
    }

    /// resnet8's first layers reduce N*H*W = 50,176 values per channel. The Float fast paths
    /// (forwardTraining, then backward) against the naive twins run in Double on the same
    /// inputs: inputs with mean 3 (so the centred sums matter) and random dOutput (so sum dy and
    /// sum dy * xhat largely cancel). Norm-wise relative errors must stay within 1e-6. Summing
    /// ~6,000 values per vector lane in Float gave dGamma 3.6e-6 and output 1.5e-6 here; the
    /// blocked sums give 2.2e-7 and 1.1e-7.
    @Test func largeReductionsMatchDoubleTwin() throws {
        let context = Self.makeContext()
        let c = 4, m = 50_176
        var random = SeededRandom(seed: 77)
        let x = (0..<c * m).map { _ in 3 + random.float() }
        let gamma = random.floats(c, 0.5, 1.5), beta = random.floats(c), dOutput = random.floats(c * m)

        var y = [Float](repeating: 0, count: c * m), dX = y
        var mean = [Float](repeating: 0, count: c), invStd = mean, runningMean = mean, runningVariance = mean
        var dGamma = mean, dBeta = mean
        BatchNorm.forwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                  runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                  channels: c, spatial: m, context: context)
        BatchNorm.backward(dInput: &dX, dGamma: &dGamma, dBeta: &dBeta, dOutput: dOutput, savedMean: mean,
                           savedInvStd: invStd, input: x, gamma: gamma, channels: c, spatial: m, context: context)

        let xD = x.map(Double.init), gammaD = gamma.map(Double.init), betaD = beta.map(Double.init)
        let dOutputD = dOutput.map(Double.init)
        var yD = [Double](repeating: 0, count: c * m), dXD = yD
        var meanD = [Double](repeating: 0, count: c), invStdD = meanD, runningMeanD = meanD, runningVarianceD = meanD
        var dGammaD = meanD, dBetaD = meanD
        BatchNorm.naiveForwardTraining(output: &yD, savedMean: &meanD, savedInvStd: &invStdD, runningMean: &runningMeanD,
                                       runningVariance: &runningVarianceD, input: xD, gamma: gammaD, beta: betaD,
                                       channels: c, spatial: m)
        BatchNorm.naiveBackward(dInput: &dXD, dGamma: &dGammaD, dBeta: &dBetaD, dOutput: dOutputD, savedMean: meanD,
                                savedInvStd: invStdD, input: xD, gamma: gammaD, channels: c, spatial: m)

        /// ||fast - reference|| / ||reference||, in Double.
        func relativeError(_ fast: [Float], _ reference: [Double]) -> Double {
            var difference = 0.0, norm = 0.0
            for (f, r) in zip(fast, reference) {
                difference += (Double(f) - r) * (Double(f) - r)
                norm += r * r
            }
            return (difference / norm).squareRoot()
        }
        let errors: [(String, Double)] = [
            ("mean", relativeError(mean, meanD)), ("invStd", relativeError(invStd, invStdD)),
            ("runningVariance", relativeError(runningVariance, runningVarianceD)), ("output", relativeError(y, yD)),
            ("dGamma", relativeError(dGamma, dGammaD)), ("dBeta", relativeError(dBeta, dBetaD)),
            ("dInput", relativeError(dX, dXD)),
        ]
        print("BatchNorm C \(c) M \(m) relative errors vs Double: " + errors.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        for (name, error) in errors {
            #expect(error <= 1e-6, "BatchNorm C \(c) M \(m): \(name) relative error \(error) against the Double twin")
        }
    }

    /// PyTorch: normalise with the biased variance, update running_var with the unbiased one.
    /// Channel [1, 2, 3, 4]: mean 2.5, biased var 1.25, unbiased var 5/3.
    /// running_mean = 0.9 * 0 + 0.1 * 2.5 = 0.25; running_var = 0.9 * 1 + 0.1 * 5/3 = 1.0666667.
    @Test func runningStatisticsFollowPyTorch() {
        let context = Self.makeContext()
        let x: [Float] = [1, 2, 3, 4]
        var y = [Float](repeating: 0, count: 4)
        var mean: [Float] = [0], invStd: [Float] = [0], runningMean: [Float] = [0], runningVariance: [Float] = [1]
        BatchNorm.forwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                  runningVariance: &runningVariance, input: x, gamma: [2], beta: [0.5],
                                  channels: 1, spatial: 4, context: context)
        #expect(abs(runningMean[0] - 0.25) < 1e-7)
        #expect(abs(runningVariance[0] - (0.9 + 0.1 * 5.0 / 3.0)) < 1e-6)
        #expect(mean[0] == 2.5)
        let expectedInvStd = 1 / (1.25 + 1e-5).squareRoot()
        #expect(abs(Double(invStd[0]) - expectedInvStd) < 1e-6)
        for index in 0..<4 {
            let expected = 2 * (Double(x[index]) - 2.5) * expectedInvStd + 0.5
            #expect(abs(Double(y[index]) - expected) < 1e-5, "y[\(index)] = \(y[index]), expected \(expected)")
        }
    }

    /// loss = sum r * BN(x): dx, dGamma and dBeta from the naive backward against central
    /// differences of the naive forward (training mode, so mean and variance move with x).
    @Test func trainingGradientsMatchCentralDifferences() {
        let channels = 3, spatial = 6
        var random = SeededRandom(seed: 42)
        var x = (0..<channels * spatial).map { _ in random.double(-2, 2) }
        var gamma = (0..<channels).map { _ in random.double(0.5, 1.5) }
        var beta = (0..<channels).map { _ in random.double() }
        let r = (0..<channels * spatial).map { _ in random.double() }

        func loss(x: [Double], gamma: [Double], beta: [Double]) -> Double {
            var y = [Double](repeating: 0, count: channels * spatial)
            var mean = [Double](repeating: 0, count: channels), invStd = mean, runningMean = mean, runningVariance = mean
            BatchNorm.naiveForwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                           runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                           channels: channels, spatial: spatial)
            return zip(y, r).reduce(0) { $0 + $1.0 * $1.1 }
        }

        var y = [Double](repeating: 0, count: channels * spatial)
        var mean = [Double](repeating: 0, count: channels), invStd = mean, runningMean = mean, runningVariance = mean
        BatchNorm.naiveForwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                       runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                       channels: channels, spatial: spatial)
        var dX = [Double](repeating: 0, count: channels * spatial)
        var dGamma = [Double](repeating: 0, count: channels), dBeta = dGamma
        BatchNorm.naiveBackward(dInput: &dX, dGamma: &dGamma, dBeta: &dBeta, dOutput: r, savedMean: mean,
                                savedInvStd: invStd, input: x, gamma: gamma, channels: channels, spatial: spatial)

        let (xError, xIndex) = finiteDifferenceError(x: &x, analytic: dX) { loss(x: $0, gamma: gamma, beta: beta) }
        #expect(xError < 1e-6, "BatchNorm dX: error \(xError) at \(xIndex)")
        let (gammaError, gammaIndex) = finiteDifferenceError(x: &gamma, analytic: dGamma) { loss(x: x, gamma: $0, beta: beta) }
        #expect(gammaError < 1e-6, "BatchNorm dGamma: error \(gammaError) at \(gammaIndex)")
        let (betaError, betaIndex) = finiteDifferenceError(x: &beta, analytic: dBeta) { loss(x: x, gamma: gamma, beta: $0) }
        #expect(betaError < 1e-6, "BatchNorm dBeta: error \(betaError) at \(betaIndex)")
        // The gradient of a normalised output sums to zero over each channel.
        for channel in 0..<channels {
            let total = dX[channel * spatial..<(channel + 1) * spatial].reduce(0, +)
            #expect(abs(total) < 1e-9)
        }
    }

    /// The ReLU fused into the batch norm (`forwardTraining(relu:)`, `forwardInference(relu:)`,
    /// `backward(reluBeta:)`, its mask recomputed from x) against the separate passes it replaces (normalise, then
    /// `ReLU.forward`; `ReLU.backwardInPlace`, then the backward): bit for bit, one and two threads.
    @Test(arguments: cases) func fusedReLUMatchesTheSeparatePassesBitForBit(_ test: Case) throws {
        let count = test.channels * test.spatial
        let (x, gamma, beta, dOutput) = BatchNormTests.backwardInputs(test, seed: 91)
        for threads in [1, 2] {
            let context = try KernelContext(threads: threads)
            func run(fused: Bool) -> [[Float]] {
                var y = [Float](repeating: 0, count: count), inference = y
                var mean = [Float](repeating: 0, count: test.channels), invStd = mean
                var runningMean = [Float](repeating: 0.5, count: test.channels), runningVariance = [Float](repeating: 2, count: test.channels)
                BatchNorm.forwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                          runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                          channels: test.channels, spatial: test.spatial, relu: fused, context: context)
                BatchNorm.forwardInference(output: &inference, input: x, gamma: gamma, beta: beta, runningMean: runningMean,
                                           runningVariance: runningVariance, channels: test.channels, spatial: test.spatial,
                                           relu: fused, context: context)
                if !fused {
                    ReLU.forward(output: &y, input: y, count: count)
                    ReLU.forward(output: &inference, input: inference, count: count)
                }
                var gradient = dOutput
                if !fused { ReLU.backwardInPlace(gradient: &gradient, output: y, count: count) }
                var dx = [Float](repeating: 0.25, count: count)
                var dGamma = [Float](repeating: 0, count: test.channels), dBeta = dGamma
                BatchNorm.backward(dInput: &dx, dGamma: &dGamma, dBeta: &dBeta, dOutput: gradient, savedMean: mean,
                                   savedInvStd: invStd, input: x, gamma: gamma, channels: test.channels, spatial: test.spatial,
                                   reluBeta: fused ? beta : nil, context: context)
                return [y, inference, dx, dGamma, dBeta, runningMean, runningVariance]
            }
            let separate = run(fused: false), fused = run(fused: true)
            #expect(separate[0].contains { $0 == 0 } && separate[0].contains { $0 > 0 }, "\(test.shape): the ReLU cut nothing")
            for (index, name) in ["output", "inference output", "dx", "dGamma", "dBeta", "running mean", "running variance"].enumerated() {
                #expect(fused[index].map(\.bitPattern) == separate[index].map(\.bitPattern), "\(test.shape), \(threads) threads: \(name) differs")
            }
        }
    }

    /// `backward(accumulate: false)` (a gradient buffer's first writer) over a dx of NaNs gives
    /// what it adds into zeros, bit for bit up to the sign of a zero, with and without the fused
    /// ReLU's mask, on 1 and 2 threads; dGamma and dBeta still accumulate.
    @Test(arguments: cases) func writingTheInputGradientEqualsAddingIntoZeros(_ test: Case) throws {
        let count = test.channels * test.spatial
        let (x, gamma, beta, dOutput) = BatchNormTests.backwardInputs(test, seed: 93)
        for threads in [1, 2] {
            let context = try KernelContext(threads: threads)
            var y = [Float](repeating: 0, count: count)
            var mean = [Float](repeating: 0, count: test.channels), invStd = mean
            var runningMean = mean, runningVariance = [Float](repeating: 1, count: test.channels)
            BatchNorm.forwardTraining(output: &y, savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean,
                                      runningVariance: &runningVariance, input: x, gamma: gamma, beta: beta,
                                      channels: test.channels, spatial: test.spatial, context: context)
            for masked in [false, true] {
                func run(accumulate: Bool) -> [[Float]] {
                    var dx = [Float](repeating: accumulate ? 0 : .nan, count: count)
                    var dGamma = [Float](repeating: 0.5, count: test.channels), dBeta = dGamma
                    BatchNorm.backward(dInput: &dx, dGamma: &dGamma, dBeta: &dBeta, dOutput: dOutput, savedMean: mean,
                                       savedInvStd: invStd, input: x, gamma: gamma, channels: test.channels,
                                       spatial: test.spatial, reluBeta: masked ? beta : nil, accumulate: accumulate,
                                       context: context)
                    return [dx, dGamma, dBeta]
                }
                let added = run(accumulate: true), written = run(accumulate: false)
                #expect(added[0].contains { $0 != 0 }, "\(test.shape): dx is all zeros")
                for (index, name) in ["dx", "dGamma", "dBeta"].enumerated() {
                    // (Float ==: a NaN left unwritten differs, +0 and -0 do not)
                    let differing = zip(added[index], written[index]).filter { $0 != $1 }.count
                    #expect(differing == 0, "\(test.shape), \(threads) threads, masked \(masked): \(name) differs at \(differing)")
                }
            }
        }
    }
}
