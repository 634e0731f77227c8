import Platform

/// 2-D convolution as one GEMM over all N * OH * OW output columns:
/// out[Cout, N*OH*OW] = W[Cout, Cin*KH*KW] x col[Cin*KH*KW, N*OH*OW].
/// The im2col matrix is never built whole: it is produced for a chunk of output rows (n, oh)
/// at a time in caller-given scratch, and the chunk's GEMM writes straight into the CNHW output
/// (a chunk's columns are contiguous inside every output channel's row, so ldc = N*OH*OW).
/// Bias is not part of these kernels.
public enum Conv2D {
    /// Default bound on the im2col chunk: 256 Ki floats (1 MB) measured best on Zen 3 (4 MB and
    /// 256 KB were 5-40% slower): the chunk stays in L2/L3 while the GEMM still gets ~1-2K columns.
    public static let defaultScratchLimitFloats = 1 << 18

    /// The smallest scratch the kernels accept: the columns of one output row (n, oh).
    /// Zero for pointwise convolutions, which need no im2col.
    public static func minimumScratchFloats(shape: Conv2DShape) -> Int {
        if shape.isPointwise { return 0 }
        let rowFloats = shape.patchSize * shape.outWidth
        guard let transposed = transposedShape(shape) else { return rowFloats }
        if usesImplicitForward(transposed) { return max(rowFloats, flippedWeightFloats(shape)) }
        return max(rowFloats, transposed.patchSize * transposed.outWidth + flippedWeightFloats(shape))
    }

    /// Scratch floats to allocate for `shape`: as many whole output rows of im2col as fit in
    /// `limitFloats`, at least one row, at most the whole batch. The threads split the rows of
    /// one shared chunk, so the size does not grow with `threads`.
    /// `wide`: the kernel width the scratch is for (a context's `wideKernels`; default this
    /// machine's). A context of the other width falls back to the direct paths where its
    /// Winograd or lane scratch does not fit.
    public static func scratchFloats(shape: Conv2DShape, threads: Int,
                                     limitFloats: Int = defaultScratchLimitFloats,
                                     wide: Bool = SystemInfo.useAVX512()) -> Int {
        if shape.isPointwise { return 0 }
        // Winograd's scratch only where `prefersWinograd` takes it at this width, and the weight
        // gradient's with output channels in the lanes where AVX-512 takes it
        var lanes = wide && prefersWeightLanes(shape) ? weightLanesScratchFloats(shape) : 0
        // and the convolution's with output channels in the lanes (forward, transposed data gradient)
        if wide && prefersConvLanes(shape) { lanes = max(lanes, convLanesScratchFloats(shape, threads: threads)) }
        if wide, let transposed = transposedShape(shape), prefersConvLanes(transposed) {
            lanes = max(lanes, convLanesScratchFloats(transposed, threads: threads))
        }
        // and the stride-2 forms of it (forward and data gradient)
        if wide && prefersStridedLanes(shape) { lanes = max(lanes, stridedLanesScratchFloats(shape, threads: threads)) }
        if wide && prefersPointwiseLanes(shape) { lanes = max(lanes, pointwiseLanesScratchFloats(shape, threads: threads)) }
        if wide && prefersPointwiseWeights(shape) { lanes = max(lanes, pointwiseWeightsScratchFloats(shape)) }
        return max(winogradLayerScratchFloats(shape, threads: threads) { prefersWinograd($0, wide: wide) },
                   directScratchFloats(shape: shape, limitFloats: limitFloats), lanes)
    }

    /// The scratch of the paths other than Winograd (see `scratchFloats`).
    static func directScratchFloats(shape: Conv2DShape, limitFloats: Int) -> Int {
        func chunkFloats(_ shape: Conv2DShape) -> Int {
            let rowFloats = shape.patchSize * shape.outWidth
            let rows = min(max(limitFloats / rowFloats, 1), shape.batch * shape.outHeight)
            return rows * rowFloats
        }
        guard let transposed = transposedShape(shape) else { return chunkFloats(shape) }
        // backwardData's transposed convolution puts the flipped weights first; its 3x3 form is an
        // implicit GEMM, the others chunk their own im2col after the weights.
        if usesImplicitForward(transposed) { return max(chunkFloats(shape), flippedWeightFloats(shape)) }
        return max(chunkFloats(shape), chunkFloats(transposed) + flippedWeightFloats(shape))
    }

