import Platform
import KernelsAVX512

// MARK: - 3x3 stride-1 convolution with output channels in the lanes (AVX-512)

/// out[co, n, y, x] = sum over ci, ky, kx of W'[ci, ky, kx, co] * in[ci, n, y + ky - 1, x + kx - 1]
/// with W' the weights rearranged once per call so that 16 output channels sit in one zmm
/// (`wideConvLanesTile`): per tap one weight vector and 16 FMAs, each broadcasting one input
/// pixel from a zero-padded copy of the image. No im2col and no packing of the input.
///
/// Each thread takes whole images: it copies one image's channels into its padded planes (rows
/// of W + 1 floats, the zero column shared by neighbouring rows, a zero row above and below),
/// computes the image's output sequence (H rows of W + 1 positions, the last of each row a
/// junk position that is never copied out) in tiles of 16 positions by 16 output channels (the
/// last tile of a sequence overlapping the one before), into its own staging rows, and copies
/// (or adds) the W real positions of each row into the output. Every output is computed by
/// the same FMA chain whatever the thread count.
///
/// The data gradient of a 3x3 stride-1 pad-1 layer is this convolution of dOut with the
/// flipped, channel-swapped kernel, accumulated (`flipped`, `accumulate`).
extension Conv2D {
    /// Whether `shape` (a forward shape, or the transposed one of a data gradient) has this path:
    /// 3x3, stride 1, padding 1, and an output sequence of at least one 16-position tile.
    public static func convLanesShape(_ shape: Conv2DShape) -> Bool {
        shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.strideH == 1 && shape.strideW == 1
            && shape.padH == 1 && shape.padW == 1 && shape.inHeight * (shape.inWidth + 1) >= 16
    }

    /// Where `forward` and `backwardData` (for its transposed shape) take this path on an
    /// AVX-512 context: 2 to 64 input and at most 32 output channels (one input channel keeps the
    /// one-channel forward, `forwardNineTapWide`). `leitner bench conv`, "conv
    /// lanes" section, 2026-12-07 (Xeon), old/new, 1 and 2 threads: 16-16 @28 1.21-1.48x
    /// (forward and data gradient), 32-32 @14 1.03-1.29x, cnn-s conv2's data gradient (64 in,
    /// 32 out) 1.06-1.10x; its forward (32 in, 64 out) 0.97-0.99x, 64-64 @7 0.76-0.94x, and
    /// ResNet-18's 64-512-channel layers 0.48-0.95x (there a tile's weights outgrow L1).
    public static func prefersConvLanes(_ shape: Conv2DShape) -> Bool {
        convLanesShape(shape) && shape.outChannels <= 32 && shape.inChannels > 1 && shape.inChannels <= 64
    }

    struct ConvLanesLayout {
        let rowStride: Int, imageFloats: Int, sequence: Int, paddedOut: Int, weightFloats: Int, threadFloats: Int
        /// Floats after a thread's padded planes: the junk positions' taps read up to 2 past them.
        static let slack = 16

        init(_ shape: Conv2DShape) {
            rowStride = shape.inWidth + 1
            imageFloats = (shape.inHeight + 2) * rowStride
            sequence = shape.inHeight * rowStride
            paddedOut = (shape.outChannels + 15) / 16 * 16
            weightFloats = shape.inChannels * 9 * paddedOut
            threadFloats = shape.inChannels * imageFloats + ConvLanesLayout.slack + paddedOut * sequence
        }
    }

    /// The scratch `forwardLanes` needs for `shape` on `threads` threads (0 where the path is
    /// not available): the rearranged weights, then per thread one image's padded planes and
    /// its staging rows (15 more: the layout starts at the first 64-byte boundary).
    public static func convLanesScratchFloats(_ shape: Conv2DShape, threads: Int) -> Int {
        guard convLanesShape(shape) else { return 0 }
        let layout = ConvLanesLayout(shape)
        return 15 + layout.weightFloats + max(threads, 1) * layout.threadFloats
    }

