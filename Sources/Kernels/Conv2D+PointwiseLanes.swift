import Platform
import KernelsAVX512

// MARK: - 1x1 stride-2 convolution with output channels in the lanes (AVX-512)

/// A 1x1 stride-2 pad-0 layer (a ResNet downsampling shortcut) as the one-tap form of
/// `wideConvLanesTapsTile`, one image per thread task:
///
/// - Forward: the image's even rows and columns are gathered into one plane per input channel
///   (OH x OW, no padding: the output sequence has no junk positions), and each 16-position x
///   16-channel tile writes straight into the output (through staging rows only for a last
///   block of fewer than 16 output channels).
/// - Data gradient: dOut's planes are read where they lie (one image of a channel is
///   contiguous), input channels in the lanes; the tile's rows are added into the even rows and
///   columns of dInput.
///
/// The old path gathered the same pixels (im2col) and ran a GEMM with K = Cin (16 or 32): its
/// C tile was loaded and stored for a K of 16. Every output is one FMA chain over the channels
/// in order, whatever the thread count.
extension Conv2D {
    /// The shapes with this path: 1x1, stride 2, pad 0, and at least one 16-position tile.
    public static func pointwiseLanesShape(_ shape: Conv2DShape) -> Bool {
        shape.kernelHeight == 1 && shape.kernelWidth == 1 && shape.strideH == 2 && shape.strideW == 2
            && shape.padH == 0 && shape.padW == 0 && shape.outHeight * shape.outWidth >= 16
    }

    /// Where `forward` takes it on an AVX-512 context: at most 64 input and 128 output channels.
    /// `leitner bench conv`, "strided lanes" section, 2026-12-07 (Xeon), old/new at 2 and 1
    /// threads: resnet8's 16-32 @28 1.18x, 32-64 @14 1.23-1.27x, ResNet-18's 64-128 @56
    /// 1.23-1.42x; its 256-512 @14 0.74-0.88x (not taken).
    public static func prefersPointwiseLanesForward(_ shape: Conv2DShape) -> Bool {
        pointwiseLanesShape(shape) && shape.inChannels <= 64 && shape.outChannels <= 128
    }

    /// Where `backwardData` takes it: at most 32 input and 64 output channels. Same runs:
    /// resnet8's 16-32 1.45-1.50x, 32-64 1.17-1.23x; ResNet-18's 64-128 0.86-1.05x and 256-512
    /// 0.58-0.96x (not taken).
    public static func prefersPointwiseLanesData(_ shape: Conv2DShape) -> Bool {
        pointwiseLanesShape(shape) && shape.inChannels <= 32 && shape.outChannels <= 64
    }

    /// Either pass: the scratch plan reserves this path's scratch.
    public static func prefersPointwiseLanes(_ shape: Conv2DShape) -> Bool {
        prefersPointwiseLanesForward(shape) || prefersPointwiseLanesData(shape)
    }

    struct PointwiseLanesLayout {
        let sequence: Int, paddedOut: Int, paddedIn: Int, weightFloats: Int, threadFloats: Int
        init(_ shape: Conv2DShape) {
            sequence = shape.outHeight * shape.outWidth
            paddedOut = (shape.outChannels + 15) / 16 * 16
            paddedIn = (shape.inChannels + 15) / 16 * 16
            weightFloats = max(shape.inChannels * paddedOut, shape.outChannels * paddedIn)
            threadFloats = shape.inChannels * sequence + max(paddedOut, paddedIn) * sequence
        }
    }

    /// The scratch of both passes (0 where there is no such path): alignment, the rearranged
    /// weights, per thread the gathered planes and the staging rows.
    public static func pointwiseLanesScratchFloats(_ shape: Conv2DShape, threads: Int) -> Int {
        guard pointwiseLanesShape(shape) else { return 0 }
        let layout = PointwiseLanesLayout(shape)
        return 15 + layout.weightFloats + max(threads, 1) * layout.threadFloats
    }

