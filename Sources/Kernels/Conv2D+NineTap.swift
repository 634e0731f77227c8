import Platform
import KernelsAVX512

// MARK: - Nine-tap path (Cin * KH * KW == 9: a first-layer 3x3 on one channel)

/// With a reduced dimension of 9 a packed GEMM spends more time packing and storing C tiles than
/// multiplying, and dW = dOut x col^T has only 9 columns against a 16-wide micro-tile. These three
/// loops keep all nine taps in registers instead.
extension Conv2D {
    @inline(__always)
    static func usesNineTapPath(_ shape: Conv2DShape) -> Bool { shape.patchSize == 9 }

    /// Threads take contiguous ranges of whole vectors of columns (the last one takes the tail).
    @inline(__always)
    static func forEachColumnRange<Body: RangeTask>(columns: Int, work: Int, context: KernelContext, _ body: Body) {
        let vectors = (columns + floatVectorWidth - 1) / floatVectorWidth
        let threads = work >= parallelThresholdFloats ? min(context.threads, vectors) : 1
        context.pool.run(tasks: threads, threads: threads, ColumnSplit(body: body, columns: columns, vectors: vectors, threads: threads))
    }

    /// `forEachColumnRange`'s split: task t of `threads` takes whole vectors of columns.
    struct ColumnSplit<Body: RangeTask>: ParallelTask {
        let body: Body
        let columns: Int, vectors: Int, threads: Int

        func run(task: Int) {
            let begin = vectors * task / threads * floatVectorWidth
            let end = min(vectors * (task + 1) / threads * floatVectorWidth, columns)
            body.run(start: begin, count: end - begin)
        }
    }

    /// out[co, j] = sum over t of W[co, t] * col[t, j] for the chunk's columns.
    /// Register budget (AVX2): 9 col vectors + 1 accumulator + 1 broadcast weight = 11 of 16.
    static func nineTapForward(out: UnsafeMutablePointer<Float>, ldc: Int, col: UnsafeMutablePointer<Float>,
                               columns: Int, weights: UnsafePointer<Float>, outChannels: Int, context: KernelContext) {
        forEachColumnRange(columns: columns, work: columns * outChannels * 9, context: context,
                           NineTapForward(out: out, ldc: ldc, col: col, columns: columns, weights: weights, outChannels: outChannels))
    }

    /// `nineTapForward` on the columns begin ..< begin + count.
    struct NineTapForward: RangeTask {
        let out: UnsafeMutablePointer<Float>, ldc: Int
        let col: UnsafeMutablePointer<Float>, columns: Int
        let weights: UnsafePointer<Float>, outChannels: Int

