import Platform

/// Batch norm whose statistics span the ranks of a data-parallel run (`--sync-bn`, as PyTorch's
/// SyncBatchNorm): rank r holds its part of the batch, [C, M_r] with M_r = n_r * H * W, and the
/// training-mode forward and backward are cut where the ranks exchange per-channel numbers:
///
///     forward:  partialStatistics (each rank) -> allgather -> combineStatistics (every rank,
///               the same numbers in rank order, so the same result) -> normaliseTraining
///     backward: partialGradientSums (each rank) -> allreduce (sum) -> backwardWithSums
///
/// The forward exchanges, per rank and channel, the sum S_r, the centre c_r = Float(S_r / M_r)
/// and Q_r, the sum of squared deviations from c_r. A plain allreduce of sum x and sum x^2
/// would give the variance as E[x^2] - E[x]^2, which cancels when |mean| >> std (the
/// single-process kernel avoids it with two passes); the centred sums combine exactly instead:
///     sum over all ranks of (x - m)^2 = sum_r [Q_r + 2 (c_r - m)(S_r - M_r c_r) + M_r (c_r - m)^2]
/// for the global mean m (PyTorch also gathers per-rank mean, variance and count rather than
/// reducing them). The gradients dGamma and dBeta stay local (the trainer's gradient allreduce
/// sums them); only dInput uses the global sums of dy and dy * xhat.
/// - Shapes: input, output, dInput, dOutput [C, M_r]; gamma, beta, saved and running
///   statistics [C]; partial statistics [C, 3] (S, Q, c) per rank, gathered [K, C, 3];
///   gradient sums [C, 2] (sum dy, sum dy * (x - mean)).
extension BatchNorm {
    /// Doubles per channel a rank contributes to the forward exchange: S_r, Q_r, c_r.
    public static let partialStatisticsPerChannel = 3
    /// Doubles per channel of the backward exchange: sum dy, sum dy * (x - mean).
    public static let gradientSumsPerChannel = 2

    // MARK: forward