    /// out = conv(input, weights), or with `accumulate` out += it; with `flipped`, `weights`
    /// are a layer's [Cin', Cout', 3, 3] weights of the transposed `shape` (Cin' = shape's
    /// output channels) used flipped: the data gradient. Needs an AVX-512 context and
    /// `convLanesScratchFloats(shape, threads: context.threads)` floats.
    public static func forwardLanes(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, flipped: Bool = false, accumulate: Bool = false,
        scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(context.wideKernels && convLanesShape(shape)
                     && scratchCount >= convLanesScratchFloats(shape, threads: context.threads),
                     "Conv2D: forwardLanes needs AVX-512 kernels, a 3x3 stride-1 pad-1 shape and its scratch, got \(shape) with \(scratchCount) floats")
        let layout = ConvLanesLayout(shape)
        let packed = scratch + cacheLineSkip(scratch)
        packLaneWeights(packed, weights, inChannels: shape.inChannels, outChannels: shape.outChannels, taps: 9,
                        paddedOut: layout.paddedOut, flipped: flipped)
        let threads = min(context.threads, shape.batch)
        context.pool.run(tasks: threads, threads: threads,
                         ConvLanesImages(out: out, input: input, packed: UnsafePointer(packed), shape: shape, layout: layout,
                                         regions: packed + layout.weightFloats, accumulate: accumulate, threads: threads))
    }

    /// The tile walk of the lane kernels: body(start, c0) for every 16-channel block c0 <
    /// `paddedChannels` of every 16-position tile of a sequence of at least 16 positions, the
    /// last tile overlapping the one before (start = min(q, sequence - 16): it computes some
    /// positions again, to the same values). Every block of one tile before the next tile: the
    /// tile's input stays in L1 for the next block.
    @inline(__always)
    static func forEachLaneTile(sequence: Int, paddedChannels: Int, _ body: (_ start: Int, _ c0: Int) -> Void) {
        var q = 0
        while q < sequence {
            let start = min(q, sequence - 16)
            var c0 = 0
            while c0 < paddedChannels {
                body(start, c0)
                c0 += 16
            }
            q += 16
        }
    }

    /// The weights of a lane kernel with output channels in the lanes:
    /// packed[(ci * taps + tap) * paddedOut + co] = W[co, ci, tap] for [Cout, Cin, taps] weights,
    /// zero for co >= Cout; `flipped` (a data gradient: the lanes are the layer's input
    /// channels) reads the layer's [Cin', Cout', taps] weights as W[ci, co, taps - 1 - tap]
    /// (Cin' = `outChannels` here).
    static func packLaneWeights(_ packed: UnsafeMutablePointer<Float>, _ weights: UnsafePointer<Float>,
                                inChannels cin: Int, outChannels cout: Int, taps: Int, paddedOut: Int, flipped: Bool = false) {
        for ci in 0..<cin {
            for tap in 0..<taps {
                let row = packed + (ci * taps + tap) * paddedOut
                for co in 0..<cout {
                    row[co] = flipped ? weights[(ci * cout + co) * taps + taps - 1 - tap] : weights[(co * cin + ci) * taps + tap]
                }
                for co in cout..<paddedOut { row[co] = 0 }
            }
        }
    }

    /// `forwardLanes`' images [batch * task / threads, batch * (task + 1) / threads), in the
    /// task's own region of the scratch.
    struct ConvLanesImages: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, packed: UnsafePointer<Float>
        let shape: Conv2DShape, layout: ConvLanesLayout
        let regions: UnsafeMutablePointer<Float>
        let accumulate: Bool, threads: Int

        func run(task: Int) {
            #if arch(x86_64)
            let height = shape.inHeight, width = shape.inWidth, rowStride = layout.rowStride
            let plane = height * width, inPlane = shape.batch * plane
            let cin = shape.inChannels, cout = shape.outChannels
            let planes = regions + task * layout.threadFloats
            let staging = planes + cin * layout.imageFloats + ConvLanesLayout.slack
            (planes + cin * layout.imageFloats).initialize(repeating: 0, count: ConvLanesLayout.slack)
            let sequence = layout.sequence
            for n in (shape.batch * task / threads)..<(shape.batch * (task + 1) / threads) {
                for ci in 0..<cin {
                    padImage(planes + ci * layout.imageFloats, input + ci * inPlane + n * plane, height: height, width: width)
                }
                forEachLaneTile(sequence: sequence, paddedChannels: layout.paddedOut) { start, co0 in
                    wideConvLanesTile(input: planes + start, channelFloats: layout.imageFloats, rowStride: rowStride,
                                      channels: cin, weights: packed + co0, wStride: layout.paddedOut,
                                      out: staging + co0 * sequence + start, outStride: sequence)
                }
                for co in 0..<cout {
                    let target = out + co * inPlane + n * plane
                    let rows = staging + co * sequence
                    for y in 0..<height {
                        if accumulate {
                            Elementwise.add(target + y * width, rows + y * rowStride, count: width)
                        } else {
                            copyFloats(target + y * width, rows + y * rowStride, width)
                        }
                    }
                }
            }
            #else
            preconditionFailure("Conv2D: forwardLanes runs only with the AVX-512 kernels")
            #endif
        }
    }
}