    /// out = conv(input, weights). Overwrites `out`.
    /// - Shapes: out [Cout, N, OH, OW], input [Cin, N, H, W], weights [Cout, Cin, KH, KW],
    ///   scratch `scratchCount` floats, at least `minimumScratchFloats(shape:)`.
    public static func forward(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext,
        winograd: Bool = true, lanes: Bool = true
    ) {
        precondition(shape.isValid, "Conv2D: invalid shape \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        if lanes && context.wideKernels && prefersConvLanes(shape)
            && scratchCount >= convLanesScratchFloats(shape, threads: context.threads) {
            forwardLanes(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                         scratchCount: scratchCount, context: context)
            return
        }
        if lanes && context.wideKernels && prefersStridedLanes(shape)
            && scratchCount >= stridedLanesScratchFloats(shape, threads: context.threads) {
            forwardStridedLanes(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                                scratchCount: scratchCount, context: context)
            return
        }
        if lanes && context.wideKernels && prefersPointwiseLanesForward(shape)
            && scratchCount >= pointwiseLanesScratchFloats(shape, threads: context.threads) {
            pointwiseLanes(out: out, input: input, weights: weights, shape: shape, forward: true, scratch: scratch,
                           scratchCount: scratchCount, context: context)
            return
        }
        if winograd && prefersWinograd(shape, context: context),
           let plan = winogradPlan(shape, threads: context.threads, scratchCount: scratchCount) {
            runWinograd(plan: plan, out: out, input: input, weights: weights, shape: shape, flipped: false,
                        accumulate: false, scratch: scratch, context: context)
            return
        }
        if shape.isPointwise {
            GEMM.simd(transA: .none, transB: .none, m: shape.outChannels, n: columns, k: shape.inChannels,
                      alpha: 1, a: weights, lda: shape.inChannels, b: input, ldb: columns,
                      beta: 0, c: out, ldc: columns, context: context)
            return
        }
        if usesImplicitForward(shape) {
            forwardImplicit(out: out, input: input, weights: weights, shape: shape, context: context)
            return
        }
        if context.wideKernels && wideNineTapBlockImages(shape, scratchCount: scratchCount) > 0 {
            forwardNineTapWide(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                               scratchCount: scratchCount, context: context)
            return
        }
        if phasedBlockImages(shape, scratchCount: scratchCount) > 0 {
            forwardPhased(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                          scratchCount: scratchCount, context: context)
            return
        }
        forwardColumns(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                       scratchCount: scratchCount, context: context)
    }

    /// dInput += conv^T(dOut, weights): dCol = W^T x dOut per chunk, then col2im accumulates.
    /// With `accumulate` false dInput = conv^T(dOut, weights) (a gradient buffer's first writer,
    /// which then needs no zeroing): the lane, Winograd and pointwise paths write it directly,
    /// the others zero it first. The same bits as adding into zeros, up to the sign of a zero.
    /// - Shapes: dInput [Cin, N, H, W], dOut [Cout, N, OH, OW], weights [Cout, Cin, KH, KW].
    public static func backwardData(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext,
        winograd: Bool = true, lanes: Bool = true, accumulate: Bool = true
    ) {
        precondition(shape.isValid, "Conv2D: invalid shape \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        if lanes && context.wideKernels, let transposed = transposedShape(shape), prefersConvLanes(transposed),
           scratchCount >= convLanesScratchFloats(transposed, threads: context.threads) {
            forwardLanes(out: dInput, input: dOut, weights: weights, shape: transposed, flipped: true, accumulate: accumulate,
                         scratch: scratch, scratchCount: scratchCount, context: context)
            return
        }
        if lanes && context.wideKernels && prefersStridedLanes(shape)
            && scratchCount >= stridedLanesScratchFloats(shape, threads: context.threads) {
            backwardDataStridedLanes(dInput: dInput, dOut: dOut, weights: weights, shape: shape, scratch: scratch,
                                     scratchCount: scratchCount, context: context, accumulate: accumulate)
            return
        }
        if lanes && context.wideKernels && prefersPointwiseLanesData(shape)
            && scratchCount >= pointwiseLanesScratchFloats(shape, threads: context.threads) {
            pointwiseLanes(out: dInput, input: dOut, weights: weights, shape: shape, forward: false, accumulate: accumulate,
                           scratch: scratch, scratchCount: scratchCount, context: context)
            return
        }
        if winograd, let transposed = transposedShape(shape), prefersWinograd(transposed, context: context),
           let plan = winogradPlan(transposed, threads: context.threads, scratchCount: scratchCount) {
            runWinograd(plan: plan, out: dInput, input: dOut, weights: weights, shape: transposed, flipped: true,
                        accumulate: accumulate, scratch: scratch, context: context)
            return
        }
        if shape.isPointwise {
            // dInput[Cin, NHW] += W^T[Cin, Cout] x dOut[Cout, NHW]
            GEMM.simd(transA: .transposed, transB: .none, m: shape.inChannels, n: columns, k: shape.outChannels,
                      alpha: 1, a: weights, lda: shape.inChannels, b: dOut, ldb: columns,
                      beta: accumulate ? 1 : 0, c: dInput, ldc: columns, context: context)
            return
        }
        // The paths below add into dInput.
        if !accumulate { context.forEachRange(shape.batch * shape.inChannels * shape.inHeight * shape.inWidth, ZeroRange(target: dInput)) }
        // The phase planes: measured 1.08-1.60x the column path on resnet8's stride-2 layers with
        // AVX2 (Zen 3) and 1.14-1.42x with AVX-512 (Xeon, 2026-12-07, `leitner bench conv`, 3
        // rounds); NEON runs them under qemu.
        if phasedBackwardBlockImages(shape, scratchCount: scratchCount) > 0 {
            backwardDataPhased(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                               scratch: scratch, scratchCount: scratchCount, context: context)
            return
        }
        if transposedShape(shape) != nil {
            backwardDataTransposed(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                   scratch: scratch, scratchCount: scratchCount, context: context)
            return
        }
        backwardDataColumns(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                            scratch: scratch, scratchCount: scratchCount, context: context)
    }

    /// dWeights += dOut x col^T, recomputing im2col per chunk.
    /// - Shapes: dWeights [Cout, Cin, KH, KW], dOut [Cout, N, OH, OW], input [Cin, N, H, W].
    public static func backwardWeights(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext,
        lanes: Bool = true
    ) {
        precondition(shape.isValid, "Conv2D: invalid shape \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        // AVX-512: 3x3 pad-1 layers take the GEMM with output channels in the lanes where
        // `prefersWeightLanes` says (measured there); `lanes: false` is the bench's comparison.
        if lanes && context.wideKernels && prefersWeightLanes(shape) && weightLanesBlockImages(shape, scratchCount: scratchCount) > 0 {
            backwardWeightsLanes(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                                 scratchCount: scratchCount, context: context)
            return
        }
        if lanes && context.wideKernels && prefersPointwiseWeights(shape) && scratchCount >= pointwiseWeightsScratchFloats(shape) {
            backwardWeightsPointwise(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                                     scratchCount: scratchCount, context: context)
            return
        }
        if shape.isPointwise {
            // dW[Cout, Cin] += dOut[Cout, NHW] x input[Cin, NHW]^T
            GEMM.simd(transA: .none, transB: .transposed, m: shape.outChannels, n: shape.inChannels, k: columns,
                      alpha: 1, a: dOut, lda: columns, b: input, ldb: columns,
                      beta: 1, c: dWeights, ldc: shape.inChannels, context: context)
            return
        }
        // An implicit-GEMM weight gradient (B = col^T packed from the image with masked loads
        // and register transposes) measured 0.35-0.63x of this path on the reference layers
        // (`leitner bench conv`, 2026-11-23) and was removed. 3x3 stride-1 "same" layers take
        // the direct correlation instead (no im2col, no packing).
        // With 16-lane tiles (two output channels each) the direct path won on every reference
        // layer; with 8-lane AVX2 tiles (one output channel: ten loads per nine FMAs) only up to
        // 16 input channels (`leitner bench conv` with LEITNER_SIMD=avx2, 2026-11-23: 1.08-1.27x
        // there, 0.69-0.89x at 32-64 input channels). NEON (two-channel tiles) is not measured
        // on a board yet and takes the AVX2 rule. With AVX-512 on a Xeon (2026-12-07, 3 rounds of
        // `leitner bench conv`) the direct path won 1.17-1.57x at 16 and 32 output channels and
        // lost at 64 (0.82-0.93x: 32-64 @14, 32-64 stride 2, 64-64 @7), where the column GEMM has
        // M = 64 rows to fill its 12-row tiles; so AVX-512 takes it up to 32 output channels.
        if directWeightBlockImages(shape, scratchCount: scratchCount) > 0
            && (context.wideKernels ? shape.outChannels <= 32 : shape.inChannels <= 16) {
            backwardWeightsDirect(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                                  scratchCount: scratchCount, context: context)
            return
        }
        backwardWeightsColumns(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                               scratchCount: scratchCount, context: context)
    }
}

/// Zeroes target[start ..< start + count]: `KernelContext.forEachRange`'s body.
struct ZeroRange: RangeTask {
    let target: UnsafeMutablePointer<Float>
    func run(start: Int, count: Int) { Elementwise.zero(target + start, count: count) }
}
