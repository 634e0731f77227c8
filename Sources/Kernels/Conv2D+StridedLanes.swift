import Platform
import KernelsAVX512

// MARK: - 3x3 stride-2 convolution with output channels in the lanes (AVX-512)

/// The stride-2 forms of `forwardLanes` (3x3, pad 1, even H and W), one image per thread task:
///
/// - Forward: the image's input channels are split into their four phase planes in the padded
///   layout of the direct weight gradient (`padInputPhase`: rows of OW + 1 floats, a zero row
///   above). Output position q = oh * (OW + 1) + ow then reads tap (ky, kx) at q plus one of nine
///   offsets (`directTapOffsets`), and `wideConvLanesPhaseTile` computes 16 positions by 16
///   output channels per call, as the stride-1 tile does with its fixed offsets.
/// - Data gradient: input pixel (2i + a, 2j + b) receives from the taps whose row and column
///   land on it: for a = 0 tap row 1 from output row i, for a = 1 tap row 0 from output row i + 1
///   and tap row 2 from output row i (columns alike). So each of the four input phases is a
///   stride-1 correlation of dOut (padded with a zero row and column after the image) with 1, 2,
///   2 or 4 taps, input channels in the lanes; the four results are interleaved into dInput
///   (accumulated).
///
/// Every output is one FMA chain (channels, then taps, in order) whatever the thread count.
extension Conv2D {
    /// The shapes with this path: 3x3, stride 2, pad 1, even H and W.
    public static func stridedLanesShape(_ shape: Conv2DShape) -> Bool {
        directPhases(shape) == 4 && shape.outHeight * (shape.outWidth + 1) >= 16
    }

    /// Where `forward` and `backwardData` take this path on an AVX-512 context: at most 128
    /// input and 256 output channels. `leitner bench conv`, "strided lanes" section, 2026-12-07
    /// (Xeon), old/new, two runs at 2 threads and two at 1. Forward, with the written-out 9-tap
    /// tile (`wideConvLanesPhaseTile`): resnet8's 16-32 @28 1.53-1.56x and 1.32-1.39x, 32-64 @14
    /// 1.14-1.15x and 0.98-1.02x, ResNet-18's 64-128 @56 1.34-1.41x and 1.39-1.40x, 128-256 @28
    /// 1.02-1.16x and 1.09-1.17x (with a taps loop the last three lost or tied: 0.80-1.14x). Data
    /// gradient: 16-32 1.22-1.51x, 32-64 1.16-1.31x, 64-128 1.20-1.23x, 128-256 1.04-1.26x.
    public static func prefersStridedLanes(_ shape: Conv2DShape) -> Bool {
        stridedLanesShape(shape) && shape.inChannels <= 128 && shape.outChannels <= 256
    }

    struct StridedLanesLayout {
        let rowStride: Int, sequence: Int
        /// Forward: one phase plane (with slack), four per input channel; the output staging.
        let phaseFloats: Int, paddedOut: Int
        /// Data gradient: one padded dOut channel; input channels rounded up to 16.
        let dOutFloats: Int, paddedIn: Int
        /// The rearranged weights of either pass, and one thread's region (the larger pass's).
        let weightFloats: Int, threadFloats: Int

        init(_ shape: Conv2DShape) {
            rowStride = shape.outWidth + 1
            sequence = shape.outHeight * rowStride
            phaseFloats = directImageFloats(shape) + directSlack(shape)
            paddedOut = (shape.outChannels + 15) / 16 * 16
            dOutFloats = (shape.outHeight + 1) * rowStride + 16
            paddedIn = (shape.inChannels + 15) / 16 * 16
            weightFloats = 9 * max(shape.inChannels * paddedOut, shape.outChannels * paddedIn)
            threadFloats = max(4 * shape.inChannels * phaseFloats + paddedOut * sequence,
                               shape.outChannels * dOutFloats + 4 * paddedIn * sequence)
        }
    }

    /// The scratch of both passes for `shape` on `threads` threads (0 where there is no such
    /// path): 15 floats of alignment, the rearranged weights, per thread the padded planes and
    /// the staging rows.
    public static func stridedLanesScratchFloats(_ shape: Conv2DShape, threads: Int) -> Int {
        guard stridedLanesShape(shape) else { return 0 }
        let layout = StridedLanesLayout(shape)
        return 15 + layout.weightFloats + max(threads, 1) * layout.threadFloats
    }

    /// The taps of input phase `a` (0 even, 1 odd) along one axis, in the order the FMA chain
    /// takes them: their count, and tap i's kernel index and output row (column) shift.
    @inline(__always) static func phaseTapCount(_ a: Int) -> Int { a == 0 ? 1 : 2 }
    @inline(__always) static func phaseTapKernel(_ a: Int, _ i: Int) -> Int { a == 0 ? 1 : (i == 0 ? 0 : 2) }
    @inline(__always) static func phaseTapShift(_ a: Int, _ i: Int) -> Int { a == 1 && i == 0 ? 1 : 0 }