    /// The test oracle for `partialStatistics`: plain loops, Double sums.
    public static func naivePartialStatistics<T: BinaryFloatingPoint>(
        partial: UnsafeMutablePointer<Double>, input: UnsafePointer<T>, channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            let x = input + channel * spatial
            var sum = 0.0
            for index in 0..<spatial { sum += Double(x[index]) }
            let centre = spatial > 0 ? Double(T(sum / Double(spatial))) : 0
            var squares = 0.0
            for index in 0..<spatial { squares += (Double(x[index]) - centre) * (Double(x[index]) - centre) }
            partial[3 * channel] = sum
            partial[3 * channel + 1] = squares
            partial[3 * channel + 2] = centre
        }
    }

    /// This rank's (S_r, Q_r, c_r) per channel; zeros for an empty part (M_r = 0).
    /// - Shapes: partial [C, 3]; input [C, M_r].
    public static func partialStatistics(
        partial: UnsafeMutablePointer<Double>, input: UnsafePointer<Float>, channels: Int, spatial: Int, context: KernelContext
    ) {
        context.pool.run(tasks: channels, threads: spatial * channels >= parallelThreshold ? context.threads : 1,
                         PartialStatisticsChannel(partial: partial, input: input, spatial: spatial))
    }

    /// `partialStatistics` of one channel.
    struct PartialStatisticsChannel: ParallelTask {
        let partial: UnsafeMutablePointer<Double>, input: UnsafePointer<Float>
        let spatial: Int

        func run(task channel: Int) {
            let x = input + channel * spatial
            let sum = blockedSum(x, count: spatial)
            let centre: Float = spatial > 0 ? Float(sum / Double(spatial)) : 0
            partial[3 * channel] = sum
            partial[3 * channel + 1] = blockedSumOfSquaredDeviations(x, mean: centre, count: spatial)
            partial[3 * channel + 2] = Double(centre)
        }
    }

    /// The global statistics from every rank's partial ones (`gathered`, [K, C, 3] in rank
    /// order, rank r covering `rankSpatial[r]` values a channel): the mean and invStd of the
    /// whole batch into `savedMean`/`savedInvStd`, and the running statistics updated from
    /// them (unbiased variance over the global count, as one process would). Scalar work on
    /// K x C numbers, the same on every rank. Requires a global count above 1.
    /// - Shapes: gathered [K, C, 3]; rankSpatial [K]; the rest [C].
    public static func combineStatistics(
        savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>,
        runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
        gathered: UnsafePointer<Double>, rankSpatial: UnsafePointer<Int>, ranks: Int, channels: Int,
        epsilon: Float = defaultEpsilon, momentum: Float = defaultMomentum
    ) {
        var total = 0
        for rank in 0..<ranks { total += rankSpatial[rank] }
        precondition(total > 1, "BatchNorm training needs more than one value per channel over all ranks (N*H*W = \(total))")
        let count = Double(total)
        for channel in 0..<channels {
            var sum = 0.0
            for rank in 0..<ranks { sum += gathered[(rank * channels + channel) * 3] }
            // The Float mean one process saves; the squares are taken about it as there.
            let mean = Float(sum / count)
            let m = Double(mean)
            var squares = 0.0
            for rank in 0..<ranks {
                let entry = gathered + (rank * channels + channel) * 3
                let values = Double(rankSpatial[rank])
                let shift = entry[2] - m
                squares += entry[1] + 2 * shift * (entry[0] - values * entry[2]) + values * shift * shift
            }
            squares = max(squares, 0)
            savedMean[channel] = mean
            savedInvStd[channel] = Float(1 / (squares / count + Double(epsilon)).squareRoot())
            runningMean[channel] = (1 - momentum) * runningMean[channel] + momentum * mean
            runningVariance[channel] = (1 - momentum) * runningVariance[channel] + momentum * Float(squares / (count - 1))
        }
    }

    /// The test oracle for `normaliseTraining`.
    public static func naiveNormaliseTraining<T: BinaryFloatingPoint>(
        output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, savedMean: UnsafePointer<T>, savedInvStd: UnsafePointer<T>,
        gamma: UnsafePointer<T>, beta: UnsafePointer<T>, channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            for index in 0..<spatial {
                let offset = channel * spatial + index
                output[offset] = gamma[channel] * (input[offset] - savedMean[channel]) * savedInvStd[channel] + beta[channel]
            }
        }
    }

    /// y = gamma * (x - mean) * invStd + beta with the combined (global) statistics.
    /// - Shapes: output, input [C, M_r]; savedMean, savedInvStd, gamma, beta [C].
    public static func normaliseTraining(
        output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, savedMean: UnsafePointer<Float>,
        savedInvStd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        channels: Int, spatial: Int, context: KernelContext
    ) {
        context.pool.run(tasks: channels, threads: spatial * channels >= parallelThreshold ? context.threads : 1,
                         NormaliseChannel(output: output, input: input, savedMean: savedMean, savedInvStd: savedInvStd,
                                          gamma: gamma, beta: beta, spatial: spatial))
    }

    /// `normaliseTraining` of one channel.
    struct NormaliseChannel: ParallelTask {
        let output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let savedMean: UnsafePointer<Float>, savedInvStd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
        let spatial: Int

        func run(task channel: Int) {
            normalise(output + channel * spatial, input + channel * spatial, mean: savedMean[channel],
                      scale: gamma[channel] * savedInvStd[channel], shift: beta[channel], count: spatial)
        }
    }

    // MARK: backward

    /// The test oracle for `partialGradientSums`.
    public static func naivePartialGradientSums<T: BinaryFloatingPoint>(
        sums: UnsafeMutablePointer<Double>, dOutput: UnsafePointer<T>, input: UnsafePointer<T>, savedMean: UnsafePointer<T>,
        channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            var sumDy = 0.0, sumDyCentered = 0.0
            for index in 0..<spatial {
                let offset = channel * spatial + index
                sumDy += Double(dOutput[offset])
                sumDyCentered += Double(dOutput[offset]) * (Double(input[offset]) - Double(savedMean[channel]))
            }
            sums[2 * channel] = sumDy
            sums[2 * channel + 1] = sumDyCentered
        }
    }

    /// This rank's sum dy and sum dy * (x - mean) per channel (mean: the global one saved by
    /// the forward), blocked as `backward`.
    /// - Shapes: sums [C, 2]; dOutput, input [C, M_r]; savedMean [C].
    public static func partialGradientSums(
        sums: UnsafeMutablePointer<Double>, dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>,
        savedMean: UnsafePointer<Float>, channels: Int, spatial: Int, context: KernelContext
    ) {
        context.pool.run(tasks: channels, threads: spatial * channels >= parallelThreshold ? context.threads : 1,
                         PartialGradientSumsChannel(sums: sums, dOutput: dOutput, input: input, savedMean: savedMean, spatial: spatial))
    }

    /// `partialGradientSums` of one channel.
    struct PartialGradientSumsChannel: ParallelTask {
        let sums: UnsafeMutablePointer<Double>, dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>
        let savedMean: UnsafePointer<Float>
        let spatial: Int

        func run(task channel: Int) {
            let (sumDy, sumDyCentered) = gradientSums(dOutput + channel * spatial, input + channel * spatial,
                                                      mean: savedMean[channel], count: spatial)
            sums[2 * channel] = sumDy
            sums[2 * channel + 1] = sumDyCentered
        }
    }

    /// The test oracle for `backwardWithSums`.
    public static func naiveBackwardWithSums<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dGamma: UnsafeMutablePointer<T>, dBeta: UnsafeMutablePointer<T>,
        dOutput: UnsafePointer<T>, savedMean: UnsafePointer<T>, savedInvStd: UnsafePointer<T>,
        input: UnsafePointer<T>, gamma: UnsafePointer<T>, globalSums: UnsafePointer<Double>, localSums: UnsafePointer<Double>,
        channels: Int, spatial: Int, globalSpatial: Int
    ) {
        let count = T(globalSpatial)
        for channel in 0..<channels {
            let invStd = savedInvStd[channel]
            let sumDy = T(globalSums[2 * channel])
            let sumDyXhat = T(globalSums[2 * channel + 1]) * invStd
            for index in 0..<spatial {
                let offset = channel * spatial + index
                let xhat = (input[offset] - savedMean[channel]) * invStd
                dInput[offset] += gamma[channel] * invStd / count * (count * dOutput[offset] - sumDy - xhat * sumDyXhat)
            }
            dGamma[channel] += T(localSums[2 * channel + 1]) * invStd
            dBeta[channel] += T(localSums[2 * channel])
        }
    }

    /// Backward of the synchronised forward: `backward`'s formula with the global sums over
    /// the global count (all ranks' values a channel) for dInput,
    ///     dx += gamma * invStd * (dy - sum dy / M - xhat * sum (dy * xhat) / M),
    /// while dGamma and dBeta take this rank's own sums (the gradient allreduce adds the ranks').
    /// - Shapes: dInput, dOutput, input [C, M_r]; dGamma, dBeta, savedMean, savedInvStd, gamma
    ///   [C]; globalSums, localSums [C, 2].
    public static func backwardWithSums(
        dInput: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>,
        dOutput: UnsafePointer<Float>, savedMean: UnsafePointer<Float>, savedInvStd: UnsafePointer<Float>,
        input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, globalSums: UnsafePointer<Double>, localSums: UnsafePointer<Double>,
        channels: Int, spatial: Int, globalSpatial: Int, context: KernelContext
    ) {
        precondition(globalSpatial > 0, "BatchNorm backward over no values")
        context.pool.run(tasks: channels, threads: spatial * channels >= parallelThreshold ? context.threads : 1,
                         BackwardWithSumsChannel(dInput: dInput, dGamma: dGamma, dBeta: dBeta, dOutput: dOutput, savedMean: savedMean,
                                                 savedInvStd: savedInvStd, input: input, gamma: gamma, globalSums: globalSums,
                                                 localSums: localSums, spatial: spatial, inverseCount: 1 / Double(globalSpatial)))
    }

    /// `backwardWithSums` of one channel.
    struct BackwardWithSumsChannel: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>
        let dOutput: UnsafePointer<Float>, savedMean: UnsafePointer<Float>, savedInvStd: UnsafePointer<Float>
        let input: UnsafePointer<Float>, gamma: UnsafePointer<Float>
        let globalSums: UnsafePointer<Double>, localSums: UnsafePointer<Double>
        let spatial: Int, inverseCount: Double

        func run(task channel: Int) {
            let invStd = savedInvStd[channel]
            let sumDyXhat = globalSums[2 * channel + 1] * Double(invStd)
            applyInputGradient(dInput + channel * spatial, dOutput + channel * spatial, input + channel * spatial,
                               mean: savedMean[channel], scale: gamma[channel] * invStd,
                               meanDy: Float(globalSums[2 * channel] * inverseCount),
                               meanDyXhat: Float(sumDyXhat * Double(invStd) * inverseCount), count: spatial)
            dGamma[channel] += Float(localSums[2 * channel + 1] * Double(invStd))
            dBeta[channel] += Float(localSums[2 * channel])
        }
    }
}
