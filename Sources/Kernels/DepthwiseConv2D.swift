import Platform

/// Depthwise 2-D convolution (groups == channels): every channel is convolved with its own
/// KH x KW filter. Too little work per output for a GEMM, so the fast path walks output rows
/// and applies each tap as one vectorised multiply-add along W.
/// - Shapes: `Conv2DShape` with inChannels == outChannels == C; input [C, N, H, W],
///   weights [C, 1, KH, KW], out [C, N, OH, OW].
public enum DepthwiseConv2D {
    /// out = depthwise(input, weights). Overwrites `out`.
    /// - Shapes: out [C, N, OH, OW], input [C, N, H, W], weights [C, 1, KH, KW].
    public static func forward(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, context: KernelContext
    ) {
        check(shape)
        let s = shape
        if isSamePadding(s) {
            forEachChannel(shape, context, SameChannel(out: out, source: input, weights: weights, s: s, flipped: false, accumulate: false))
            return
        }
        let outHeight = s.outHeight, outWidth = s.outWidth, taps = s.kernelHeight * s.kernelWidth
        forEachChannel(shape, context, ForwardChannel(out: out, input: input, weights: weights, s: s, outHeight: outHeight,
                                                      outWidth: outWidth, taps: taps))
    }

    /// Stride 1 and "same" padding (square odd kernel K, padding K/2, so OH = H and OW = W): the
    /// 3x3 and 5x5 depthwise layers of the mobilenets. The transposed convolution of such a
    /// layer is the same correlation with the kernel turned by 180 degrees, so one row kernel
    /// serves forward (`out =`) and backward-data (`dInput +=`).
    @inline(__always)
    public static func isSamePadding(_ s: Conv2DShape) -> Bool {
        s.strideH == 1 && s.strideW == 1 && s.kernelHeight == s.kernelWidth && s.kernelHeight % 2 == 1
            && s.padH == s.kernelHeight / 2 && s.padW == s.padH
    }

    /// `forward` (or `backwardData` with `flipped` and `accumulate`) of one channel for a
    /// same-padding shape: every output element sums its K x K taps in registers and is written
    /// once (the general path makes K*K read-modify-write passes over each output row).
    /// - Shapes: out [C, N, H, W], source [C, N, H, W], weights [C, 1, K, K].
    struct SameChannel: ParallelTask {
        let out: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>, weights: UnsafePointer<Float>
        let s: Conv2DShape
        /// Weights read turned by 180 degrees (the transposed convolution).
        let flipped: Bool
        /// out += (backward-data accumulates) instead of out =.
        let accumulate: Bool

        func run(task channel: Int) {
            // Constant kernel sizes let the compiler unroll the tap loops and keep the weights in registers.
            switch s.kernelHeight {
            case 3: rows(channel, kernel: 3)
            case 5: rows(channel, kernel: 5)
            default: rows(channel, kernel: s.kernelHeight)
            }
        }