    /// out = conv(input, weights) for `stridedLanesShape` (stride 2). Needs an AVX-512 context and
    /// `stridedLanesScratchFloats(shape, threads: context.threads)` floats.
    public static func forwardStridedLanes(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(context.wideKernels && stridedLanesShape(shape)
                     && scratchCount >= stridedLanesScratchFloats(shape, threads: context.threads),
                     "Conv2D: forwardStridedLanes needs AVX-512 kernels, a 3x3 stride-2 pad-1 shape of even size and its scratch, got \(shape) with \(scratchCount) floats")
        let layout = StridedLanesLayout(shape)
        let packed = scratch + cacheLineSkip(scratch)
        packLaneWeights(packed, weights, inChannels: shape.inChannels, outChannels: shape.outChannels, taps: 9,
                        paddedOut: layout.paddedOut)
        let threads = min(context.threads, shape.batch)
        context.pool.run(tasks: threads, threads: threads,
                         StridedLanesImages(out: out, input: input, packed: UnsafePointer(packed), shape: shape, layout: layout,
                                            regions: packed + layout.weightFloats, forward: true, accumulate: false,
                                            threads: threads))
    }

    /// dInput += conv^T(dOut, weights) for `stridedLanesShape` (the forward shape), through the
    /// four input phases (dInput = that with `accumulate` false). Needs what
    /// `forwardStridedLanes` needs.
    public static func backwardDataStridedLanes(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext,
        accumulate: Bool = true
    ) {
        precondition(context.wideKernels && stridedLanesShape(shape)
                     && scratchCount >= stridedLanesScratchFloats(shape, threads: context.threads),
                     "Conv2D: backwardDataStridedLanes needs AVX-512 kernels, a 3x3 stride-2 pad-1 shape of even size and its scratch, got \(shape) with \(scratchCount) floats")
        let layout = StridedLanesLayout(shape)
        let packed = scratch + cacheLineSkip(scratch)
        let cin = shape.inChannels, cout = shape.outChannels
        // Per phase (a, b), taps t in order: W'[phaseStart + (co * T + t) * paddedIn + ci] = W[co, ci, ky, kx]
        var phaseStart = 0
        for a in 0..<2 {
            for b in 0..<2 {
                let taps = phaseTapCount(a) * phaseTapCount(b)
                for co in 0..<cout {
                    var t = 0
                    for row in 0..<phaseTapCount(a) {
                        for column in 0..<phaseTapCount(b) {
                            let target = packed + phaseStart + (co * taps + t) * layout.paddedIn
                            let tap = phaseTapKernel(a, row) * 3 + phaseTapKernel(b, column)
                            for ci in 0..<cin { target[ci] = weights[(co * cin + ci) * 9 + tap] }
                            for ci in cin..<layout.paddedIn { target[ci] = 0 }
                            t += 1
                        }
                    }
                }
                phaseStart += cout * taps * layout.paddedIn
            }
        }
        let threads = min(context.threads, shape.batch)
        context.pool.run(tasks: threads, threads: threads,
                         StridedLanesImages(out: dInput, input: dOut, packed: UnsafePointer(packed), shape: shape, layout: layout,
                                            regions: packed + layout.weightFloats, forward: false, accumulate: accumulate,
                                            threads: threads))
    }

    /// The images [batch * task / threads, batch * (task + 1) / threads) of either pass, in the
    /// task's own region of the scratch.
    struct StridedLanesImages: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, packed: UnsafePointer<Float>
        let shape: Conv2DShape, layout: StridedLanesLayout
        let regions: UnsafeMutablePointer<Float>
        /// The data gradient adds into dInput (`accumulate`) or writes it.
        let forward: Bool, accumulate: Bool, threads: Int

        func run(task: Int) {
            #if arch(x86_64)
            let region = regions + task * layout.threadFloats
            for n in (shape.batch * task / threads)..<(shape.batch * (task + 1) / threads) {
                if forward { forwardImage(n, region) } else if accumulate { backwardImage(n, region, accumulate: true) }
                else { backwardImage(n, region, accumulate: false) }
            }
            #else
            preconditionFailure("Conv2D: the stride-2 lane paths run only with the AVX-512 kernels")
            #endif
        }

        #if arch(x86_64)
        func forwardImage(_ n: Int, _ region: UnsafeMutablePointer<Float>) {
            let cin = shape.inChannels, cout = shape.outChannels
            let sequence = layout.sequence, phaseFloats = layout.phaseFloats
            let staging = region + 4 * cin * phaseFloats
            let height = shape.inHeight, width = shape.inWidth
            for ci in 0..<cin {
                padPhases(region + 4 * ci * phaseFloats, phaseFloats: phaseFloats,
                          input + (ci * shape.batch + n) * height * width, height: height, width: width)
            }
            // (the tile's taps are `directTapOffsets`' for stride 2)
            forEachLaneTile(sequence: sequence, paddedChannels: layout.paddedOut) { start, co0 in
                wideConvLanesPhaseTile(input: region + start, channelFloats: 4 * phaseFloats, phaseFloats: phaseFloats,
                                       rowStride: layout.rowStride, channels: cin, weights: packed + co0,
                                       wStride: layout.paddedOut, out: staging + co0 * sequence + start, outStride: sequence)
            }
            let outHeight = shape.outHeight, outWidth = shape.outWidth
            let plane = outHeight * outWidth, outPlane = shape.batch * plane
            for co in 0..<cout {
                for oh in 0..<outHeight {
                    copyFloats(out + co * outPlane + n * plane + oh * outWidth, staging + co * sequence + oh * layout.rowStride, outWidth)
                }
            }
        }

