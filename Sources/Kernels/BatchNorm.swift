import Platform

/// Batch normalisation over CNHW activations, per channel over the M = N*H*W values of the batch,
/// with PyTorch's semantics: the batch is normalised with its mean and *biased* variance, while
/// the running variance is updated with the *unbiased* one (M / (M - 1) times larger).
///     y = gamma * (x - mean) * invStd + beta,   invStd = 1 / sqrt(var + eps)
/// The fast paths split channels across threads; each channel is reduced by one thread in a
/// fixed order, so results do not depend on timing or on the thread count.
/// Per-channel sums are blocked: `blockSize` values are summed in FloatVector lanes, and each
/// block's total is added into a Double, so no Float lane sums more than a few dozen values
/// however large M is (resnet8 reduces 50,176 per channel, and the backward sums cancel).
/// - Shapes: input/output [C, M] with M = N*H*W (CNHW viewed per channel); gamma, beta,
///   running and saved statistics [C].
public enum BatchNorm {
    /// PyTorch's default epsilon.
    public static let defaultEpsilon: Float = 1e-5
    /// PyTorch's default momentum: running = (1 - momentum) * running + momentum * batch.
    public static let defaultMomentum: Float = 0.1

    /// Floats the forward pass saves per layer for the backward pass: mean and invStd per channel.
    public static func savedFloats(channels: Int) -> Int { 2 * channels }

    /// Below this many elements the pool's wake-up costs more than it saves.
    static let parallelThreshold = 1 << 14

    /// Values summed in Float vector lanes before the block total moves into a Double
    /// accumulator: 32 per lane with two 8-wide accumulators (64 with 4-wide NEON). A multiple
    /// of 2 * FloatVector.scalarCount, so only the last block has a partial tail.
    static let blockSize = 512

    private static func threads(context: KernelContext, channels: Int, spatial: Int) -> Int {
        channels * spatial >= parallelThreshold ? context.threads : 1
    }

    // MARK: forward, training mode

    /// The test oracle for `forwardTraining`; plain loops in `T` (Double in gradient checks).
    public static func naiveForwardTraining<T: BinaryFloatingPoint>(
        output: UnsafeMutablePointer<T>, savedMean: UnsafeMutablePointer<T>, savedInvStd: UnsafeMutablePointer<T>,
        runningMean: UnsafeMutablePointer<T>, runningVariance: UnsafeMutablePointer<T>,
        input: UnsafePointer<T>, gamma: UnsafePointer<T>, beta: UnsafePointer<T>,
        channels: Int, spatial: Int, epsilon: T = 1e-5, momentum: T = 0.1
    ) {
        precondition(spatial > 1, "BatchNorm training needs more than one value per channel (N*H*W = \(spatial))")
        let count = T(spatial)
        for channel in 0..<channels {
            let x = input + channel * spatial
            var sum: T = 0
            for index in 0..<spatial { sum += x[index] }
            let mean = sum / count
            var squares: T = 0
            for index in 0..<spatial { squares += (x[index] - mean) * (x[index] - mean) }
            let variance = squares / count
            let invStd = 1 / (variance + epsilon).squareRoot()
            for index in 0..<spatial {
                output[channel * spatial + index] = gamma[channel] * (x[index] - mean) * invStd + beta[channel]
            }
            savedMean[channel] = mean
            savedInvStd[channel] = invStd
            runningMean[channel] = (1 - momentum) * runningMean[channel] + momentum * mean
            let unbiased = squares / (count - 1)
            runningVariance[channel] = (1 - momentum) * runningVariance[channel] + momentum * unbiased
        }
    }

