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
    /// Default bound on the im2col chunk: 1 Mi floats (4 MB) stays in the last-level cache and
    /// still gives the GEMM thousands of columns per call.
    public static let defaultScratchLimitFloats = 1 << 20

    /// The smallest scratch the kernels accept: the columns of one output row (n, oh).
    /// Zero for pointwise convolutions, which need no im2col.
    public static func minimumScratchFloats(shape: Conv2DShape) -> Int {
        shape.isPointwise ? 0 : shape.patchSize * shape.outWidth
    }

    /// Scratch floats to allocate for `shape`: as many whole output rows of im2col as fit in
    /// `limitFloats`, at least one row, at most the whole batch. The threads split the rows of
    /// one shared chunk, so the size does not grow with `threads`.
    public static func scratchFloats(shape: Conv2DShape, threads: Int,
                                     limitFloats: Int = defaultScratchLimitFloats) -> Int {
        if shape.isPointwise { return 0 }
        let rowFloats = shape.patchSize * shape.outWidth
        let rows = min(max(limitFloats / rowFloats, 1), shape.batch * shape.outHeight)
        return rows * rowFloats
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
        forEachChunk(shape: shape, scratchCount: scratchCount) { firstRow, rows in
            let chunkColumns = rows * shape.outWidth
            im2col(col: scratch, input: input, shape: shape, firstRow: firstRow, rows: rows, context: context)
            GEMM.simd(transA: .none, transB: .none, m: shape.outChannels, n: chunkColumns, k: shape.patchSize,
                      alpha: 1, a: weights, lda: shape.patchSize, b: UnsafePointer(scratch), ldb: chunkColumns,
                      beta: 0, c: out + firstRow * shape.outWidth, ldc: columns, context: context)
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
        forEachChunk(shape: shape, scratchCount: scratchCount) { firstRow, rows in
            let chunkColumns = rows * shape.outWidth
            // dCol[K, chunk] = W^T[K, Cout] x dOut[Cout, chunk]
            GEMM.simd(transA: .transposed, transB: .none, m: shape.patchSize, n: chunkColumns, k: shape.outChannels,
                      alpha: 1, a: weights, lda: shape.patchSize, b: dOut + firstRow * shape.outWidth, ldb: columns,
                      beta: 0, c: scratch, ldc: chunkColumns, context: context)
            col2im(dInput: dInput, col: UnsafePointer(scratch), shape: shape, firstRow: firstRow, rows: rows,
                   context: context)
        }
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
        forEachChunk(shape: shape, scratchCount: scratchCount) { firstRow, rows in
            let chunkColumns = rows * shape.outWidth
            im2col(col: scratch, input: input, shape: shape, firstRow: firstRow, rows: rows, context: context)
            // dW[Cout, K] += dOut[Cout, chunk] x col[K, chunk]^T
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

    /// dInput[ci, n, ih, iw] += dCol[r, j] over every tap that reads that pixel. Threads take
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
