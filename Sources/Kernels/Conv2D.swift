import Platform

/// The geometry of one 2-D convolution over CNHW activations (no groups, no dilation).
/// - Shapes: input [Cin, N, H, W], weights [Cout, Cin, KH, KW] (PyTorch's layout),
///   output [Cout, N, OH, OW] with OH = (H + 2 padH - KH) / strideH + 1 (floor, like PyTorch).
public struct Conv2DShape: Equatable {
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var inHeight: Int
    public var inWidth: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideH: Int
    public var strideW: Int
    public var padH: Int
    public var padW: Int

    public init(batch: Int, inChannels: Int, outChannels: Int, inHeight: Int, inWidth: Int,
                kernelHeight: Int, kernelWidth: Int, strideH: Int = 1, strideW: Int = 1,
                padH: Int = 0, padW: Int = 0) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideH = strideH
        self.strideW = strideW
        self.padH = padH
        self.padW = padW
    }

    /// A square kernel with equal strides and padding in both directions.
    public init(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
                kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(batch: batch, inChannels: inChannels, outChannels: outChannels, inHeight: height,
                  inWidth: width, kernelHeight: kernel, kernelWidth: kernel, strideH: stride,
                  strideW: stride, padH: padding, padW: padding)
    }

    public var outHeight: Int { (inHeight + 2 * padH - kernelHeight) / strideH + 1 }
    public var outWidth: Int { (inWidth + 2 * padW - kernelWidth) / strideW + 1 }
    /// Rows of the im2col matrix: Cin * KH * KW (the GEMM's reduced dimension).
    public var patchSize: Int { inChannels * kernelHeight * kernelWidth }
    public var inputCount: Int { inChannels * batch * inHeight * inWidth }
    public var outputCount: Int { outChannels * batch * outHeight * outWidth }
    public var weightCount: Int { outChannels * patchSize }
    /// Multiply-adds of the forward pass counted as two FLOPs (each backward pass costs the same).
    public var flops: Int { 2 * outputCount * patchSize }

    /// A 1x1 stride-1 unpadded convolution is a plain GEMM on the CNHW input: no im2col.
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }

    /// Whether the geometry is usable: positive sizes, non-negative padding, at least one
    /// output pixel.
    public var isValid: Bool {
        batch > 0 && inChannels > 0 && outChannels > 0 && inHeight > 0 && inWidth > 0
            && kernelHeight > 0 && kernelWidth > 0 && strideH > 0 && strideW > 0
            && padH >= 0 && padW >= 0
            && inHeight + 2 * padH >= kernelHeight && inWidth + 2 * padW >= kernelWidth
    }
}

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
    public static func scratchFloats(shape: Conv2DShape, threads: Int,
                                     limitFloats: Int = defaultScratchLimitFloats) -> Int {
        if shape.isPointwise { return 0 }
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
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(shape.isValid, "Conv2D: invalid shape \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
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
        if phasedBlockImages(shape, scratchCount: scratchCount) > 0 {
            forwardPhased(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                          scratchCount: scratchCount, context: context)
            return
        }
        forwardColumns(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                       scratchCount: scratchCount, context: context)
    }

    /// forward through im2col chunks in scratch and the packed GEMM (any non-pointwise geometry;
    /// `forward` takes `forwardImplicit` where that applies, with bit-identical results).
    public static func forwardColumns(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        columnGEMM(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                   scratchCount: scratchCount, accumulate: false, context: context)
    }

    /// The column path: out = conv(input, weights), or out += conv(input, weights) when
    /// `accumulate` (backwardData's transposed convolution; never a nine-tap shape there).
    static func columnGEMM(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, accumulate: Bool,
        context: KernelContext
    ) {
        precondition(shape.isValid && !shape.isPointwise, "Conv2D: forwardColumns needs a non-pointwise shape, got \(shape)")
        precondition(!accumulate || !usesNineTapPath(shape), "Conv2D: the nine-tap path overwrites its output")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        forEachChunk(shape: shape, scratchCount: scratchCount) { firstRow, rows in
            let chunkColumns = rows * shape.outWidth
            im2col(col: scratch, input: input, shape: shape, firstRow: firstRow, rows: rows, context: context)
            if usesNineTapPath(shape) {
                nineTapForward(out: out + firstRow * shape.outWidth, ldc: columns, col: scratch, columns: chunkColumns,
                               weights: weights, outChannels: shape.outChannels, context: context)
                return
            }
            GEMM.simd(transA: .none, transB: .none, m: shape.outChannels, n: chunkColumns, k: shape.patchSize,
                      alpha: 1, a: weights, lda: shape.patchSize, b: UnsafePointer(scratch), ldb: chunkColumns,
                      beta: accumulate ? 1 : 0, c: out + firstRow * shape.outWidth, ldc: columns, context: context)
        }
    }

    /// dInput += conv^T(dOut, weights): dCol = W^T x dOut per chunk, then col2im accumulates.
    /// - Shapes: dInput [Cin, N, H, W], dOut [Cout, N, OH, OW], weights [Cout, Cin, KH, KW].
    public static func backwardData(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(shape.isValid, "Conv2D: invalid shape \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        if shape.isPointwise {
            // dInput[Cin, NHW] += W^T[Cin, Cout] x dOut[Cout, NHW]
            GEMM.simd(transA: .transposed, transB: .none, m: shape.inChannels, n: columns, k: shape.outChannels,
                      alpha: 1, a: weights, lda: shape.inChannels, b: dOut, ldb: columns,
                      beta: 1, c: dInput, ldc: columns, context: context)
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

    /// backwardData through dCol = W^T x dOut and col2im (any geometry; the path for strided convs).
    public static func backwardDataColumns(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(shape.isValid && !shape.isPointwise, "Conv2D: backwardDataColumns needs a non-pointwise shape, got \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        forEachChunk(shape: shape, scratchCount: scratchCount) { firstRow, rows in
            let chunkColumns = rows * shape.outWidth
            // dCol[K, chunk] = W^T[K, Cout] x dOut[Cout, chunk]
            if usesNineTapPath(shape) {
                nineTapBackwardData(col: scratch, columns: chunkColumns, dOut: dOut + firstRow * shape.outWidth, ldb: columns,
                                    weights: weights, outChannels: shape.outChannels, context: context)
            } else {
                GEMM.simd(transA: .transposed, transB: .none, m: shape.patchSize, n: chunkColumns, k: shape.outChannels,
                          alpha: 1, a: weights, lda: shape.patchSize, b: dOut + firstRow * shape.outWidth, ldb: columns,
                          beta: 0, c: scratch, ldc: chunkColumns, context: context)
            }
            col2im(dInput: dInput, col: UnsafePointer(scratch), shape: shape, firstRow: firstRow, rows: rows,
                   context: context)
        }
    }

    // MARK: - backwardData as a transposed ("full") convolution

    /// For a stride-1 "same" convolution (odd kernel, pad = K / 2) with more than one output
    /// channel, the data gradient is itself a same convolution of dOut:
    ///     dInput[ci] += sum over co, ky, kx of W[co, ci, KH-1-ky, KW-1-kx] * dOut[co] shifted by (ky - padH, kx - padW),
    /// i.e. `forward` with Cin and Cout swapped and the kernel flipped. That GEMM reduces over
    /// Cout * KH * KW (144-576 in the reference models) straight into dInput, where the column
    /// path reduces over Cout only (16-64), writes a KH*KW times larger dCol and adds it back
    /// tap by tap in col2im. Returns nil where the identity does not hold (strides, other
    /// padding, pointwise) and for one input or output channel (a one-row GEMM, or the nine-tap
    /// path's shape, which the column path serves better).
    public static func transposedShape(_ shape: Conv2DShape) -> Conv2DShape? {
        guard !shape.isPointwise, shape.strideH == 1, shape.strideW == 1, shape.outChannels > 1, shape.inChannels > 1,
              shape.kernelHeight % 2 == 1, shape.kernelWidth % 2 == 1,
              2 * shape.padH == shape.kernelHeight - 1, 2 * shape.padW == shape.kernelWidth - 1 else { return nil }
        return Conv2DShape(batch: shape.batch, inChannels: shape.outChannels, outChannels: shape.inChannels,
                           inHeight: shape.inHeight, inWidth: shape.inWidth, kernelHeight: shape.kernelHeight,
                           kernelWidth: shape.kernelWidth, padH: shape.padH, padW: shape.padW)
    }

    /// Scratch floats the flipped weights take in front of the transposed path's im2col chunk
    /// (a multiple of 16 so the chunk stays 64-byte aligned).
    static func flippedWeightFloats(_ shape: Conv2DShape) -> Int { (shape.weightCount + 15) / 16 * 16 }

    /// backwardData as `forward` of dOut with the flipped, channel-swapped kernel, accumulated
    /// into dInput (GEMM beta 1). Only for shapes where `transposedShape` is non-nil.
    public static func backwardDataTransposed(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        guard let transposed = transposedShape(shape) else {
            preconditionFailure("Conv2D: backwardDataTransposed needs a stride-1 same convolution, got \(shape)")
        }
        // flipped[ci, co, ky, kx] = W[co, ci, KH-1-ky, KW-1-kx]: Cin*Cout*KH*KW floats, cheap next to the GEMM.
        let flipped = scratch
        let kh = shape.kernelHeight, kw = shape.kernelWidth, taps = kh * kw
        let inChannels = shape.inChannels, outChannels = shape.outChannels
        for co in 0..<outChannels {
            for ci in 0..<inChannels {
                let source = weights + (co * inChannels + ci) * taps
                let target = flipped + (ci * outChannels + co) * taps
                for tap in 0..<taps { target[tap] = source[taps - 1 - tap] }
            }
        }
        if usesImplicitForward(transposed) {
            implicitGEMM(out: dInput, input: dOut, weights: flipped, shape: transposed, accumulate: true, context: context)
            return
        }
        let offset = flippedWeightFloats(shape)
        columnGEMM(out: dInput, input: dOut, weights: flipped, shape: transposed, scratch: scratch + offset,
                   scratchCount: scratchCount - offset, accumulate: true, context: context)
    }

    /// dWeights += dOut x col^T, recomputing im2col per chunk.
    /// - Shapes: dWeights [Cout, Cin, KH, KW], dOut [Cout, N, OH, OW], input [Cin, N, H, W].
    public static func backwardWeights(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(shape.isValid, "Conv2D: invalid shape \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
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
        // on a board yet and takes the AVX2 rule.
        if directWeightBlockImages(shape, scratchCount: scratchCount) > 0 && (context.wideKernels || shape.inChannels <= 16) {
            backwardWeightsDirect(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                                  scratchCount: scratchCount, context: context)
            return
        }
        backwardWeightsColumns(dWeights: dWeights, dOut: dOut, input: input, shape: shape, scratch: scratch,
                               scratchCount: scratchCount, context: context)
    }

    /// backwardWeights through im2col chunks in scratch (any non-pointwise geometry).
    public static func backwardWeightsColumns(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(shape.isValid && !shape.isPointwise, "Conv2D: backwardWeightsColumns needs a non-pointwise shape, got \(shape)")
        let columns = shape.batch * shape.outHeight * shape.outWidth
        forEachChunk(shape: shape, scratchCount: scratchCount) { firstRow, rows in
            let chunkColumns = rows * shape.outWidth
            im2col(col: scratch, input: input, shape: shape, firstRow: firstRow, rows: rows, context: context)
            // dW[Cout, K] += dOut[Cout, chunk] x col[K, chunk]^T
            if usesNineTapPath(shape) {
                nineTapBackwardWeights(dWeights: dWeights, dOut: dOut + firstRow * shape.outWidth, lda: columns,
                                       col: scratch, columns: chunkColumns, outChannels: shape.outChannels, context: context)
                return
            }
            GEMM.simd(transA: .none, transB: .transposed, m: shape.outChannels, n: shape.patchSize, k: chunkColumns,
                      alpha: 1, a: dOut + firstRow * shape.outWidth, lda: columns, b: UnsafePointer(scratch),
                      ldb: chunkColumns, beta: 1, c: dWeights, ldc: shape.patchSize, context: context)
        }
    }

    // MARK: - Chunking

    /// Calls `body(firstRow, rows)` for consecutive ranges of output rows (n * OH + oh) whose
    /// im2col columns fit in `scratchCount` floats.
    @inline(__always)
    static func forEachChunk(shape: Conv2DShape, scratchCount: Int, _ body: (Int, Int) -> Void) {
        let rowFloats = shape.patchSize * shape.outWidth
        precondition(scratchCount >= rowFloats,
                     "Conv2D: scratch of \(scratchCount) floats is below the minimum \(rowFloats) for \(shape)")
        let totalRows = shape.batch * shape.outHeight
        let rowsPerChunk = min(scratchCount / rowFloats, totalRows)
        var firstRow = 0
        while firstRow < totalRows {
            let rows = min(rowsPerChunk, totalRows - firstRow)
            body(firstRow, rows)
            firstRow += rows
        }
    }

    /// Below this many floats of im2col work a chunk is not worth waking the pool for.
    static let parallelThresholdFloats = 32 * 1024

    // MARK: - im2col / col2im

    /// col[r, j] for patch row r = (ci * KH + ky) * KW + kx and chunk column j = (row - firstRow) * OW + ow,
    /// zero where the tap falls in the padding. The patch rows are split across threads.
    static func im2col(col: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, shape: Conv2DShape,
                       firstRow: Int, rows: Int, context: KernelContext) {
        let patchRows = shape.patchSize
        let threads = rows * shape.outWidth * patchRows >= parallelThresholdFloats ? min(context.threads, patchRows) : 1
        context.pool.run(tasks: threads, threads: threads) { task in
            let begin = patchRows * task / threads
            let end = patchRows * (task + 1) / threads
            // Constant kernel sizes let the compiler unroll the tap loops for the common kernels.
            if shape.kernelHeight == 3 && shape.kernelWidth == 3 {
                transferColumns(col: col, image: UnsafeMutablePointer(mutating: input), shape: shape,
                                kernelHeight: 3, kernelWidth: 3, firstRow: firstRow, rows: rows,
                                patchRows: begin..<end, accumulate: false)
            } else if shape.kernelHeight == 1 && shape.kernelWidth == 1 {
                transferColumns(col: col, image: UnsafeMutablePointer(mutating: input), shape: shape,
                                kernelHeight: 1, kernelWidth: 1, firstRow: firstRow, rows: rows,
                                patchRows: begin..<end, accumulate: false)
            } else {
                transferColumns(col: col, image: UnsafeMutablePointer(mutating: input), shape: shape,
                                kernelHeight: shape.kernelHeight, kernelWidth: shape.kernelWidth,
                                firstRow: firstRow, rows: rows, patchRows: begin..<end, accumulate: false)
            }
        }
    }

    /// dInput[ci, n, ih, iw] += dCol[r, j] over every tap that reads that pixel (the stride-1
    /// "same" path zeroes padding taps in `col`, which is scratch, first). Threads take
    /// whole input channels, so no two threads add into the same pixel.
    static func col2im(dInput: UnsafeMutablePointer<Float>, col: UnsafePointer<Float>, shape: Conv2DShape,
                       firstRow: Int, rows: Int, context: KernelContext) {
        let channels = shape.inChannels
        let taps = shape.kernelHeight * shape.kernelWidth
        let work = rows * shape.outWidth * shape.patchSize
        let threads = work >= parallelThresholdFloats ? min(context.threads, channels) : 1
        let mutableCol = UnsafeMutablePointer(mutating: col)
        context.pool.run(tasks: threads, threads: threads) { task in
            let range = (channels * task / threads * taps)..<(channels * (task + 1) / threads * taps)
            if shape.kernelHeight == 3 && shape.kernelWidth == 3 {
                transferColumns(col: mutableCol, image: dInput, shape: shape, kernelHeight: 3, kernelWidth: 3,
                                firstRow: firstRow, rows: rows, patchRows: range, accumulate: true)
            } else if shape.kernelHeight == 1 && shape.kernelWidth == 1 {
                transferColumns(col: mutableCol, image: dInput, shape: shape, kernelHeight: 1, kernelWidth: 1,
                                firstRow: firstRow, rows: rows, patchRows: range, accumulate: true)
            } else {
                transferColumns(col: mutableCol, image: dInput, shape: shape, kernelHeight: shape.kernelHeight,
                                kernelWidth: shape.kernelWidth, firstRow: firstRow, rows: rows,
                                patchRows: range, accumulate: true)
            }
        }
    }

    /// The one index walk shared by im2col (image -> col, padding written as zero) and col2im
    /// (col added into image, padding skipped). For each patch row and output row only the range
    /// of ow whose tap lands inside the image is touched; with stride 1 that range is a
    /// contiguous run, copied or accumulated with vector loads.
    @inline(__always)
    static func transferColumns(col: UnsafeMutablePointer<Float>, image: UnsafeMutablePointer<Float>,
                                shape: Conv2DShape, kernelHeight: Int, kernelWidth: Int,
                                firstRow: Int, rows: Int, patchRows: Range<Int>, accumulate: Bool) {
        let batch = shape.batch, height = shape.inHeight, width = shape.inWidth
        let outHeight = shape.outHeight, outWidth = shape.outWidth
        let strideH = shape.strideH, strideW = shape.strideW, padH = shape.padH, padW = shape.padW
        let chunkColumns = rows * outWidth
        let taps = kernelHeight * kernelWidth
        if strideH == 1 && strideW == 1 && 2 * padH == kernelHeight - 1 && 2 * padW == kernelWidth - 1 {
            for patchRow in patchRows {
                transferShifted(col: col + patchRow * chunkColumns, image: image, shape: shape, channel: patchRow / taps,
                                ky: (patchRow / kernelWidth) % kernelHeight, kx: patchRow % kernelWidth,
                                firstRow: firstRow, rows: rows, accumulate: accumulate)
            }
            return
        }
        for patchRow in patchRows {
            let channel = patchRow / taps
            let ky = (patchRow / kernelWidth) % kernelHeight
            let kx = patchRow % kernelWidth
            let (owBegin, owEnd) = DepthwiseConv2D.validOutputColumns(kx: kx, shape: shape)
            let colRow = col + patchRow * chunkColumns
            var n = firstRow / outHeight
            var oh = firstRow % outHeight
            for local in 0..<rows {
                let destination = colRow + local * outWidth
                let ih = oh * strideH + ky - padH
                if ih >= 0 && ih < height {
                    let source = image + ((channel * batch + n) * height + ih) * width + (kx - padW)
                    if accumulate {
                        if strideW == 1 {
                            Conv2D.addRun(image: source + owBegin, col: destination + owBegin, count: owEnd - owBegin)
                        } else {
                            for ow in owBegin..<owEnd { source[ow * strideW] += destination[ow] }
                        }
                    } else {
                        for ow in 0..<owBegin { destination[ow] = 0 }
                        if strideW == 1 {
                            Conv2D.copyRun(col: destination + owBegin, image: source + owBegin, count: owEnd - owBegin)
                        } else {
                            for ow in owBegin..<owEnd { destination[ow] = source[ow * strideW] }
                        }
                        for ow in owEnd..<outWidth { destination[ow] = 0 }
                    }
                } else if !accumulate {
                    for ow in 0..<outWidth { destination[ow] = 0 }
                }
                oh += 1
                if oh == outHeight { oh = 0; n += 1 }
            }
        }
    }

    /// One patch row of a stride-1 "same" convolution (OH = H, OW = W, odd kernel, pad = K / 2).
    /// Then col[j] = plane[firstRow * W + j + delta] with delta = (ky - padH) * W + (kx - padW)
    /// wherever the tap lands inside the image: one shifted run over the whole chunk instead of
    /// one run per output row, followed by zeroing the few taps that fell into the padding
    /// (whole rows at the top or bottom, one or more columns at the sides, which the shifted run
    /// filled with pixels of the neighbouring row). col2im zeroes those taps in its col row first
    /// (they are gradients of padding, discarded) and then adds the shifted run into the plane.
    @inline(__always)
    static func transferShifted(col: UnsafeMutablePointer<Float>, image: UnsafeMutablePointer<Float>, shape: Conv2DShape,
                                channel: Int, ky: Int, kx: Int, firstRow: Int, rows: Int, accumulate: Bool) {
        let height = shape.inHeight, width = shape.inWidth
        let planeCount = shape.batch * height * width
        let plane = image + channel * planeCount
        let count = rows * width
        let start = firstRow * width + (ky - shape.padH) * width + (kx - shape.padW)
        // Columns whose source index lies inside this channel's plane; the rest are padding.
        let low = min(max(0, -start), count)
        let high = max(min(count, planeCount - start), low)
        if !accumulate {
            for index in 0..<low { col[index] = 0 }
            copyRun(col: col + low, image: plane + start + low, count: high - low)
            for index in high..<count { col[index] = 0 }
        }
        // Taps in the padding: rows whose ih = oh + ky - padH leaves the image, and the columns
        // whose iw = ow + kx - padW does.
        let rowShift = ky - shape.padH
        let columnLow = max(0, shape.padW - kx)
        let columnHigh = min(width, width + shape.padW - kx)
        var oh = firstRow % height
        for local in 0..<rows {
            let row = col + local * width
            let ih = oh + rowShift
            if ih < 0 || ih >= height {
                for ow in 0..<width { row[ow] = 0 }
            } else {
                for ow in 0..<columnLow { row[ow] = 0 }
                for ow in columnHigh..<width { row[ow] = 0 }
            }
            oh += 1
            if oh == height { oh = 0 }
        }
        if accumulate {
            addRun(image: plane + start + low, col: col + low, count: high - low)
        }
    }

    @inline(__always)
    static func copyRun(col: UnsafeMutablePointer<Float>, image: UnsafeMutablePointer<Float>, count: Int) {
        var index = 0
        while index + floatVectorWidth <= count {
            col.storeVector(image.loadVector(at: index), at: index)
            index += floatVectorWidth
        }
        while index < count { col[index] = image[index]; index += 1 }
    }

    @inline(__always)
    static func addRun(image: UnsafeMutablePointer<Float>, col: UnsafeMutablePointer<Float>, count: Int) {
        var index = 0
        while index + floatVectorWidth <= count {
            image.storeVector(image.loadVector(at: index) + col.loadVector(at: index), at: index)
            index += floatVectorWidth
        }
        while index < count { image[index] += col[index]; index += 1 }
    }
}

// MARK: - Nine-tap path (Cin * KH * KW == 9: a first-layer 3x3 on one channel)

/// With a reduced dimension of 9 a packed GEMM spends more time packing and storing C tiles than
/// multiplying, and dW = dOut x col^T has only 9 columns against a 16-wide micro-tile. These three
/// loops keep all nine taps in registers instead.
extension Conv2D {
    @inline(__always)
    static func usesNineTapPath(_ shape: Conv2DShape) -> Bool { shape.patchSize == 9 }

    /// Threads take contiguous ranges of whole vectors of columns (the last one takes the tail).
    @inline(__always)
    static func forEachColumnRange(columns: Int, work: Int, context: KernelContext, _ body: (Int, Int) -> Void) {
        let vectors = (columns + floatVectorWidth - 1) / floatVectorWidth
        let threads = work >= parallelThresholdFloats ? min(context.threads, vectors) : 1
        context.pool.run(tasks: threads, threads: threads) { task in
            let begin = vectors * task / threads * floatVectorWidth
            let end = min(vectors * (task + 1) / threads * floatVectorWidth, columns)
            body(begin, end)
        }
    }

    /// out[co, j] = sum over t of W[co, t] * col[t, j] for the chunk's columns.
    /// Register budget (AVX2): 9 col vectors + 1 accumulator + 1 broadcast weight = 11 of 16.
    static func nineTapForward(out: UnsafeMutablePointer<Float>, ldc: Int, col: UnsafeMutablePointer<Float>,
                               columns: Int, weights: UnsafePointer<Float>, outChannels: Int, context: KernelContext) {
        forEachColumnRange(columns: columns, work: columns * outChannels * 9, context: context) { begin, end in
            var j = begin
            while j + floatVectorWidth <= end {
                let c0 = col.loadVector(at: j), c1 = col.loadVector(at: columns + j)
                let c2 = col.loadVector(at: 2 * columns + j), c3 = col.loadVector(at: 3 * columns + j)
                let c4 = col.loadVector(at: 4 * columns + j), c5 = col.loadVector(at: 5 * columns + j)
                let c6 = col.loadVector(at: 6 * columns + j), c7 = col.loadVector(at: 7 * columns + j)
                let c8 = col.loadVector(at: 8 * columns + j)
                for co in 0..<outChannels {
                    let w = weights + co * 9
                    var sum = c0 * FloatVector(repeating: w[0])
                    sum.addProduct(c1, FloatVector(repeating: w[1]))
                    sum.addProduct(c2, FloatVector(repeating: w[2]))
                    sum.addProduct(c3, FloatVector(repeating: w[3]))
                    sum.addProduct(c4, FloatVector(repeating: w[4]))
                    sum.addProduct(c5, FloatVector(repeating: w[5]))
                    sum.addProduct(c6, FloatVector(repeating: w[6]))
                    sum.addProduct(c7, FloatVector(repeating: w[7]))
                    sum.addProduct(c8, FloatVector(repeating: w[8]))
                    out.storeVector(sum, at: co * ldc + j)
                }
                j += floatVectorWidth
            }
            while j < end {
                for co in 0..<outChannels {
                    var sum: Float = 0
                    for tap in 0..<9 { sum += weights[co * 9 + tap] * col[tap * columns + j] }
                    out[co * ldc + j] = sum
                }
                j += 1
            }
        }
    }

    /// dCol[t, j] = sum over co of W[co, t] * dOut[co, j].
    /// Register budget (AVX2): 9 accumulators + 1 dOut vector + 1 broadcast weight = 11 of 16.
    static func nineTapBackwardData(col: UnsafeMutablePointer<Float>, columns: Int, dOut: UnsafePointer<Float>, ldb: Int,
                                    weights: UnsafePointer<Float>, outChannels: Int, context: KernelContext) {
        let gradient = UnsafeMutablePointer(mutating: dOut)
        forEachColumnRange(columns: columns, work: columns * outChannels * 9, context: context) { begin, end in
            var j = begin
            while j + floatVectorWidth <= end {
                var a0 = FloatVector(repeating: 0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0
                for co in 0..<outChannels {
                    let d = gradient.loadVector(at: co * ldb + j)
                    let w = weights + co * 9
                    a0.addProduct(d, FloatVector(repeating: w[0]))
                    a1.addProduct(d, FloatVector(repeating: w[1]))
                    a2.addProduct(d, FloatVector(repeating: w[2]))
                    a3.addProduct(d, FloatVector(repeating: w[3]))
                    a4.addProduct(d, FloatVector(repeating: w[4]))
                    a5.addProduct(d, FloatVector(repeating: w[5]))
                    a6.addProduct(d, FloatVector(repeating: w[6]))
                    a7.addProduct(d, FloatVector(repeating: w[7]))
                    a8.addProduct(d, FloatVector(repeating: w[8]))
                }
                col.storeVector(a0, at: j); col.storeVector(a1, at: columns + j)
                col.storeVector(a2, at: 2 * columns + j); col.storeVector(a3, at: 3 * columns + j)
                col.storeVector(a4, at: 4 * columns + j); col.storeVector(a5, at: 5 * columns + j)
                col.storeVector(a6, at: 6 * columns + j); col.storeVector(a7, at: 7 * columns + j)
                col.storeVector(a8, at: 8 * columns + j)
                j += floatVectorWidth
            }
            while j < end {
                for tap in 0..<9 {
                    var sum: Float = 0
                    for co in 0..<outChannels { sum += weights[co * 9 + tap] * gradient[co * ldb + j] }
                    col[tap * columns + j] = sum
                }
                j += 1
            }
        }
    }

    /// dW[co, t] += sum over j of dOut[co, j] * col[t, j]; threads take whole output channels.
    /// Register budget (AVX2): 9 accumulators + 1 dOut vector + 1 col vector = 11 of 16.
    static func nineTapBackwardWeights(dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, lda: Int,
                                       col: UnsafeMutablePointer<Float>, columns: Int, outChannels: Int,
                                       context: KernelContext) {
        let gradient = UnsafeMutablePointer(mutating: dOut)
        let threads = columns * outChannels * 9 >= parallelThresholdFloats ? min(context.threads, outChannels) : 1
        context.pool.run(tasks: threads, threads: threads) { task in
            for co in (outChannels * task / threads)..<(outChannels * (task + 1) / threads) {
                let row = gradient + co * lda
                var a0 = FloatVector(repeating: 0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0
                var j = 0
                while j + floatVectorWidth <= columns {
                    let d = row.loadVector(at: j)
                    a0.addProduct(d, col.loadVector(at: j))
                    a1.addProduct(d, col.loadVector(at: columns + j))
                    a2.addProduct(d, col.loadVector(at: 2 * columns + j))
                    a3.addProduct(d, col.loadVector(at: 3 * columns + j))
                    a4.addProduct(d, col.loadVector(at: 4 * columns + j))
                    a5.addProduct(d, col.loadVector(at: 5 * columns + j))
                    a6.addProduct(d, col.loadVector(at: 6 * columns + j))
                    a7.addProduct(d, col.loadVector(at: 7 * columns + j))
                    a8.addProduct(d, col.loadVector(at: 8 * columns + j))
                    j += floatVectorWidth
                }
                var sums = (a0.sum(), a1.sum(), a2.sum(), a3.sum(), a4.sum(), a5.sum(), a6.sum(), a7.sum(), a8.sum())
                while j < columns {
                    let d = row[j]
                    sums.0 += d * col[j]; sums.1 += d * col[columns + j]; sums.2 += d * col[2 * columns + j]
                    sums.3 += d * col[3 * columns + j]; sums.4 += d * col[4 * columns + j]
                    sums.5 += d * col[5 * columns + j]; sums.6 += d * col[6 * columns + j]
                    sums.7 += d * col[7 * columns + j]; sums.8 += d * col[8 * columns + j]
                    j += 1
                }
                let w = dWeights + co * 9
                w[0] += sums.0; w[1] += sums.1; w[2] += sums.2; w[3] += sums.3; w[4] += sums.4
                w[5] += sums.5; w[6] += sums.6; w[7] += sums.7; w[8] += sums.8
            }
        }
    }
}