    /// Normalises with the batch statistics, saves mean and invStd per channel for `backward`,
    /// and updates the running statistics in place (unbiased variance, as PyTorch).
    /// Two passes for the variance (sum of squared deviations), not E[x^2] - E[x]^2, which
    /// cancels catastrophically when |mean| >> std.
    /// - Shapes: output, input [C, M]; savedMean, savedInvStd, runningMean, runningVariance,
    ///   gamma, beta [C]. Requires M > 1.
    public static func forwardTraining(
        output: UnsafeMutablePointer<Float>, savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>,
        runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>,
        input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        channels: Int, spatial: Int, epsilon: Float = defaultEpsilon, momentum: Float = defaultMomentum,
        relu: Bool = false, context: KernelContext
    ) {
        precondition(spatial > 1, "BatchNorm training needs more than one value per channel (N*H*W = \(spatial))")
        let count = Double(spatial)
        context.pool.run(tasks: channels, threads: threads(context: context, channels: channels, spatial: spatial),
                         ForwardTrainingChannel(output: output, savedMean: savedMean, savedInvStd: savedInvStd, runningMean: runningMean,
                                                runningVariance: runningVariance, input: input, gamma: gamma, beta: beta,
                                                spatial: spatial, count: count, epsilon: epsilon, momentum: momentum, relu: relu))
    }

    /// `forwardTraining` of one channel.
    struct ForwardTrainingChannel: ParallelTask {
        let output: UnsafeMutablePointer<Float>, savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>
        let runningMean: UnsafeMutablePointer<Float>, runningVariance: UnsafeMutablePointer<Float>
        let input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
        let spatial: Int, count: Double
        let epsilon: Float, momentum: Float
        let relu: Bool

        func run(task channel: Int) {
            let x = input + channel * spatial
            let y = output + channel * spatial
            let mean = Float(blockedSum(x, count: spatial) / count)
            // Deviations from the Float mean that is saved and used for y and in backward.
            let squares = blockedSumOfSquaredDeviations(x, mean: mean, count: spatial)
            let invStd = Float(1 / (squares / count + Double(epsilon)).squareRoot())
            normalise(y, x, mean: mean, scale: gamma[channel] * invStd, shift: beta[channel], count: spatial, relu: relu)
            savedMean[channel] = mean
            savedInvStd[channel] = invStd
            runningMean[channel] = (1 - momentum) * runningMean[channel] + momentum * mean
            runningVariance[channel] = (1 - momentum) * runningVariance[channel] + momentum * Float(squares / (count - 1))
        }
    }

    // MARK: forward, inference mode

    /// The test oracle for `forwardInference`.
    public static func naiveForwardInference<T: BinaryFloatingPoint>(
        output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, gamma: UnsafePointer<T>, beta: UnsafePointer<T>,
        runningMean: UnsafePointer<T>, runningVariance: UnsafePointer<T>,
        channels: Int, spatial: Int, epsilon: T = 1e-5
    ) {
        for channel in 0..<channels {
            let invStd = 1 / (runningVariance[channel] + epsilon).squareRoot()
            for index in 0..<spatial {
                let offset = channel * spatial + index
                output[offset] = gamma[channel] * (input[offset] - runningMean[channel]) * invStd + beta[channel]
            }
        }
    }

    /// Normalises with the running statistics (eval mode); nothing is saved or updated.
    /// `output` may be the same buffer as `input`.
    /// - Shapes: output, input [C, M]; gamma, beta, runningMean, runningVariance [C].
    public static func forwardInference(
        output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
        runningMean: UnsafePointer<Float>, runningVariance: UnsafePointer<Float>,
        channels: Int, spatial: Int, epsilon: Float = defaultEpsilon, relu: Bool = false, context: KernelContext
    ) {
        context.pool.run(tasks: channels, threads: threads(context: context, channels: channels, spatial: spatial),
                         ForwardInferenceChannel(output: output, input: input, gamma: gamma, beta: beta, runningMean: runningMean,
                                                 runningVariance: runningVariance, spatial: spatial, epsilon: epsilon, relu: relu))
    }

    /// `forwardInference` of one channel.
    struct ForwardInferenceChannel: ParallelTask {
        let output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
        let runningMean: UnsafePointer<Float>, runningVariance: UnsafePointer<Float>
        let spatial: Int
        let epsilon: Float
        let relu: Bool

        func run(task channel: Int) {
            let invStd = 1 / (runningVariance[channel] + epsilon).squareRoot()
            normalise(output + channel * spatial, input + channel * spatial, mean: runningMean[channel],
                      scale: gamma[channel] * invStd, shift: beta[channel], count: spatial, relu: relu)
        }
    }