    /// out = conv(input, weights) (`forward: true`) or dInput += conv^T(dOut, weights) for a
    /// `pointwiseLanesShape` (dInput = that with `accumulate` false, zeros at the odd rows and
    /// columns). Needs an AVX-512 context and
    /// `pointwiseLanesScratchFloats(shape, threads: context.threads)` floats.
    public static func pointwiseLanes(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, forward: Bool, accumulate: Bool = true, scratch: UnsafeMutablePointer<Float>, scratchCount: Int,
        context: KernelContext
    ) {
        precondition(context.wideKernels && pointwiseLanesShape(shape)
                     && scratchCount >= pointwiseLanesScratchFloats(shape, threads: context.threads),
                     "Conv2D: pointwiseLanes needs AVX-512 kernels, a 1x1 stride-2 shape and its scratch, got \(shape) with \(scratchCount) floats")
        let layout = PointwiseLanesLayout(shape)
        let packed = scratch + cacheLineSkip(scratch)
        // forward: W'[ci * paddedOut + co] = W[co, ci]; data gradient: W'[co * paddedIn + ci] = W[co, ci]
        if forward {
            packLaneWeights(packed, weights, inChannels: shape.inChannels, outChannels: shape.outChannels, taps: 1,
                            paddedOut: layout.paddedOut)
        } else {
            packLaneWeights(packed, weights, inChannels: shape.outChannels, outChannels: shape.inChannels, taps: 1,
                            paddedOut: layout.paddedIn, flipped: true)
        }
        let threads = min(context.threads, shape.batch)
        context.pool.run(tasks: threads, threads: threads,
                         PointwiseLanesImages(out: out, input: input, packed: UnsafePointer(packed), shape: shape, layout: layout,
                                              regions: packed + layout.weightFloats, forward: forward, accumulate: accumulate,
                                              threads: threads))
    }

    /// The images [batch * task / threads, batch * (task + 1) / threads) of either pass.
    struct PointwiseLanesImages: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, packed: UnsafePointer<Float>
        let shape: Conv2DShape, layout: PointwiseLanesLayout
        let regions: UnsafeMutablePointer<Float>
        let forward: Bool, accumulate: Bool, threads: Int

        func run(task: Int) {
            #if arch(x86_64)
            let region = regions + task * layout.threadFloats
            for n in (shape.batch * task / threads)..<(shape.batch * (task + 1) / threads) {
                if forward { forwardImage(n, region) } else { backwardImage(n, region) }
            }
            #else
            preconditionFailure("Conv2D: pointwiseLanes runs only with the AVX-512 kernels")
            #endif
        }

        #if arch(x86_64)
        func forwardImage(_ n: Int, _ region: UnsafeMutablePointer<Float>) {
            let cin = shape.inChannels, cout = shape.outChannels
            let width = shape.inWidth, plane = shape.inHeight * width, outWidth = shape.outWidth
            let sequence = layout.sequence, staging = region + cin * sequence
            // the even rows and columns of image n, one plane per input channel
            for ci in 0..<cin {
                let source = input + (ci * shape.batch + n) * plane
                let target = region + ci * sequence
                for i in 0..<shape.outHeight {
                    let row = source + 2 * i * width, into = target + i * outWidth
                    for j in 0..<outWidth { into[j] = row[2 * j] }
                }
            }
            let outStride = shape.batch * sequence
            var offset = 0
            forEachLaneTile(sequence: sequence, paddedChannels: layout.paddedOut) { start, co0 in
                // straight into the output; a last block of fewer than 16 channels through staging
                let direct = co0 + 16 <= cout
                wideConvLanesTapsTile(input: region + start, channelFloats: sequence, offsets: &offset, taps: 1,
                                      channels: cin, weights: packed + co0, wStride: layout.paddedOut,
                                      out: direct ? out + co0 * outStride + n * sequence + start : staging + start,
                                      outStride: direct ? outStride : sequence)
                if !direct {
                    for co in co0..<cout {
                        copyFloats(out + co * outStride + n * sequence + start, staging + (co - co0) * sequence + start, 16)
                    }
                }
            }
        }

        func backwardImage(_ n: Int, _ region: UnsafeMutablePointer<Float>) {
            let cin = shape.inChannels, cout = shape.outChannels
            let width = shape.inWidth, plane = shape.inHeight * width, outWidth = shape.outWidth
            let sequence = layout.sequence, staging = region + cin * sequence
            // dOut's planes where they lie: channel co of image n at (co * batch + n) * sequence
            let dOut = input + n * sequence
            var offset = 0
            forEachLaneTile(sequence: sequence, paddedChannels: layout.paddedIn) { start, ci0 in
                wideConvLanesTapsTile(input: dOut + start, channelFloats: shape.batch * sequence, offsets: &offset, taps: 1,
                                      channels: cout, weights: packed + ci0, wStride: layout.paddedIn,
                                      out: staging + ci0 * sequence + start, outStride: sequence)
            }
            // dInput's even rows and columns += the tile rows (=, and zeros elsewhere, without
            // `accumulate`)
            for ci in 0..<cin {
                let target = out + (ci * shape.batch + n) * plane
                let rows = staging + ci * sequence
                if !accumulate { target.initialize(repeating: 0, count: plane) }
                for i in 0..<shape.outHeight {
                    let row = target + 2 * i * width, from = rows + i * outWidth
                    for j in 0..<outWidth { row[2 * j] += from[j] }
                }
            }
        }
        #endif
    }
}
