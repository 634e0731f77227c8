import Platform

/// Bias addition and its gradient, for both activation layouts.
/// Conv activations are CNHW, so one channel over the batch is one contiguous run of
/// `spatial = N*H*W` floats: the per-channel bias is a broadcast over a run. Fully-connected
/// activations are row-major [N, F]: the per-feature bias is added to every row.
/// - Shapes: channels C, spatial S = N*H*W (CNHW viewed as [C, S]); rows N, features F.
public enum Bias {
    // MARK: CNHW, one bias per channel

    /// The test oracle for `addChannels`.
    public static func naiveAddChannels<T: BinaryFloatingPoint>(
        values: UnsafeMutablePointer<T>, bias: UnsafePointer<T>, channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            for index in 0..<spatial { values[channel * spatial + index] += bias[channel] }
        }
    }

    /// values[c, s] += bias[c].
    /// - Shapes: values [C, S], bias [C].
    public static func addChannels(
        values: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            Elementwise.addScalar(values + channel * spatial, bias[channel], count: spatial)
        }
    }

    /// The test oracle for `backwardChannels`.
    public static func naiveBackwardChannels<T: BinaryFloatingPoint>(
        dBias: UnsafeMutablePointer<T>, dOutput: UnsafePointer<T>, channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            var sum: T = 0
            for index in 0..<spatial { sum += dOutput[channel * spatial + index] }
            dBias[channel] += sum
        }
    }

    /// dBias[c] += sum over s of dOutput[c, s].
    /// - Shapes: dOutput [C, S], dBias [C].
    public static func backwardChannels(
        dBias: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, channels: Int, spatial: Int
    ) {
        for channel in 0..<channels {
            dBias[channel] += Elementwise.sum(dOutput + channel * spatial, count: spatial)
        }
    }

    /// `addChannels` with the channels split over the context's threads, and with `relu` the
    /// ReLU applied in the same pass (values = max(0, values + bias), NaN to 0 as
    /// `ReLU.forward`): a convolution's bias and the in-place ReLU after it as one pass over
    /// the output. Same bits as `addChannels` then `ReLU.forward`, for any thread count.
    public static func addChannels(
        values: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, channels: Int, spatial: Int,
        relu: Bool, context: KernelContext
    ) {
        let parts = min(context.threads, channels, max(channels * spatial / (32 * 1024), 1))
        let task = ChannelPass(values: values, other: nil, bias: UnsafeMutablePointer(mutating: bias), channels: channels,
                               spatial: spatial, parts: parts, kind: relu ? .addReLU : .add)
        if parts == 1 { task.run(task: 0) } else { context.pool.run(tasks: parts, threads: parts, task) }
    }

    /// `backwardChannels` with the channels split over the context's threads; with `reluOutput`
    /// (the output y of an in-place ReLU over this layer's output, whose gradient shares the
    /// buffer) the ReLU's backward first, in the same pass: dOutput = dOutput where y > 0, else
    /// 0, then dBias += its channel sums. Same bits as `ReLU.backwardInPlace` then
    /// `backwardChannels` (the sums add the same vectors in the same order), any thread count.
    public static func backwardChannels(
        dBias: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, channels: Int, spatial: Int,
        reluOutput: UnsafePointer<Float>?, context: KernelContext
    ) {
        let parts = min(context.threads, channels, max(channels * spatial / (32 * 1024), 1))
        let task = ChannelPass(values: dOutput, other: reluOutput, bias: dBias, channels: channels,
                               spatial: spatial, parts: parts, kind: reluOutput == nil ? .sum : .reluSum)
        if parts == 1 { task.run(task: 0) } else { context.pool.run(tasks: parts, threads: parts, task) }
    }

    /// Channels [channels * task / parts, channels * (task + 1) / parts) of one of the passes above.
    struct ChannelPass: ParallelTask {
        enum Kind { case add, addReLU, sum, reluSum }
        let values: UnsafeMutablePointer<Float>, other: UnsafePointer<Float>?, bias: UnsafeMutablePointer<Float>
        let channels: Int, spatial: Int, parts: Int, kind: Kind

        func run(task: Int) {
            for channel in (channels * task / parts)..<(channels * (task + 1) / parts) {
                let plane = values + channel * spatial
                switch kind {
                case .add: Elementwise.addScalar(plane, bias[channel], count: spatial)
                case .addReLU: Bias.addScalarReLU(plane, bias[channel], count: spatial)
                case .sum: bias[channel] += Elementwise.sum(plane, count: spatial)
                case .reluSum: bias[channel] += Bias.maskedSum(plane, output: other! + channel * spatial, count: spatial)
                }
            }
        }
    }

    /// values = max(0, values + scalar), NaN to 0: `Elementwise.addScalar` then `ReLU.forward`.
    static func addScalarReLU(_ values: UnsafeMutablePointer<Float>, _ scalar: Float, count: Int) {
        let width = FloatVector.scalarCount
        let broadcast = FloatVector(repeating: scalar), zero = FloatVector(repeating: 0)
        var index = 0
        while index + width <= count {
            let value = values.loadVector(at: index) + broadcast
            values.storeVector(zero.replacing(with: value, where: value .> zero), at: index)
            index += width
        }
        while index < count {
            let value = values[index] + scalar
            values[index] = value > 0 ? value : 0
            index += 1
        }
    }

    /// gradient = gradient where output > 0, else 0 (`ReLU.backwardInPlace`), and returns its
    /// sum exactly as `Elementwise.sum` adds it (two vector accumulators, then one, then the tail).
    static func maskedSum(_ gradient: UnsafeMutablePointer<Float>, output: UnsafePointer<Float>, count: Int) -> Float {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0)
        @inline(__always) func masked(_ index: Int) -> FloatVector {
            let passed = zero.replacing(with: gradient.loadVector(at: index), where: output.loadVector(at: index) .> zero)
            gradient.storeVector(passed, at: index)
            return passed
        }
        var first = FloatVector(repeating: 0)
        var second = FloatVector(repeating: 0)
        var index = 0
        while index + 2 * width <= count {
            first += masked(index)
            second += masked(index + width)
            index += 2 * width
        }
        if index + width <= count {
            first += masked(index)
            index += width
        }
        var total = (first + second).sum()
        while index < count {
            if !(output[index] > 0) { gradient[index] = 0 }
            total += gradient[index]
            index += 1
        }
        return total
    }

    // MARK: rows [N, F], one bias per feature

    /// The test oracle for `addRows`.
    public static func naiveAddRows<T: BinaryFloatingPoint>(
        values: UnsafeMutablePointer<T>, bias: UnsafePointer<T>, rows: Int, features: Int
    ) {
        for row in 0..<rows {
            for feature in 0..<features { values[row * features + feature] += bias[feature] }
        }
    }

    /// values[n, f] += bias[f].
    /// - Shapes: values [N, F], bias [F].
    public static func addRows(
        values: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, features: Int
    ) {
        for row in 0..<rows {
            Elementwise.add(values + row * features, bias, count: features)
        }
    }

    /// The test oracle for `backwardRows`.
    public static func naiveBackwardRows<T: BinaryFloatingPoint>(
        dBias: UnsafeMutablePointer<T>, dOutput: UnsafePointer<T>, rows: Int, features: Int
    ) {
        for row in 0..<rows {
            for feature in 0..<features { dBias[feature] += dOutput[row * features + feature] }
        }
    }

    /// dBias[f] += sum over n of dOutput[n, f]. Rows are added straight into dBias, in row
    /// order, so no scratch is needed and the result does not depend on the vector width.
    /// - Shapes: dOutput [N, F], dBias [F].
    public static func backwardRows(
        dBias: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, rows: Int, features: Int
    ) {
        for row in 0..<rows {
            Elementwise.add(dBias, dOutput + row * features, count: features)
        }
    }
}

