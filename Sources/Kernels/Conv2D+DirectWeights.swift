import Platform
#if arch(x86_64)
import KernelsAVX512
#endif

// MARK: - Direct weight gradient for 3x3 stride-1 "same" convolutions

/// dW[co, ci, ky, kx] = sum over n, oh, ow of dOut[co, n, oh, ow] * in[ci, n, oh + ky - 1, ow + kx - 1].
/// Both tensors are copied into one zero-padded layout of rows of W + 1 floats: image n's row y
/// is padded row n (H + 1) + y (+ 1 for the input), pixel x at column x (+ 1 for the input), and
/// everything else is zero: one zero column per row serves as the right border of a row and the
/// left border of the next, one zero row per image as the bottom border of an image and the top
/// border of the next. Then tap (ky, kx) of output position q is input position
/// q + ky (W + 1) + kx, a fixed shift of one long sequence over a block of images, and dW is
/// nine 1-D correlations per (co, ci): no im2col matrix (nine copies of the input), no packing,
/// just FMA streams over contiguous vectors (`correlateTile`). The zeros of the padded dOut
/// cancel the products that wrap around a row or an image.
///
/// Images go in blocks sized from the scratch (shape-only); each block's padded copies are made
/// by all threads, then the threads split the (output-channel pair, input channel) tiles, and
/// each tile adds its block sums into its own dW elements, blocks in order: the result is the
/// same for any thread count.
extension Conv2D {
    /// Floats past a channel's padded images: the input's leading zero row, the reads of the
    /// last vector's shifted taps (two rows and two floats) and the round-up to 16 floats.
    static func directSlack(_ shape: Conv2DShape) -> Int { 3 * (shape.inWidth + 1) + 2 + 32 }

    /// Floats of one channel's padded image: (H + 1) x (W + 1).
    static func directImageFloats(_ shape: Conv2DShape) -> Int { (shape.inHeight + 1) * (shape.inWidth + 1) }

    /// Upper bound on one block's padded copies (1 MiB, as the im2col chunk: the tiles stream
    /// four channels of it at a time; fewer blocks mean fewer horizontal sums).
    static let directBlockLimitFloats = 1 << 18

    /// Images per block for `backwardWeightsDirect` with `scratchCount` floats of scratch, or 0
    /// when the shape is not 3x3 stride-1 pad-1 or not even one image fits.
    public static func directWeightBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        guard shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.strideH == 1 && shape.strideW == 1
                && shape.padH == 1 && shape.padW == 1 else { return 0 }
        let channels = shape.inChannels + shape.outChannels
        let perImage = channels * directImageFloats(shape)
        let budget = min(scratchCount, directBlockLimitFloats) - channels * directSlack(shape)
        return budget < perImage ? 0 : min(shape.batch, budget / perImage)
    }

    /// dWeights += the weight gradient, directly from the images (see above). Needs
    /// `directWeightBlockImages(shape, scratchCount:) > 0`.
    /// - Shapes: dWeights [Cout, Cin, 3, 3], dOut [Cout, N, H, W], input [Cin, N, H, W].
    public static func backwardWeightsDirect(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        let blockImages = directWeightBlockImages(shape, scratchCount: scratchCount)
        precondition(blockImages > 0, "Conv2D: backwardWeightsDirect needs a 3x3 stride-1 pad-1 shape and scratch for one padded image, got \(shape) with \(scratchCount) floats")
        let height = shape.inHeight, width = shape.inWidth
        let rowStride = width + 1
        let imageFloats = directImageFloats(shape)
        let cin = shape.inChannels, cout = shape.outChannels
        let plane = shape.batch * height * width
        // Output channels per tile: two with 32 zmm or NEON q registers (18 + 2 + 1), one with
        // 16 ymm (9 + 1 + 1).
        #if arch(x86_64)
        let rows = context.wideKernels ? 2 : 1
        #else
        let rows = 2
        #endif
        let pairs = (cout + rows - 1) / rows
        var n0 = 0
        while n0 < shape.batch {
            let images = min(blockImages, shape.batch - n0)
            // The correlation runs over q < count; the slack after it is zero (see directSlack).
            let count = (images * imageFloats + 15) / 16 * 16
            let channelFloats = images * imageFloats + directSlack(shape)
            let paddedInput = scratch
            let paddedDOut = scratch + cin * channelFloats
            // Padded copies, channels split over the threads.
            let copyThreads = min(context.threads, cin + cout)
            context.pool.run(tasks: copyThreads, threads: copyThreads) { task in
                for channel in ((cin + cout) * task / copyThreads)..<((cin + cout) * (task + 1) / copyThreads) {
                    let isInput = channel < cin
                    let c = isInput ? channel : channel - cin
                    let target = isInput ? paddedInput + c * channelFloats : paddedDOut + c * channelFloats
                    let source = (isInput ? input : dOut) + c * plane + n0 * height * width
                    padImages(target: target, source: source, images: images, height: height, width: width,
                              bordered: isInput, total: channelFloats)
                }
            }
            // Tiles: (output-channel pair, input channel), split over the threads.
            let tiles = pairs * cin
            let tileThreads = min(context.threads, tiles)
            context.pool.run(tasks: tileThreads, threads: tileThreads) { task in
                for tile in (tiles * task / tileThreads)..<(tiles * (task + 1) / tileThreads) {
                    let pair = tile / cin, ci = tile % cin
                    let co = pair * rows
                    let dOutRows = UnsafePointer(paddedDOut + co * channelFloats)
                    let source = UnsafePointer(paddedInput + ci * channelFloats)
                    let sums = dWeights + (co * cin + ci) * 9
                    let rowsHere = min(rows, cout - co)
                    #if arch(x86_64)
                    if context.wideKernels {
                        wideCorrelateTile(rows: rowsHere, dOut: dOutRows, dOutStride: channelFloats, input: source,
                                          rowStride: rowStride, count: count, sums: sums, sumStride: cin * 9)
                        continue
                    }
                    #endif
                    if rowsHere == 2 {
                        correlateTile(FloatVector.self, rows: 2, dOut: dOutRows, dOutStride: channelFloats, input: source,
                                      rowStride: rowStride, count: count, sums: sums, sumStride: cin * 9)
                    } else {
                        correlateTile(FloatVector.self, rows: 1, dOut: dOutRows, dOutStride: channelFloats, input: source,
                                      rowStride: rowStride, count: count, sums: sums, sumStride: cin * 9)
                    }
                }
            }
            n0 += images
        }
    }

    /// Copies `images` H x W images (contiguous) into the padded layout (see above) at `target`
    /// and zeros the rest up to `total` floats. Input (`bordered`): a zero row, then per image
    /// H rows of (0, pixels) and a zero row. dOut: per image H rows of (pixels, 0) and a zero row.
    @inline(__always)
    static func padImages(target: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>, images: Int,
                          height: Int, width: Int, bordered: Bool, total: Int) {
        let rowStride = width + 1
        var out = target
        var src = source
        if bordered { for x in 0..<rowStride { out[x] = 0 }; out += rowStride }
        for _ in 0..<images {
            for _ in 0..<height {
                if bordered {
                    out[0] = 0
                    (out + 1).update(from: src, count: width)
                } else {
                    out.update(from: src, count: width)
                    out[width] = 0
                }
                out += rowStride
                src += width
            }
            for x in 0..<rowStride { out[x] = 0 }
            out += rowStride
        }
        let used = out - target
        for i in used..<total { target[i] = 0 }
    }
}