    // MARK: backward (training mode)

    /// The test oracle for `backward`.
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dGamma: UnsafeMutablePointer<T>, dBeta: UnsafeMutablePointer<T>,
        dOutput: UnsafePointer<T>, savedMean: UnsafePointer<T>, savedInvStd: UnsafePointer<T>,
        input: UnsafePointer<T>, gamma: UnsafePointer<T>, channels: Int, spatial: Int
    ) {
        let count = T(spatial)
        for channel in 0..<channels {
            let base = channel * spatial
            var sumDy: T = 0
            var sumDyXhat: T = 0
            for index in 0..<spatial {
                let xhat = (input[base + index] - savedMean[channel]) * savedInvStd[channel]
                sumDy += dOutput[base + index]
                sumDyXhat += dOutput[base + index] * xhat
            }
            for index in 0..<spatial {
                let xhat = (input[base + index] - savedMean[channel]) * savedInvStd[channel]
                dInput[base + index] += gamma[channel] * savedInvStd[channel] / count
                    * (count * dOutput[base + index] - sumDy - xhat * sumDyXhat)
            }
            dGamma[channel] += sumDyXhat
            dBeta[channel] += sumDy
        }
    }

    /// Backward of `forwardTraining` (batch statistics depend on x, hence the two mean terms):
    ///     xhat = (x - mean) * invStd
    ///     dBeta += sum dy,   dGamma += sum dy * xhat
    ///     dx += gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat))
    /// (dx = that with `accumulate` false: the first writer of a gradient buffer, which then
    /// needs no zeroing; the same bits as adding into zeros, up to the sign of a zero).
    /// Recomputes xhat from the input and the saved statistics instead of storing it.
    /// - Shapes: dInput, dOutput, input [C, M]; dGamma, dBeta, savedMean, savedInvStd, gamma [C].
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>,
        dOutput: UnsafePointer<Float>, savedMean: UnsafePointer<Float>, savedInvStd: UnsafePointer<Float>,
        input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, channels: Int, spatial: Int,
        reluBeta: UnsafePointer<Float>? = nil, accumulate: Bool = true, context: KernelContext
    ) {
        let inverseCount = 1 / Double(spatial)
        context.pool.run(tasks: channels, threads: threads(context: context, channels: channels, spatial: spatial),
                         BackwardChannel(dInput: dInput, dGamma: dGamma, dBeta: dBeta, dOutput: dOutput, savedMean: savedMean,
                                         savedInvStd: savedInvStd, input: input, gamma: gamma, spatial: spatial,
                                         inverseCount: inverseCount, reluBeta: reluBeta, accumulate: accumulate))
    }

    /// `backward` of one channel.
    struct BackwardChannel: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>
        let dOutput: UnsafePointer<Float>, savedMean: UnsafePointer<Float>, savedInvStd: UnsafePointer<Float>
        let input: UnsafePointer<Float>, gamma: UnsafePointer<Float>
        let spatial: Int, inverseCount: Double
        /// beta, where an in-place ReLU after this batch norm was fused into its forward (its
        /// gradient shares dOutput): dOutput is read masked by y > 0, as the ReLU's backward
        /// would have written it. The mask is recomputed from x, not read from y: y = (x - mean)
        /// * gamma * invStd + beta with the forward's own arithmetic (`normalise`), so the same
        /// bits, and one tensor fewer to read.
        let reluBeta: UnsafePointer<Float>?
        /// dx += (true) or dx = (false).
        let accumulate: Bool

        func run(task channel: Int) {
            switch (reluBeta, accumulate) {
            case (let reluBeta?, true): channelGradient(channel, shift: reluBeta[channel], masked: true, accumulate: true)
            case (let reluBeta?, false): channelGradient(channel, shift: reluBeta[channel], masked: true, accumulate: false)
            case (nil, true): channelGradient(channel, shift: 0, masked: false, accumulate: true)
            case (nil, false): channelGradient(channel, shift: 0, masked: false, accumulate: false)
            }
        }

        @inline(__always)
        func channelGradient(_ channel: Int, shift: Float, masked: Bool, accumulate: Bool) {
            let x = input + channel * spatial
            let dy = dOutput + channel * spatial
            let dx = dInput + channel * spatial
            let mean = savedMean[channel]
            let invStd = savedInvStd[channel]
            let scale = gamma[channel] * invStd
            let mask = ReLUMask(scale: scale, shift: shift, masked: masked)

            let (sumDy, sumDyCentered) = gradientSums(dy, x, mean: mean, count: spatial, mask: mask)
            let sumDyXhat = sumDyCentered * Double(invStd)
            applyInputGradient(dx, dy, x, mean: mean, scale: scale,
                               meanDy: Float(sumDy * inverseCount), meanDyXhat: Float(sumDyXhat * Double(invStd) * inverseCount),
                               count: spatial, mask: mask, accumulate: accumulate)
            dGamma[channel] += Float(sumDyXhat)
            dBeta[channel] += Float(sumDy)
        }
    }

    // MARK: helpers

    /// The fused ReLU's mask in the backward: y > 0 for y = centered * scale + shift, computed
    /// as `normalise` computes y (an FMA on vectors, a multiply and an add on the scalar tail).
    /// With `masked` false every gradient passes.
    struct ReLUMask {
        let scale: Float, shift: Float, masked: Bool
        static let none = ReLUMask(scale: 0, shift: 0, masked: false)

        @inline(__always)
        func apply(_ dy: FloatVector, centered: FloatVector) -> FloatVector {
            guard masked else { return dy }
            let y = FloatVector(repeating: shift).addingProduct(centered, FloatVector(repeating: scale))
            return FloatVector(repeating: 0).replacing(with: dy, where: y .> FloatVector(repeating: 0))
        }

        @inline(__always)
        func apply(_ dy: Float, centered: Float) -> Float {
            guard masked else { return dy }
            return centered * scale + shift > 0 ? dy : 0
        }
    }

    /// sum dy and sum dy * (x - mean) over a run, blocked (see `blockSize`): both largely
    /// cancel, so their rounding error must stay small against the sums of |dy| and
    /// |dy * (x - mean)|. (invStd is factored out of the second sum.)
    @inline(__always)
    static func gradientSums(_ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, mean: Float, count: Int,
                             mask: ReLUMask = .none) -> (Double, Double) {
        let width = FloatVector.scalarCount
        let meanVector = FloatVector(repeating: mean)
        var sumDy: Double = 0
        var sumDyCentered: Double = 0
        var start = 0
        while start < count {
            let end = min(start + blockSize, count)
            var dy0 = FloatVector(repeating: 0), dy1 = FloatVector(repeating: 0)
            var centered0 = FloatVector(repeating: 0), centered1 = FloatVector(repeating: 0)
            var index = start
            while index + 2 * width <= end {
                let c0 = x.loadVector(at: index) - meanVector
                let c1 = x.loadVector(at: index + width) - meanVector
                let g0 = mask.apply(dy.loadVector(at: index), centered: c0)
                let g1 = mask.apply(dy.loadVector(at: index + width), centered: c1)
                dy0 += g0
                dy1 += g1
                centered0 = centered0.addingProduct(g0, c0)
                centered1 = centered1.addingProduct(g1, c1)
                index += 2 * width
            }
            if index + width <= end {
                let c0 = x.loadVector(at: index) - meanVector
                let g0 = mask.apply(dy.loadVector(at: index), centered: c0)
                dy0 += g0
                centered0 = centered0.addingProduct(g0, c0)
                index += width
            }
            var blockDy = (dy0 + dy1).sum()
            var blockCentered = (centered0 + centered1).sum()
            while index < end {
                let c = x[index] - mean
                let g = mask.apply(dy[index], centered: c)
                blockDy += g
                blockCentered += g * c
                index += 1
            }
            sumDy += Double(blockDy)
            sumDyCentered += Double(blockCentered)
            start = end
        }
        return (sumDy, sumDyCentered)
    }

    /// dx += k * (dy - a - (x - mean) * b) over a run, with k = gamma * invStd (`scale`),
    /// a = mean(dy), b = invStd^2 * mean(dy * (x - mean)) (xhat * mean(dy * xhat) with invStd
    /// folded in; `meanDyXhat` is that b). With `accumulate` false dx = that: the product
    /// rounded once, as the FMA onto a zero rounds it.
    @inline(__always)
    static func applyInputGradient(
        _ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
        mean: Float, scale: Float, meanDy: Float, meanDyXhat: Float, count: Int,
        mask: ReLUMask = .none, accumulate: Bool = true
    ) {
        let width = FloatVector.scalarCount
        let meanVector = FloatVector(repeating: mean)
        let k = FloatVector(repeating: scale)
        let a = FloatVector(repeating: meanDy)
        let b = FloatVector(repeating: meanDyXhat)
        var index = 0
        while index + width <= count {
            let centered = x.loadVector(at: index) - meanVector
            let g = mask.apply(dy.loadVector(at: index), centered: centered)
            let inner = g - a - centered * b
            dx.storeVector(accumulate ? dx.loadVector(at: index).addingProduct(k, inner) : k * inner, at: index)
            index += width
        }
        while index < count {
            let centered = x[index] - mean
            let g = mask.apply(dy[index], centered: centered)
            let term = scale * (g - meanDy - centered * meanDyXhat)
            if accumulate { dx[index] += term } else { dx[index] = term }
            index += 1
        }
    }

    /// Sum of a run, blocked: Float vector lanes within a block, Double across blocks.
    @inline(__always)
    static func blockedSum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        let width = FloatVector.scalarCount
        var total: Double = 0
        var start = 0
        while start < count {
            let end = min(start + blockSize, count)
            var first = FloatVector(repeating: 0)
            var second = FloatVector(repeating: 0)
            var index = start
            while index + 2 * width <= end {
                first += x.loadVector(at: index)
                second += x.loadVector(at: index + width)
                index += 2 * width
            }
            if index + width <= end {
                first += x.loadVector(at: index)
                index += width
            }
            var block = (first + second).sum()
            while index < end { block += x[index]; index += 1 }
            total += Double(block)
            start = end
        }
        return total
    }

    /// sum (x - mean)^2 over a run, blocked as `blockedSum`.
    @inline(__always)
    static func blockedSumOfSquaredDeviations(_ x: UnsafePointer<Float>, mean: Float, count: Int) -> Double {
        let width = FloatVector.scalarCount
        let meanVector = FloatVector(repeating: mean)
        var total: Double = 0
        var start = 0
        while start < count {
            let end = min(start + blockSize, count)
            var first = FloatVector(repeating: 0)
            var second = FloatVector(repeating: 0)
            var index = start
            while index + 2 * width <= end {
                let d0 = x.loadVector(at: index) - meanVector
                let d1 = x.loadVector(at: index + width) - meanVector
                first = first.addingProduct(d0, d0)
                second = second.addingProduct(d1, d1)
                index += 2 * width
            }
            if index + width <= end {
                let d0 = x.loadVector(at: index) - meanVector
                first = first.addingProduct(d0, d0)
                index += width
            }
            var block = (first + second).sum()
            while index < end {
                let d = x[index] - mean
                block += d * d
                index += 1
            }
            total += Double(block)
            start = end
        }
        return total
    }

    /// y = (x - mean) * scale + shift over a run; y may alias x. With `relu` y = max(0, that), NaN to 0 as `ReLU.forward`: the in-place ReLU after a
    /// batch norm in the same pass, the same bits as the two passes.
    @inline(__always)
    static func normalise(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, mean: Float, scale: Float, shift: Float, count: Int,
        relu: Bool = false
    ) {
        let width = FloatVector.scalarCount
        let meanVector = FloatVector(repeating: mean)
        let scaleVector = FloatVector(repeating: scale)
        let shiftVector = FloatVector(repeating: shift)
        let zero = FloatVector(repeating: 0)
        var index = 0
        while index + width <= count {
            let value = shiftVector.addingProduct(x.loadVector(at: index) - meanVector, scaleVector)
            y.storeVector(relu ? zero.replacing(with: value, where: value .> zero) : value, at: index)
            index += width
        }
        while index < count {
            let value = (x[index] - mean) * scale + shift
            y[index] = relu ? (value > 0 ? value : 0) : value
            index += 1
        }
    }
}

