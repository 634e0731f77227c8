import Testing
import Kernels

/// Batch norm over the ranks (`--sync-bn`): each phase against its naive twin, and the phases of
/// K simulated ranks (the exchanges done by hand: concatenation for the allgather, a sum for the
/// allreduce) against the naive one-batch forward and backward in Double. The MPI run itself is
/// in Tests/TrainTests/MPITrainingTests.
@Suite struct BatchNormSynchronizedTests {
    static func makeContext() -> KernelContext { try! KernelContext(threads: 2) }

    /// Channels 1 and 5, odd runs including 0 (a rank without samples), and one run large
    /// enough for the threaded path.
    static var cases: [BatchNormTests.Case] {
        var cases: [BatchNormTests.Case] = []
        for channels in [1, 5] {
            for spatial in [0] + oddSizes + [3 * 35] { cases.append(BatchNormTests.Case(channels: channels, spatial: spatial)) }
        }
        cases.append(BatchNormTests.Case(channels: 5, spatial: 3 * 35 * 35))
        return cases
    }

    /// Largest |fast - naive| over max(|naive|, 1e-6), and where.
    func relativeError(_ fast: [Double], _ naive: [Double]) -> (Double, Int) {
        let scale = max(naive.map { abs($0) }.max() ?? 0, 1e-6)
        var worst = 0.0, at = 0
        for (index, (a, b)) in zip(fast, naive).enumerated() where !(abs(a - b) <= worst) {
            worst = abs(a - b).isNaN ? .infinity : abs(a - b)
            at = index
        }
        return (worst / scale, at)
    }

