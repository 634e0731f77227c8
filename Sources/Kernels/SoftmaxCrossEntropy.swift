import Platform

/// The floating-point types the naive twins run in, with the two transcendental functions the
/// loss needs (libm's, through Platform's FloatMath).
public protocol KernelFloat: BinaryFloatingPoint {
    static func exponential(_ x: Self) -> Self
    static func logarithm(_ x: Self) -> Self
}

extension Float: KernelFloat {
    @inline(__always) public static func exponential(_ x: Float) -> Float { FloatMath.exp(x) }
    @inline(__always) public static func logarithm(_ x: Float) -> Float { FloatMath.log(x) }
}

extension Double: KernelFloat {
    @inline(__always) public static func exponential(_ x: Double) -> Double { FloatMath.exp(x) }
    @inline(__always) public static func logarithm(_ x: Double) -> Double { FloatMath.log(x) }
}

/// e^x per lane, for x <= 0 (softmax arguments after subtracting the max). Cephes' expf:
/// x = n ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r, and 2^n built in the
/// exponent bits; about 2 ulp. Inputs below -87 are clamped there (e^-87 ~ 1.6e-38, the
/// smallest normal range), which is harmless next to a softmax denominator >= 1.
@inline(__always)
public func exponential(_ x: FloatVector) -> FloatVector {
    let clamped = x.clamped(lowerBound: FloatVector(repeating: -87), upperBound: FloatVector(repeating: 88))
    // Round x * log2(e) to the nearest integer n by the 1.5 * 2^23 trick: after the add, the
    // low mantissa bits hold n, so n is read without a float-to-int conversion.
    let magic = FloatVector(repeating: 12_582_912)
    let shifted = magic.addingProduct(clamped, FloatVector(repeating: 1.442_695_04))
    let n = shifted - magic
    // Two-constant Cody-Waite reduction keeps r accurate: ln2 = 0.693359375 - 2.12194440e-4.
    // Horner steps as fused multiply-adds (Swift never contracts a * b + c by itself).
    var r = clamped.addingProduct(n, FloatVector(repeating: -0.693_359_375))
    r = r.addingProduct(n, FloatVector(repeating: 2.121_944_4e-4))
    var p = FloatVector(repeating: 1.987_569_15e-4)
    p = FloatVector(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
    p = FloatVector(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
    p = FloatVector(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
    p = FloatVector(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
    p = FloatVector(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
    let er = (r + FloatVector(repeating: 1)).addingProduct(p, r * r)
    // 2^n: (n + 127) << 23 as a bit pattern; n sits in the low bits of `shifted`'s pattern.
    typealias Bits = FloatVector.MaskStorage
    let nBits = unsafeBitCast(shifted, to: Bits.self) &- unsafeBitCast(magic, to: Bits.self)
    let twoToN = unsafeBitCast((nBits &+ Bits(repeating: 127)) &<< Bits(repeating: 23), to: FloatVector.self)
    return er * twoToN
}

/// Softmax followed by cross-entropy with integer labels, per sample (unreduced):
///     losses[i] = logsumexp(z_i) - z_i[label_i]    (computed as log sum e^(z - max) + (max - z[label]))
///     correct[i] = 1 when argmax z_i == label_i (first maximum wins on ties, as torch.argmax)
/// and, with the gradient,
///     dLogits[i, j] += scale * weight[i] * (softmax(z_i)_j - [j == label_i]).
/// The batch mean (and any per-sample weighting, e.g. InfoBatch's 1/(1-r)) is the caller's:
/// `scale` is typically 1/N and `weights` nil means 1 for every sample. Selection policies
/// need the per-sample loss and correctness, which is why they are outputs.
/// A label outside 0..<classes stops the program with a message (labels are validated when
/// a dataset is loaded; reading logits out of bounds instead would corrupt silently).
/// Given a context, the fast paths split samples across threads in fixed chunks (without one
/// they run on the caller's thread); a sample's result never depends on which thread ran it.
/// - Shapes: logits, dLogits [N, K] row-major (N = batch, K = classes); labels, losses, correct, weights [N].
public enum SoftmaxCrossEntropy {
    /// Samples per task when the work is split across threads.
    static let samplesPerTask = 64
    /// Below this many logits one thread is faster than waking the pool.
    static let parallelThreshold = 1 << 13

    @inline(__always)
    static func checkedLabel(_ labels: UnsafePointer<Int32>, sample: Int, classes: Int) -> Int {
        let label = Int(labels[sample])
        precondition(label >= 0 && label < classes,
                     "SoftmaxCrossEntropy: label \(label) of sample \(sample) is outside 0..<\(classes)")
        return label
    }

    // MARK: naive twins

    /// The test oracle for `forward`: loss and correctness, no gradient.
    public static func naiveForward<T: KernelFloat>(
        losses: UnsafeMutablePointer<T>, correct: UnsafeMutablePointer<UInt8>,
        logits: UnsafePointer<T>, labels: UnsafePointer<Int32>, batch: Int, classes: Int
    ) {
        for sample in 0..<batch {
            naiveSample(losses: losses, correct: correct, dLogits: nil, logits: logits, labels: labels,
                        weight: 1, scale: 1, sample: sample, classes: classes)
        }
    }

    /// The test oracle for `forwardBackward`.
    public static func naiveForwardBackward<T: KernelFloat>(
        losses: UnsafeMutablePointer<T>, correct: UnsafeMutablePointer<UInt8>, dLogits: UnsafeMutablePointer<T>,
        logits: UnsafePointer<T>, labels: UnsafePointer<Int32>, weights: UnsafePointer<T>?,
        batch: Int, classes: Int, scale: T
    ) {
        for sample in 0..<batch {
            naiveSample(losses: losses, correct: correct, dLogits: dLogits, logits: logits, labels: labels,
                        weight: weights?[sample] ?? 1, scale: scale, sample: sample, classes: classes)
        }
    }

    private static func naiveSample<T: KernelFloat>(
        losses: UnsafeMutablePointer<T>, correct: UnsafeMutablePointer<UInt8>, dLogits: UnsafeMutablePointer<T>?,
        logits: UnsafePointer<T>, labels: UnsafePointer<Int32>, weight: T, scale: T, sample: Int, classes: Int
    ) {
        let label = checkedLabel(labels, sample: sample, classes: classes)
        let z = logits + sample * classes
        var best = 0
        for j in 1..<max(classes, 1) where z[j] > z[best] { best = j }
        let maximum = z[best]
        var sum: T = 0
        for j in 0..<classes { sum += T.exponential(z[j] - maximum) }
        losses[sample] = T.logarithm(sum) + (maximum - z[label])
        correct[sample] = best == label ? 1 : 0
        if let dLogits {
            let factor = scale * weight
            for j in 0..<classes {
                let probability = T.exponential(z[j] - maximum) / sum
                dLogits[sample * classes + j] += factor * (probability - (j == label ? 1 : 0))
            }
        }
    }

    // MARK: fast paths

    /// Per-sample loss and correctness only (scoring passes: no gradient is formed).
    /// - Shapes: logits [N, K]; labels, losses, correct [N].
    public static func forward(
        losses: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<UInt8>,
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, batch: Int, classes: Int,
        context: KernelContext? = nil
    ) {
        run(batch: batch, classes: classes, context: context,
            ForwardSample(losses: losses, correct: correct, logits: logits, labels: labels, classes: classes))
    }

    /// `forward` of one sample.
    private struct ForwardSample: ParallelTask {
        let losses: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<UInt8>
        let logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>
        let classes: Int

        func run(task sample: Int) {
            fastSample(losses: losses, correct: correct, dLogits: nil, logits: logits, labels: labels,
                       weight: 1, scale: 1, sample: sample, classes: classes)
        }
    }

    /// Per-sample loss and correctness, and dLogits += scale * weight[i] * (softmax - onehot).
    /// dLogits is accumulated into, like every backward (zero it once per step).
    /// - Shapes: logits, dLogits [N, K]; labels, losses, correct, weights [N].
    public static func forwardBackward(
        losses: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<UInt8>, dLogits: UnsafeMutablePointer<Float>,
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, weights: UnsafePointer<Float>?,
        batch: Int, classes: Int, scale: Float, context: KernelContext? = nil
    ) {
        run(batch: batch, classes: classes, context: context,
            ForwardBackwardSample(losses: losses, correct: correct, dLogits: dLogits, logits: logits, labels: labels,
                                  weights: weights, classes: classes, scale: scale))
    }

    /// `forwardBackward` of one sample.
    private struct ForwardBackwardSample: ParallelTask {
        let losses: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<UInt8>, dLogits: UnsafeMutablePointer<Float>
        let logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, weights: UnsafePointer<Float>?
        let classes: Int, scale: Float

        func run(task sample: Int) {
            fastSample(losses: losses, correct: correct, dLogits: dLogits, logits: logits, labels: labels,
                       weight: weights?[sample] ?? 1, scale: scale, sample: sample, classes: classes)
        }
    }

    /// Runs `body` for every sample, in tasks of `samplesPerTask` samples over the pool when the
    /// batch is large enough.
    @inline(__always)
    private static func run<Body: ParallelTask>(batch: Int, classes: Int, context: KernelContext?, _ body: Body) {
        guard let context, batch * classes >= parallelThreshold else {
            for sample in 0..<batch { body.run(task: sample) }
            return
        }
        let tasks = (batch + samplesPerTask - 1) / samplesPerTask
        context.pool.run(tasks: tasks, threads: context.threads, SampleBlocks(body: body, batch: batch))
    }

    /// `run`'s split: task t runs samples t * samplesPerTask ..< (t + 1) * samplesPerTask.
    private struct SampleBlocks<Body: ParallelTask>: ParallelTask {
        let body: Body
        let batch: Int

        func run(task: Int) {
            let end = min(batch, (task + 1) * samplesPerTask)
            for sample in task * samplesPerTask..<end { body.run(task: sample) }
        }
    }

    /// One sample: vector max, then e^(z - max) by `exponential(_:)`, once for the sum and
    /// once more for the gradient (recomputing is cheaper than a scratch row per thread).
    @inline(__always)
    private static func fastSample(
        losses: UnsafeMutablePointer<Float>, correct: UnsafeMutablePointer<UInt8>, dLogits: UnsafeMutablePointer<Float>?,
        logits: UnsafePointer<Float>, labels: UnsafePointer<Int32>, weight: Float, scale: Float, sample: Int, classes: Int
    ) {
        let width = FloatVector.scalarCount
        let label = checkedLabel(labels, sample: sample, classes: classes)
        let z = logits + sample * classes

        var maximum = z[0]
        var j = 0
        if classes >= width {
            var maxVector = z.loadVector(at: 0)
            j = width
            while j + width <= classes { maxVector = pointwiseMax(maxVector, z.loadVector(at: j)); j += width }
            maximum = maxVector.max()
        }
        while j < classes { maximum = max(maximum, z[j]); j += 1 }
        // The first index holding the maximum, as torch.argmax does on ties.
        var best = 0
        while z[best] != maximum && best + 1 < classes { best += 1 }

        let maxVector = FloatVector(repeating: maximum)
        var sumVector = FloatVector(repeating: 0)
        j = 0
        while j + width <= classes {
            sumVector += exponential(z.loadVector(at: j) - maxVector)
            j += width
        }
        var sum = sumVector.sum()
        while j < classes { sum += FloatMath.exp(z[j] - maximum); j += 1 }

        // max - z[label] first: it is exact when both are huge (1e4), log(sum) is small.
        losses[sample] = FloatMath.log(sum) + (maximum - z[label])
        correct[sample] = best == label ? 1 : 0

        guard let dLogits else { return }
        let factor = scale * weight
        let d = dLogits + sample * classes
        let probabilityScale = FloatVector(repeating: factor / sum)
        j = 0
        while j + width <= classes {
            let probability = exponential(z.loadVector(at: j) - maxVector)
            d.storeVector(d.loadVector(at: j).addingProduct(probabilityScale, probability), at: j)
            j += width
        }
        let tailScale = factor / sum
        while j < classes { d[j] += tailScale * FloatMath.exp(z[j] - maximum); j += 1 }
        d[label] -= factor
    }
}