// MARK: backward with frozen statistics (partial updates)

extension BatchNorm {
    /// The test oracle for `backwardFrozen`.
    public static func naiveBackwardFrozen<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>?, dGamma: UnsafeMutablePointer<T>?, dBeta: UnsafeMutablePointer<T>?,
        dOutput: UnsafePointer<T>, input: UnsafePointer<T>?, gamma: UnsafePointer<T>,
        runningMean: UnsafePointer<T>, runningVariance: UnsafePointer<T>, channels: Int, spatial: Int, epsilon: T = 1e-5
    ) {
        for channel in 0..<channels {
            let invStd = 1 / (runningVariance[channel] + epsilon).squareRoot()
            for index in 0..<spatial {
                let offset = channel * spatial + index
                dBeta?[channel] += dOutput[offset]
                if let dGamma, let input { dGamma[channel] += dOutput[offset] * (input[offset] - runningMean[channel]) * invStd }
                dInput?[offset] += dOutput[offset] * gamma[channel] * invStd
            }
        }
    }

    /// Backward of `forwardInference` used in training (fine-tuning with frozen statistics,
    /// TinyTL): the layer is the affine map y = gamma * invStd * (x - runningMean) + beta, so
    ///     dBeta += sum dy,   dGamma += sum dy * xhat,   dx += gamma * invStd * dy.
    /// Only dGamma reads the input; pass nil for a gradient that is not wanted (and for
    /// `input` when dGamma is nil).
    /// - Shapes: dInput, dOutput, input [C, M]; dGamma, dBeta, gamma, runningMean, runningVariance [C].
    public static func backwardFrozen(
        dInput: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?, dBeta: UnsafeMutablePointer<Float>?,
        dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>?, gamma: UnsafePointer<Float>,
        runningMean: UnsafePointer<Float>, runningVariance: UnsafePointer<Float>, channels: Int, spatial: Int,
        epsilon: Float = defaultEpsilon, context: KernelContext
    ) {
        precondition(dGamma == nil || input != nil, "dGamma needs the input")
        context.pool.run(tasks: channels, threads: threads(context: context, channels: channels, spatial: spatial),
                         BackwardFrozenChannel(dInput: dInput, dGamma: dGamma, dBeta: dBeta, dOutput: dOutput, input: input, gamma: gamma,
                                               runningMean: runningMean, runningVariance: runningVariance, spatial: spatial,
                                               epsilon: epsilon))
    }

    /// `backwardFrozen` of one channel.
    struct BackwardFrozenChannel: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>?, dGamma: UnsafeMutablePointer<Float>?, dBeta: UnsafeMutablePointer<Float>?
        let dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>?, gamma: UnsafePointer<Float>
        let runningMean: UnsafePointer<Float>, runningVariance: UnsafePointer<Float>
        let spatial: Int
        let epsilon: Float
        var width: Int { FloatVector.scalarCount }

        func run(task channel: Int) {
            let dy = dOutput + channel * spatial
            let invStd = 1 / (runningVariance[channel] + epsilon).squareRoot()
            if let dBeta { dBeta[channel] += Float(blockedSum(dy, count: spatial)) }
            if let dGamma, let input {
                let x = input + channel * spatial
                let mean = runningMean[channel]
                var total: Double = 0
                var start = 0
                while start < spatial {
                    let end = min(start + blockSize, spatial)
                    var block: Float = 0
                    for index in start..<end { block += dy[index] * (x[index] - mean) }
                    total += Double(block)
                    start = end
                }
                dGamma[channel] += Float(total * Double(invStd))
            }
            if let dInput {
                let dx = dInput + channel * spatial
                let scale = gamma[channel] * invStd
                let k = FloatVector(repeating: scale)
                var index = 0
                while index + width <= spatial {
                    dx.storeVector(dx.loadVector(at: index).addingProduct(k, dy.loadVector(at: index)), at: index)
                    index += width
                }
                while index < spatial { dx[index] += scale * dy[index]; index += 1 }
            }
        }
    }
}
