import Platform

// MARK: - The column path: im2col chunks in scratch and the packed GEMM

extension Conv2D {
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
        context.pool.run(tasks: threads, threads: threads,
                         Im2col(col: col, input: input, shape: shape, firstRow: firstRow, rows: rows, patchRows: patchRows,
                                threads: threads))
    }

    /// `im2col` for task `task` of `threads`: a contiguous range of patch rows.
    struct Im2col: ParallelTask {
        let col: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let shape: Conv2DShape
        let firstRow: Int, rows: Int, patchRows: Int, threads: Int

        func run(task: Int) {
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
        context.pool.run(tasks: threads, threads: threads,
                         Col2im(dInput: dInput, mutableCol: mutableCol, shape: shape, firstRow: firstRow, rows: rows,
                                channels: channels, taps: taps, threads: threads))
    }

    /// `col2im` for task `task` of `threads`: a contiguous range of input channels.
    struct Col2im: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, mutableCol: UnsafeMutablePointer<Float>
        let shape: Conv2DShape
        let firstRow: Int, rows: Int, channels: Int, taps: Int, threads: Int

        func run(task: Int) {
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