/// Small elementwise helpers on contiguous Float runs: residual add, copy, scaling, zeroing, sums.
/// - Shapes: `count` elements.
public enum Elementwise {
    /// The test oracle for `add`.
    public static func naiveAdd<T: BinaryFloatingPoint>(_ destination: UnsafeMutablePointer<T>, _ source: UnsafePointer<T>, count: Int) {
        for index in 0..<count { destination[index] += source[index] }
    }

    /// destination += source (residual connections, gradient fan-in).
    public static func add(_ destination: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        var index = 0
        while index + width <= count {
            destination.storeVector(destination.loadVector(at: index) + source.loadVector(at: index), at: index)
            index += width
        }
        while index < count { destination[index] += source[index]; index += 1 }
    }

    /// The test oracle for `addScalar`.
    public static func naiveAddScalar<T: BinaryFloatingPoint>(_ values: UnsafeMutablePointer<T>, _ scalar: T, count: Int) {
        for index in 0..<count { values[index] += scalar }
    }

    /// values += scalar.
    public static func addScalar(_ values: UnsafeMutablePointer<Float>, _ scalar: Float, count: Int) {
        let width = FloatVector.scalarCount
        let broadcast = FloatVector(repeating: scalar)
        var index = 0
        while index + width <= count {
            values.storeVector(values.loadVector(at: index) + broadcast, at: index)
            index += width
        }
        while index < count { values[index] += scalar; index += 1 }
    }

    /// The test oracle for `scale`.
    public static func naiveScale<T: BinaryFloatingPoint>(_ values: UnsafeMutablePointer<T>, by factor: T, count: Int) {
        for index in 0..<count { values[index] *= factor }
    }

    /// values *= factor.
    public static func scale(_ values: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
        let width = FloatVector.scalarCount
        let broadcast = FloatVector(repeating: factor)
        var index = 0
        while index + width <= count {
            values.storeVector(values.loadVector(at: index) * broadcast, at: index)
            index += width
        }
        while index < count { values[index] *= factor; index += 1 }
    }

    /// destination = source, a vector-width copy (runs are often short, e.g. 7x7 planes, where
    /// a call into libc's memcpy costs more than the copy).
    public static func copy(_ destination: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        var index = 0
        while index + width <= count {
            destination.storeVector(source.loadVector(at: index), at: index)
            index += width
        }
        while index < count { destination[index] = source[index]; index += 1 }
    }

    /// values = 0 (gradients are zeroed once per step; kernels only accumulate).
    public static func zero(_ values: UnsafeMutablePointer<Float>, count: Int) {
        values.update(repeating: 0, count: count)
    }

    /// The test oracle for `sum`.
    public static func naiveSum<T: BinaryFloatingPoint>(_ values: UnsafePointer<T>, count: Int) -> T {
        var total: T = 0
        for index in 0..<count { total += values[index] }
        return total
    }

    /// Sum of a run. Two vector accumulators hide the add latency and, as a side effect,
    /// make the rounding error grow with count / (2 * width) rather than count.
    public static func sum(_ values: UnsafePointer<Float>, count: Int) -> Float {
        let width = FloatVector.scalarCount
        var first = FloatVector(repeating: 0)
        var second = FloatVector(repeating: 0)
        var index = 0
        while index + 2 * width <= count {
            first += values.loadVector(at: index)
            second += values.loadVector(at: index + width)
            index += 2 * width
        }
        if index + width <= count {
            first += values.loadVector(at: index)
            index += width
        }
        var total = (first + second).sum()
        while index < count { total += values[index]; index += 1 }
        return total
    }
}