        func run(start begin: Int, count: Int) {
            let end = begin + count
            var j = begin
            while j + floatVectorWidth <= end {
                let c0 = col.loadVector(at: j), c1 = col.loadVector(at: columns + j)
                let c2 = col.loadVector(at: 2 * columns + j), c3 = col.loadVector(at: 3 * columns + j)
                let c4 = col.loadVector(at: 4 * columns + j), c5 = col.loadVector(at: 5 * columns + j)
                let c6 = col.loadVector(at: 6 * columns + j), c7 = col.loadVector(at: 7 * columns + j)
                let c8 = col.loadVector(at: 8 * columns + j)
                // Pointers advanced per output channel (no index multiply in the loop).
                var w = weights
                var o = out + j
                for _ in 0..<outChannels {
                    // The first eight weights in one load, used by lane (on NEON two vector loads
                    // and `fmla` by element instead of eight scalar loads); the same FMAs in order.
                    let first = UnsafeRawPointer(w).loadUnaligned(as: SIMD8<Float>.self)
                    var sum = c0 * FloatVector(repeating: first[0])
                    sum.addProduct(c1, FloatVector(repeating: first[1]))
                    sum.addProduct(c2, FloatVector(repeating: first[2]))
                    sum.addProduct(c3, FloatVector(repeating: first[3]))
                    sum.addProduct(c4, FloatVector(repeating: first[4]))
                    sum.addProduct(c5, FloatVector(repeating: first[5]))
                    sum.addProduct(c6, FloatVector(repeating: first[6]))
                    sum.addProduct(c7, FloatVector(repeating: first[7]))
                    sum.addProduct(c8, FloatVector(repeating: w[8]))
                    o.storeVector(sum, at: 0)
                    o += ldc
                    w += 9
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
        forEachColumnRange(columns: columns, work: columns * outChannels * 9, context: context,
                           NineTapBackwardData(col: col, columns: columns, gradient: gradient, ldb: ldb, weights: weights,
                                               outChannels: outChannels))
    }

    /// `nineTapBackwardData` on the columns begin ..< begin + count.
    struct NineTapBackwardData: RangeTask {
        let col: UnsafeMutablePointer<Float>, columns: Int
        let gradient: UnsafeMutablePointer<Float>, ldb: Int
        let weights: UnsafePointer<Float>, outChannels: Int

        func run(start begin: Int, count: Int) {
            let end = begin + count
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
        context.pool.run(tasks: threads, threads: threads,
                         NineTapBackwardWeights(dWeights: dWeights, gradient: gradient, lda: lda, col: col, columns: columns,
                                                outChannels: outChannels, threads: threads))
    }

    /// `nineTapBackwardWeights` for task `task` of `threads`: a contiguous range of output channels.
    struct NineTapBackwardWeights: ParallelTask {
        let dWeights: UnsafeMutablePointer<Float>
        let gradient: UnsafeMutablePointer<Float>, lda: Int
        let col: UnsafeMutablePointer<Float>, columns: Int
        let outChannels: Int, threads: Int

        func run(task: Int) {
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

// MARK: - AVX-512: the one-channel 3x3 forward straight from padded images

extension Conv2D {
    /// Images per block of `forwardNineTapWide` in `scratchCount` floats, or 0 where it is not
    /// taken: one input channel, 3x3 stride 1 pad 1, at least 16 wide (a row holds a whole
    /// 16-lane segment), and scratch for one padded image.
    public static func wideNineTapBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        guard shape.inChannels == 1 && shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.strideH == 1
                && shape.strideW == 1 && shape.padH == 1 && shape.padW == 1 && shape.inWidth >= 16 else { return 0 }
        let imageFloats = (shape.inHeight + 2) * (shape.inWidth + 2)
        return scratchCount < imageFloats ? 0 : min(shape.batch, scratchCount / imageFloats)
    }

    /// out = conv(input, weights) for a `wideNineTapBlockImages` shape on an AVX-512 context:
    /// each thread copies its images of a block into zero-padded planes (rows of W + 2) and
    /// computes each output channel's plane 16 columns at a time (`wideNineTapPlane`): no
    /// im2col. Measured against the column path's
    /// nine-tap loop in `leitner bench conv` ("one-channel forward" section).
    public static func forwardNineTapWide(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        let blockImages = wideNineTapBlockImages(shape, scratchCount: scratchCount)
        precondition(context.wideKernels && blockImages > 0,
                     "Conv2D: forwardNineTapWide needs AVX-512 kernels, a one-channel 3x3 stride-1 pad-1 shape at least 16 wide and scratch for one padded image, got \(shape) with \(scratchCount) floats")
        var n0 = 0
        while n0 < shape.batch {
            let images = min(blockImages, shape.batch - n0)
            let threads = min(context.threads, images)
            context.pool.run(tasks: threads, threads: threads,
                             WideNineTapImages(out: out, input: input, weights: weights, shape: shape, scratch: scratch,
                                               n0: n0, images: images, threads: threads))
            n0 += images
        }
    }

    /// `forwardNineTapWide`'s images n0 + [images * task / threads, images * (task + 1) / threads).
    struct WideNineTapImages: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>
        let shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>
        let n0: Int, images: Int, threads: Int

        func run(task: Int) {
            #if arch(x86_64)
            let height = shape.inHeight, width = shape.inWidth, rowStride = width + 2
            let imageFloats = (height + 2) * rowStride, plane = height * width
            let outPlane = shape.batch * plane
            for n in (images * task / threads)..<(images * (task + 1) / threads) {
                let padded = scratch + n * imageFloats
                padded.initialize(repeating: 0, count: rowStride + 1)
                for y in 0..<height {
                    let row = padded + (y + 1) * rowStride + 1
                    copyFloats(row, input + (n0 + n) * plane + y * width, width)
                    row[width] = 0
                    row[width + 1] = 0  // the right border and the next row's left one
                }
                (padded + (height + 1) * rowStride + 1).initialize(repeating: 0, count: rowStride - 1)
                for co in 0..<shape.outChannels {
                    wideNineTapPlane(input: padded, rowStride: rowStride, width: width, height: height,
                                     weights: weights + co * 9, out: out + co * outPlane + (n0 + n) * plane)
                }
            }
            #else
            preconditionFailure("Conv2D: forwardNineTapWide runs only with the AVX-512 kernels")
            #endif
        }
    }
}