        /// The four phase planes of one input image (H x W, even sizes) in `padInputPhase`'s
        /// layout for one image (the same floats): phase (a, b) at target + (2a + b) * phaseFloats,
        /// a zero row, then per row i (0, pixels (2i + a, 2j + b)), then zeros to phaseFloats.
        /// One pass over the image, 16 pixels at a time split into even and odd columns.
        @inline(__always)
        func padPhases(_ target: UnsafeMutablePointer<Float>, phaseFloats: Int, _ image: UnsafePointer<Float>,
                       height: Int, width: Int) {
            let rowStride = width / 2 + 1, rows = height / 2
            for phase in 0..<4 {
                let plane = target + phase * phaseFloats
                plane.initialize(repeating: 0, count: rowStride + 1)
                for i in 1..<rows { plane[(i + 1) * rowStride] = 0 }
                let used = (rows + 1) * rowStride
                (plane + used).initialize(repeating: 0, count: phaseFloats - used)
            }
            for y in 0..<height {
                let row = image + y * width
                let at = (y / 2 + 1) * rowStride + 1
                let even = target + (2 * (y % 2)) * phaseFloats + at, odd = even + phaseFloats
                var x = 0
                while x + 16 <= width {
                    let pixels = UnsafeRawPointer(row + x).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(even + x / 2).storeBytes(of: pixels.evenHalf, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(odd + x / 2).storeBytes(of: pixels.oddHalf, as: SIMD8<Float>.self)
                    x += 16
                }
                while x < width {
                    even[x / 2] = row[x]
                    odd[x / 2] = row[x + 1]
                    x += 2
                }
            }
        }

        @inline(__always)
        func backwardImage(_ n: Int, _ region: UnsafeMutablePointer<Float>, accumulate: Bool) {
            let cin = shape.inChannels, cout = shape.outChannels
            let outHeight = shape.outHeight, outWidth = shape.outWidth, rowStride = layout.rowStride
            let sequence = layout.sequence, dOutFloats = layout.dOutFloats
            let outPlane = outHeight * outWidth
            let staging = region + cout * dOutFloats
            // dOut[co] of image n: rows of (pixels, 0), a zero row after, then zeros
            for co in 0..<cout {
                padImages(target: region + co * dOutFloats, source: input + (co * shape.batch + n) * outPlane, images: 1,
                          rows: outHeight, columns: outWidth, rowStep: outWidth, columnStep: 1, imageStep: outPlane,
                          bordered: false, total: dOutFloats)
            }
            var offsets: (Int, Int, Int, Int) = (0, 0, 0, 0)
            var phaseStart = 0
            for phase in 0..<4 {
                let a = phase / 2, b = phase % 2
                let taps = phaseTapCount(a) * phaseTapCount(b)
                withUnsafeMutablePointer(to: &offsets) { tuple in
                    tuple.withMemoryRebound(to: Int.self, capacity: 4) { offsets in
                        var t = 0
                        for row in 0..<phaseTapCount(a) {
                            for column in 0..<phaseTapCount(b) {
                                offsets[t] = phaseTapShift(a, row) * rowStride + phaseTapShift(b, column)
                                t += 1
                            }
                        }
                        let target = staging + phase * layout.paddedIn * sequence
                        forEachLaneTile(sequence: sequence, paddedChannels: layout.paddedIn) { start, ci0 in
                            wideConvLanesTapsTile(input: region + start, channelFloats: dOutFloats, offsets: offsets, taps: taps,
                                                  channels: cout, weights: packed + phaseStart + ci0, wStride: layout.paddedIn,
                                                  out: target + ci0 * sequence + start, outStride: sequence)
                        }
                    }
                }
                phaseStart += cout * taps * layout.paddedIn
            }
            // Interleave the phases into dInput: pixel (2i + a, 2j + b) += phase (a, b) at (i, j)
            // (= with `accumulate` false: the four phases cover every pixel of the even-sized image)
            let height = shape.inHeight, width = shape.inWidth
            let phaseStride = layout.paddedIn * sequence
            for ci in 0..<cin {
                let image = out + (ci * shape.batch + n) * height * width
                for i in 0..<outHeight {
                    for a in 0..<2 {
                        let row = image + (2 * i + a) * width
                        let even = staging + (2 * a) * phaseStride + ci * sequence + i * rowStride
                        let odd = even + phaseStride
                        if accumulate {
                            for j in 0..<outWidth {
                                row[2 * j] += even[j]
                                row[2 * j + 1] += odd[j]
                            }
                        } else {
                            for j in 0..<outWidth {
                                row[2 * j] = even[j]
                                row[2 * j + 1] = odd[j]
                            }
                        }
                    }
                }
            }
        }
        #endif
    }
}