        @inline(__always)
        func rows(_ channel: Int, kernel: Int) {
            let height = s.inHeight, width = s.inWidth, pad = kernel / 2, taps = kernel * kernel
            let filter = weights + channel * taps
            @inline(__always) func weight(_ tap: Int) -> Float { flipped ? filter[taps - 1 - tap] : filter[tap] }
            // 3x3: the nine weights as vectors once per channel, for the rows whose three taps
            // all lie inside the image (the same FMAs in the same order as the general loop).
            var w = InlineArray<9, FloatVector>(repeating: .zero)
            if kernel == 3 { for tap in 0..<9 { w[tap] = FloatVector(repeating: weight(tap)) } }
            for n in 0..<s.batch {
                let plane = UnsafeMutablePointer(mutating: source) + (channel * s.batch + n) * height * width
                let outPlane = out + (channel * s.batch + n) * height * width
                for oh in 0..<height {
                    let kyBegin = max(0, pad - oh), kyEnd = min(kernel, height - oh + pad)
                    let outRow = outPlane + oh * width
                    /// One output element with bounds checks on both axes (edges and narrow rows).
                    @inline(__always) func scalar(_ ow: Int) {
                        let kxBegin = max(0, pad - ow), kxEnd = min(kernel, width - ow + pad)
                        var sum: Float = 0
                        for ky in kyBegin..<kyEnd {
                            let row = plane + (oh + ky - pad) * width + ow - pad
                            for kx in kxBegin..<kxEnd { sum += weight(ky * kernel + kx) * row[kx] }
                        }
                        outRow[ow] = accumulate ? outRow[ow] + sum : sum
                    }
                    var ow = 0
                    while ow < min(pad, width) { scalar(ow); ow += 1 }
                    // Interior: every tap of every lane lies inside the row.
                    if kernel == 3 && kyBegin == 0 && kyEnd == 3 {
                        let top = plane + (oh - 1) * width - 1
                        while ow + floatVectorWidth <= width - pad {
                            let r0 = top + ow, r1 = r0 + width, r2 = r1 + width
                            var sum = FloatVector(repeating: 0)
                            sum = sum.addingProduct(r0.loadVector(at: 0), w[0])
                            sum = sum.addingProduct(r0.loadVector(at: 1), w[1])
                            sum = sum.addingProduct(r0.loadVector(at: 2), w[2])
                            sum = sum.addingProduct(r1.loadVector(at: 0), w[3])
                            sum = sum.addingProduct(r1.loadVector(at: 1), w[4])
                            sum = sum.addingProduct(r1.loadVector(at: 2), w[5])
                            sum = sum.addingProduct(r2.loadVector(at: 0), w[6])
                            sum = sum.addingProduct(r2.loadVector(at: 1), w[7])
                            sum = sum.addingProduct(r2.loadVector(at: 2), w[8])
                            outRow.storeVector(accumulate ? outRow.loadVector(at: ow) + sum : sum, at: ow)
                            ow += floatVectorWidth
                        }
                    }
                    while ow + floatVectorWidth <= width - pad {
                        var sum = FloatVector(repeating: 0)
                        for ky in kyBegin..<kyEnd {
                            let row = plane + (oh + ky - pad) * width + ow - pad
                            for kx in 0..<kernel {
                                sum = sum.addingProduct(row.loadVector(at: kx), FloatVector(repeating: weight(ky * kernel + kx)))
                            }
                        }
                        outRow.storeVector(accumulate ? outRow.loadVector(at: ow) + sum : sum, at: ow)
                        ow += floatVectorWidth
                    }
                    while ow < width { scalar(ow); ow += 1 }
                }
            }
        }
    }

    /// `forward` of one channel.
    struct ForwardChannel: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>
        let s: Conv2DShape
        let outHeight: Int, outWidth: Int, taps: Int