    @Test func partialStatisticsMatchTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() {
            let x = BatchNormTests.input(test, seed: UInt64(seed))
            let count = 3 * test.channels
            var fast = [Double](repeating: .nan, count: count + 1), naive = fast
            fast[count] = 7
            BatchNorm.partialStatistics(partial: &fast, input: x, channels: test.channels, spatial: test.spatial, context: context)
            BatchNorm.naivePartialStatistics(partial: &naive, input: x, channels: test.channels, spatial: test.spatial)
            #expect(fast[count] == 7, "partialStatistics \(test.shape) wrote past its output")
            // Per quantity: sums, squares, centres (each compared on its own scale).
            for quantity in 0..<3 {
                let a = stride(from: quantity, to: count, by: 3).map { fast[$0] }, b = stride(from: quantity, to: count, by: 3).map { naive[$0] }
                let (error, at) = relativeError(a, b)
                #expect(error <= 1e-6, "partialStatistics \(test.shape) seed \(seed) quantity \(quantity): error \(error) at channel \(at) (\(a[at]) vs \(b[at]))")
            }
        }
    }

    @Test func partialGradientSumsMatchTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() {
            let c = test.channels, m = test.spatial
            let x = BatchNormTests.input(test, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 500)
            let dOutput = random.floats(c * m), mean = random.floats(c)
            var fast = [Double](repeating: .nan, count: 2 * c + 1), naive = fast
            fast[2 * c] = 7
            BatchNorm.partialGradientSums(sums: &fast, dOutput: dOutput, input: x, savedMean: mean, channels: c, spatial: m, context: context)
            BatchNorm.naivePartialGradientSums(sums: &naive, dOutput: dOutput, input: x, savedMean: mean, channels: c, spatial: m)
            #expect(fast[2 * c] == 7, "partialGradientSums \(test.shape) wrote past its output")
            for quantity in 0..<2 {
                let a = stride(from: quantity, to: 2 * c, by: 2).map { fast[$0] }, b = stride(from: quantity, to: 2 * c, by: 2).map { naive[$0] }
                // The sums cancel: compare against the sum of magnitudes, not the result.
                var magnitude = 1e-6
                for channel in 0..<c {
                    var total = 0.0
                    for index in 0..<m {
                        let dy = Double(dOutput[channel * m + index])
                        total += quantity == 0 ? abs(dy) : abs(dy * (Double(x[channel * m + index]) - Double(mean[channel])))
                    }
                    magnitude = max(magnitude, total)
                }
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                #expect(worst <= 1e-6 * magnitude, "partialGradientSums \(test.shape) seed \(seed) quantity \(quantity): difference \(worst) against sums of magnitude \(magnitude)")
            }
        }
    }

    @Test func normaliseTrainingMatchesTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() where test.spatial > 0 {
            let c = test.channels, m = test.spatial
            let x = BatchNormTests.input(test, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 600)
            let gamma = random.floats(c, 0.5, 1.5), beta = random.floats(c), mean = random.floats(c), invStd = random.floats(c, 0.2, 3)
            checkAgainstTwin("BatchNorm.normaliseTraining", shape: test.shape, seed: UInt64(seed), outputCounts: [c * m]) { outputs, fast in
                if fast {
                    BatchNorm.normaliseTraining(output: outputs[0], input: x, savedMean: mean, savedInvStd: invStd, gamma: gamma,
                                                beta: beta, channels: c, spatial: m, context: context)
                } else {
                    BatchNorm.naiveNormaliseTraining(output: outputs[0], input: x, savedMean: mean, savedInvStd: invStd, gamma: gamma,
                                                     beta: beta, channels: c, spatial: m)
                }
            }
        }
    }

    @Test func backwardWithSumsMatchesTwin() {
        let context = Self.makeContext()
        for (seed, test) in Self.cases.enumerated() where test.spatial > 0 {
            let c = test.channels, m = test.spatial
            let x = BatchNormTests.input(test, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 700)
            let gamma = random.floats(c, 0.5, 1.5), mean = random.floats(c), invStd = random.floats(c, 0.2, 3)
            let dOutput = random.floats(c * m)
            let globalSums = (0..<(2 * c)).map { _ in random.double(-5, 5) }, localSums = (0..<(2 * c)).map { _ in random.double(-2, 2) }
            checkAgainstTwin("BatchNorm.backwardWithSums", shape: test.shape, seed: UInt64(seed), outputCounts: [c * m, c, c],
                             tolerance: 1e-4) { outputs, fast in
                if fast {
                    BatchNorm.backwardWithSums(dInput: outputs[0], dGamma: outputs[1], dBeta: outputs[2], dOutput: dOutput,
                                               savedMean: mean, savedInvStd: invStd, input: x, gamma: gamma, globalSums: globalSums,
                                               localSums: localSums, channels: c, spatial: m, globalSpatial: 3 * m + 1, context: context)
                } else {
                    BatchNorm.naiveBackwardWithSums(dInput: outputs[0], dGamma: outputs[1], dBeta: outputs[2], dOutput: dOutput,
                                                    savedMean: mean, savedInvStd: invStd, input: x, gamma: gamma, globalSums: globalSums,
                                                    localSums: localSums, channels: c, spatial: m, globalSpatial: 3 * m + 1)
                }
            }
        }
    }

    /// K simulated ranks holding uneven parts of one batch (one of them empty) compute, between
    /// them, the one-batch forward (output, saved and running statistics) and backward (dInput
    /// of every sample; dGamma and dBeta summed over the ranks, as the gradient allreduce does)
    /// of the naive twins run in Double on the whole batch. Inputs have means far from 0 and
    /// differing between the ranks' parts, so the centred combination matters.
    @Test(arguments: [[7], [3, 4], [0, 3, 4], [1, 1, 5, 2]])
    func ranksTogetherComputeTheWholeBatch(parts: [Int]) throws {
        let context = Self.makeContext()
        let c = 3, plane = 9, samples = parts.reduce(0, +)
        let m = samples * plane
        var random = SeededRandom(seed: UInt64(parts.count) * 31 + 1)
        // CNHW [C, N * plane]; sample n's values sit at channel * m + n * plane ..< + plane.
        var x = [Float](repeating: 0, count: c * m)
        for channel in 0..<c {
            for index in 0..<m { x[channel * m + index] = 20 + Float(channel) + Float(index / plane) * 0.5 + 2 * random.float() }
        }
        let gamma = random.floats(c, 0.5, 1.5), beta = random.floats(c), dOutput = random.floats(c * m)
        let startMean = random.floats(c), startVariance = random.floats(c, 0.5, 2)

        // The reference: the whole batch in Double.
        let xD = x.map(Double.init), gammaD = gamma.map(Double.init), betaD = beta.map(Double.init), dOutputD = dOutput.map(Double.init)
        var yD = [Double](repeating: 0, count: c * m), dXD = yD
        var meanD = [Double](repeating: 0, count: c), invStdD = meanD, dGammaD = meanD, dBetaD = meanD
        var runningMeanD = startMean.map(Double.init), runningVarianceD = startVariance.map(Double.init)
        BatchNorm.naiveForwardTraining(output: &yD, savedMean: &meanD, savedInvStd: &invStdD, runningMean: &runningMeanD,
                                       runningVariance: &runningVarianceD, input: xD, gamma: gammaD, beta: betaD, channels: c, spatial: m)
        BatchNorm.naiveBackward(dInput: &dXD, dGamma: &dGammaD, dBeta: &dBetaD, dOutput: dOutputD, savedMean: meanD,
                                savedInvStd: invStdD, input: xD, gamma: gammaD, channels: c, spatial: m)

        // Each rank's slice of a CNHW tensor: its samples of every channel, contiguous.
        let firsts = parts.indices.map { parts[..<$0].reduce(0, +) }
        func slice(_ tensor: [Float], rank: Int) -> [Float] {
            var part: [Float] = []
            for channel in 0..<c {
                part += tensor[(channel * m + firsts[rank] * plane)..<(channel * m + (firsts[rank] + parts[rank]) * plane)]
            }
            return part
        }
        let rankSpatial = parts.map { $0 * plane }
        // Forward: partial statistics, the "allgather", the combination (on every rank).
        var gathered: [Double] = []
        for rank in parts.indices {
            var partial = [Double](repeating: 0, count: 3 * c)
            BatchNorm.partialStatistics(partial: &partial, input: slice(x, rank: rank), channels: c, spatial: rankSpatial[rank], context: context)
            gathered += partial
        }
        var y = [Float](repeating: 0, count: c * m), dX = y
        var dGamma = [Float](repeating: 0, count: c), dBeta = dGamma
        var sums = [Double](repeating: 0, count: 2 * c)
        var savedMeans: [[Float]] = [], savedInvStds: [[Float]] = [], runnings: [[Float]] = []
        for rank in parts.indices {
            var mean = [Float](repeating: 0, count: c), invStd = mean, runningMean = startMean, runningVariance = startVariance
            BatchNorm.combineStatistics(savedMean: &mean, savedInvStd: &invStd, runningMean: &runningMean, runningVariance: &runningVariance,
                                        gathered: gathered, rankSpatial: rankSpatial, ranks: parts.count, channels: c)
            savedMeans.append(mean)
            savedInvStds.append(invStd)
            runnings.append(runningMean + runningVariance)
            var output = [Float](repeating: 0, count: c * rankSpatial[rank])
            BatchNorm.normaliseTraining(output: &output, input: slice(x, rank: rank), savedMean: mean, savedInvStd: invStd,
                                        gamma: gamma, beta: beta, channels: c, spatial: rankSpatial[rank], context: context)
            for channel in 0..<c {
                for index in 0..<rankSpatial[rank] {
                    y[channel * m + firsts[rank] * plane + index] = output[channel * rankSpatial[rank] + index]
                }
            }
            var local = [Double](repeating: 0, count: 2 * c)
            BatchNorm.partialGradientSums(sums: &local, dOutput: slice(dOutput, rank: rank), input: slice(x, rank: rank), savedMean: mean,
                                          channels: c, spatial: rankSpatial[rank], context: context)
            for index in 0..<(2 * c) { sums[index] += local[index] }
        }
        #expect(Set(runnings.map { $0.map(\.bitPattern) }).count == 1, "the ranks' running statistics differ: \(runnings)")
        // Backward with the "allreduced" sums; dGamma and dBeta from each rank's own sums, added.
        for rank in parts.indices {
            var local = [Double](repeating: 0, count: 2 * c)
            BatchNorm.partialGradientSums(sums: &local, dOutput: slice(dOutput, rank: rank), input: slice(x, rank: rank),
                                          savedMean: savedMeans[rank], channels: c, spatial: rankSpatial[rank], context: context)
            var part = [Float](repeating: 0, count: c * rankSpatial[rank])
            BatchNorm.backwardWithSums(dInput: &part, dGamma: &dGamma, dBeta: &dBeta, dOutput: slice(dOutput, rank: rank),
                                       savedMean: savedMeans[rank], savedInvStd: savedInvStds[rank], input: slice(x, rank: rank),
                                       gamma: gamma, globalSums: sums, localSums: local, channels: c, spatial: rankSpatial[rank],
                                       globalSpatial: m, context: context)
            for channel in 0..<c {
                for index in 0..<rankSpatial[rank] { dX[channel * m + firsts[rank] * plane + index] = part[channel * rankSpatial[rank] + index] }
            }
        }
        func error(_ fast: [Float], _ reference: [Double]) -> Double {
            let scale = max(reference.map { abs($0) }.max() ?? 0, 1e-6)
            return zip(fast, reference).map { abs(Double($0) - $1) }.max()! / scale
        }
        let errors: [(String, Double, Double)] = [
            ("output", error(y, yD), 1e-5), ("mean", error(savedMeans[0], meanD), 1e-6), ("invStd", error(savedInvStds[0], invStdD), 1e-5),
            ("running", error(runnings[0], runningMeanD + runningVarianceD), 1e-5),
            ("dInput", error(dX, dXD), 1e-4), ("dGamma", error(dGamma, dGammaD), 1e-4), ("dBeta", error(dBeta, dBetaD), 1e-5),
        ]
        for (name, value, bar) in errors {
            #expect(value <= bar, "parts \(parts): \(name) normalised error \(value) against the whole batch in Double")
        }
    }
}