        func run(task channel: Int) {
            for n in 0..<s.batch {
                for oh in 0..<outHeight {
                    let outRow = out + ((channel * s.batch + n) * outHeight + oh) * outWidth
                    for ow in 0..<outWidth { outRow[ow] = 0 }
                    for ky in 0..<s.kernelHeight {
                        let ih = oh * s.strideH + ky - s.padH
                        if ih < 0 || ih >= s.inHeight { continue }
                        let inRow = UnsafeMutablePointer(mutating: input) + ((channel * s.batch + n) * s.inHeight + ih) * s.inWidth
                        for kx in 0..<s.kernelWidth {
                            let w = weights[channel * taps + ky * s.kernelWidth + kx]
                            let (begin, end) = validOutputColumns(kx: kx, shape: s)
                            let source = inRow + (kx - s.padW)
                            if s.strideW == 1 {
                                multiplyAdd(into: outRow + begin, source + begin, scale: w, count: end - begin)
                            } else {
                                for ow in begin..<end { outRow[ow] += w * source[ow * s.strideW] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dInput += depthwise^T(dOut, weights): each tap scatters a scaled dOut row back along W.
    /// - Shapes: dInput [C, N, H, W], dOut [C, N, OH, OW], weights [C, 1, KH, KW].
    public static func backwardData(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, context: KernelContext
    ) {
        check(shape)
        let s = shape
        if isSamePadding(s) {
            forEachChannel(shape, context, SameChannel(out: dInput, source: dOut, weights: weights, s: s, flipped: true, accumulate: true))
            return
        }
        let outHeight = s.outHeight, outWidth = s.outWidth, taps = s.kernelHeight * s.kernelWidth
        forEachChannel(shape, context, BackwardDataChannel(dInput: dInput, dOut: dOut, weights: weights, s: s, outHeight: outHeight,
                                                           outWidth: outWidth, taps: taps))
    }

    /// `backwardData` of one channel.
    struct BackwardDataChannel: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>
        let s: Conv2DShape
        let outHeight: Int, outWidth: Int, taps: Int

        func run(task channel: Int) {
            for n in 0..<s.batch {
                for oh in 0..<outHeight {
                    let dOutRow = UnsafeMutablePointer(mutating: dOut) + ((channel * s.batch + n) * outHeight + oh) * outWidth
                    for ky in 0..<s.kernelHeight {
                        let ih = oh * s.strideH + ky - s.padH
                        if ih < 0 || ih >= s.inHeight { continue }
                        let dInRow = dInput + ((channel * s.batch + n) * s.inHeight + ih) * s.inWidth
                        for kx in 0..<s.kernelWidth {
                            let w = weights[channel * taps + ky * s.kernelWidth + kx]
                            let (begin, end) = validOutputColumns(kx: kx, shape: s)
                            let destination = dInRow + (kx - s.padW)
                            if s.strideW == 1 {
                                multiplyAdd(into: destination + begin, dOutRow + begin, scale: w, count: end - begin)
                            } else {
                                for ow in begin..<end { destination[ow * s.strideW] += w * dOutRow[ow] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// dWeights[c, ky, kx] += sum over n, oh, ow of dOut[c, n, oh, ow] * input[c, n, ih, iw]:
    /// one vector accumulator per tap across all rows, reduced once.
    /// - Shapes: dWeights [C, 1, KH, KW], dOut [C, N, OH, OW], input [C, N, H, W].
    public static func backwardWeights(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, context: KernelContext
    ) {
        check(shape)
        let s = shape
        if isSamePadding(s) && s.kernelHeight == 3 {
            forEachChannel(shape, context, SameWeights3Channel(dWeights: dWeights, dOut: dOut, input: input, s: s))
            return
        }
        let outHeight = s.outHeight, outWidth = s.outWidth, taps = s.kernelHeight * s.kernelWidth
        forEachChannel(shape, context, BackwardWeightsChannel(dWeights: dWeights, dOut: dOut, input: input, s: s,
                                                              outHeight: outHeight, outWidth: outWidth, taps: taps))
    }

    /// `backwardWeights` of one channel for a 3x3 same-padding shape: per kernel row ky one pass
    /// over the rows of dOut, each dOut vector feeding three accumulators (kx = 0, 1, 2) where
    /// the general path makes one pass per tap. Registers: 3 accumulators, dOut, input.
    struct SameWeights3Channel: ParallelTask {
        let dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>
        let s: Conv2DShape

        func run(task channel: Int) {
            let height = s.inHeight, width = s.inWidth
            for ky in 0..<3 {
                var left = FloatVector(repeating: 0), middle = FloatVector(repeating: 0), right = FloatVector(repeating: 0)
                var leftSum: Float = 0, middleSum: Float = 0, rightSum: Float = 0
                for n in 0..<s.batch {
                    let base = (channel * s.batch + n) * height * width
                    for oh in 0..<height {
                        let ih = oh + ky - 1
                        if ih < 0 || ih >= height { continue }
                        let gradient = UnsafeMutablePointer(mutating: dOut) + base + oh * width
                        // x[ow + kx - 1] is the input under tap kx of output column ow.
                        let x = UnsafeMutablePointer(mutating: input) + base + ih * width - 1
                        @inline(__always) func scalar(_ ow: Int) {
                            let g = gradient[ow]
                            if ow > 0 { leftSum += g * x[ow] }
                            middleSum += g * x[ow + 1]
                            if ow + 1 < width { rightSum += g * x[ow + 2] }
                        }
                        var ow = 0
                        if width > 0 { scalar(0); ow = 1 }
                        while ow + floatVectorWidth <= width - 1 {
                            let g = gradient.loadVector(at: ow)
                            left = left.addingProduct(g, x.loadVector(at: ow))
                            middle = middle.addingProduct(g, x.loadVector(at: ow + 1))
                            right = right.addingProduct(g, x.loadVector(at: ow + 2))
                            ow += floatVectorWidth
                        }
                        while ow < width { scalar(ow); ow += 1 }
                    }
                }
                let row = dWeights + channel * 9 + ky * 3
                row[0] += left.sum() + leftSum
                row[1] += middle.sum() + middleSum
                row[2] += right.sum() + rightSum
            }
        }
    }

    /// `backwardWeights` of one channel.
    struct BackwardWeightsChannel: ParallelTask {
        let dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>
        let s: Conv2DShape
        let outHeight: Int, outWidth: Int, taps: Int

        func run(task channel: Int) {
            for ky in 0..<s.kernelHeight {
                for kx in 0..<s.kernelWidth {
                    let (begin, end) = validOutputColumns(kx: kx, shape: s)
                    var vectorSum = FloatVector(repeating: 0)
                    var scalarSum: Float = 0
                    for n in 0..<s.batch {
                        for oh in 0..<outHeight {
                            let ih = oh * s.strideH + ky - s.padH
                            if ih < 0 || ih >= s.inHeight { continue }
                            let dOutRow = UnsafeMutablePointer(mutating: dOut) + ((channel * s.batch + n) * outHeight + oh) * outWidth
                            let source = UnsafeMutablePointer(mutating: input)
                                + ((channel * s.batch + n) * s.inHeight + ih) * s.inWidth + (kx - s.padW)
                            if s.strideW == 1 {
                                var ow = begin
                                while ow + floatVectorWidth <= end {
                                    vectorSum.addProduct(dOutRow.loadVector(at: ow), source.loadVector(at: ow))
                                    ow += floatVectorWidth
                                }
                                while ow < end { scalarSum += dOutRow[ow] * source[ow]; ow += 1 }
                            } else {
                                for ow in begin..<end { scalarSum += dOutRow[ow] * source[ow * s.strideW] }
                            }
                        }
                    }
                    dWeights[channel * taps + ky * s.kernelWidth + kx] += vectorSum.sum() + scalarSum
                }
            }
        }
    }

    // MARK: - Naive twins

    /// The test oracle for `forward`: direct loops, generic for Double gradient checks.
    /// - Shapes: out [C, N, OH, OW], input [C, N, H, W], weights [C, 1, KH, KW].
    @inlinable
    public static func naiveForward<T: BinaryFloatingPoint>(
        out: UnsafeMutablePointer<T>, input: UnsafePointer<T>, weights: UnsafePointer<T>, shape: Conv2DShape
    ) {
        check(shape)
        let s = shape
        for c in 0..<s.inChannels {
            for n in 0..<s.batch {
                for oh in 0..<s.outHeight {
                    for ow in 0..<s.outWidth {
                        var sum: T = 0
                        for ky in 0..<s.kernelHeight {
                            let ih = oh * s.strideH + ky - s.padH
                            if ih < 0 || ih >= s.inHeight { continue }
                            for kx in 0..<s.kernelWidth {
                                let iw = ow * s.strideW + kx - s.padW
                                if iw < 0 || iw >= s.inWidth { continue }
                                sum += weights[(c * s.kernelHeight + ky) * s.kernelWidth + kx]
                                    * input[((c * s.batch + n) * s.inHeight + ih) * s.inWidth + iw]
                            }
                        }
                        out[((c * s.batch + n) * s.outHeight + oh) * s.outWidth + ow] = sum
                    }
                }
            }
        }
    }

    /// The test oracle for `backwardData`.
    /// - Shapes: dInput [C, N, H, W], dOut [C, N, OH, OW], weights [C, 1, KH, KW].
    @inlinable
    public static func naiveBackwardData<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, weights: UnsafePointer<T>, shape: Conv2DShape
    ) {
        check(shape)
        let s = shape
        for c in 0..<s.inChannels {
            for n in 0..<s.batch {
                for oh in 0..<s.outHeight {
                    for ow in 0..<s.outWidth {
                        let gradient = dOut[((c * s.batch + n) * s.outHeight + oh) * s.outWidth + ow]
                        for ky in 0..<s.kernelHeight {
                            let ih = oh * s.strideH + ky - s.padH
                            if ih < 0 || ih >= s.inHeight { continue }
                            for kx in 0..<s.kernelWidth {
                                let iw = ow * s.strideW + kx - s.padW
                                if iw < 0 || iw >= s.inWidth { continue }
                                dInput[((c * s.batch + n) * s.inHeight + ih) * s.inWidth + iw] +=
                                    weights[(c * s.kernelHeight + ky) * s.kernelWidth + kx] * gradient
                            }
                        }
                    }
                }
            }
        }
    }

    /// The test oracle for `backwardWeights`.
    /// - Shapes: dWeights [C, 1, KH, KW], dOut [C, N, OH, OW], input [C, N, H, W].
    @inlinable
    public static func naiveBackwardWeights<T: BinaryFloatingPoint>(
        dWeights: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, input: UnsafePointer<T>, shape: Conv2DShape
    ) {
        check(shape)
        let s = shape
        for c in 0..<s.inChannels {
            for ky in 0..<s.kernelHeight {
                for kx in 0..<s.kernelWidth {
                    var sum: T = 0
                    for n in 0..<s.batch {
                        for oh in 0..<s.outHeight {
                            let ih = oh * s.strideH + ky - s.padH
                            if ih < 0 || ih >= s.inHeight { continue }
                            for ow in 0..<s.outWidth {
                                let iw = ow * s.strideW + kx - s.padW
                                if iw < 0 || iw >= s.inWidth { continue }
                                sum += dOut[((c * s.batch + n) * s.outHeight + oh) * s.outWidth + ow]
                                    * input[((c * s.batch + n) * s.inHeight + ih) * s.inWidth + iw]
                            }
                        }
                    }
                    dWeights[(c * s.kernelHeight + ky) * s.kernelWidth + kx] += sum
                }
            }
        }
    }

    // MARK: - Helpers

    @usableFromInline
    static func check(_ shape: Conv2DShape) {
        precondition(shape.isValid && shape.inChannels == shape.outChannels,
                     "DepthwiseConv2D: invalid shape (needs inChannels == outChannels) \(shape)")
    }

    /// Channels are independent, so threads take contiguous blocks of them and never share an
    /// output element; tiny layers stay on the calling thread.
    @inline(__always)
    static func forEachChannel<Body: ParallelTask>(_ shape: Conv2DShape, _ context: KernelContext, _ body: Body) {
        let channels = shape.inChannels
        let work = shape.outputCount * shape.kernelHeight * shape.kernelWidth
        let threads = work >= 64 * 1024 ? min(context.threads, channels) : 1
        context.pool.run(tasks: threads, threads: threads, ChannelBlocks(body: body, channels: channels, threads: threads))
    }

    /// `forEachChannel`'s split: task t of `threads` runs a contiguous block of channels.
    struct ChannelBlocks<Body: ParallelTask>: ParallelTask {
        let body: Body
        let channels: Int, threads: Int

        func run(task: Int) {
            for channel in (channels * task / threads)..<(channels * (task + 1) / threads) { body.run(task: channel) }
        }
    }

    /// The ow whose tap kx lands inside the row: 0 <= ow * strideW + kx - padW < W.
    @inline(__always)
    static func validOutputColumns(kx: Int, shape: Conv2DShape) -> (Int, Int) {
        let outWidth = shape.outWidth, strideW = shape.strideW
        let begin = shape.padW > kx ? min((shape.padW - kx + strideW - 1) / strideW, outWidth) : 0
        let lastReach = shape.inWidth - 1 - kx + shape.padW
        let end = lastReach < 0 ? begin : max(min(lastReach / strideW + 1, outWidth), begin)
        return (begin, end)
    }
}

/// destination[i] += scale * source[i] for i in 0..<count, vector main loop and scalar tail.
@inline(__always)
func multiplyAdd(into destination: UnsafeMutablePointer<Float>, _ source: UnsafeMutablePointer<Float>,
                 scale: Float, count: Int) {
    let scaleVector = FloatVector(repeating: scale)
    var index = 0
    while index + floatVectorWidth <= count {
        destination.storeVector(
            destination.loadVector(at: index).addingProduct(source.loadVector(at: index), scaleVector), at: index)
        index += floatVectorWidth
    }
    while index < count { destination[index] += scale * source[index]; index += 1 }
}
