import Platform

// MARK: - Stride-2 data gradient through the input's phase planes

/// The data gradient of a 3x3 stride-2 pad-1 convolution (even H and W) without col2im.
/// Input pixel (2i + a, 2j + b) lies in phase plane (a, b) at (i, j), and only some taps reach
/// it: row ky = 1 from output row i when a = 0; ky = 0 from output row i + 1 and ky = 2 from
/// row i when a = 1 (columns alike). So each phase plane is a small stride-1 convolution of dOut
/// (1, 2, 2 and 4 taps for phases (0,0), (0,1), (1,0), (1,1): nine in all, the forward's FLOPs):
///     plane_ab[ci, q] = sum over co and the phase's taps t of W[co, ci, ky_t, kx_t] * dOut[co, q + shift_t].
/// dOut is copied into the padded layout of the direct weight gradient (`Conv2D+DirectWeights.swift`:
/// rows of OW + 1 floats, a zero column and a zero row per image), where every shift (0 or 1 rows,
/// 0 or 1 columns) is a fixed offset and reads past the image's last row or column read zeros.
/// Each phase is then one GEMM, M = Cin, K = Cout x its taps, over all padded positions of a
/// block of images, its B micro-panels 16 contiguous floats per (co, tap) row; a last pass adds
/// the four planes' valid positions, interleaved, into dInput. Against the column path (GEMM
/// into dCol, then col2im's strided scatter of nine taps) this writes no dCol at all.
/// Sums run in a different order than the column path's, so the two agree to rounding, not bit
/// for bit; both are checked against the naive twin.
extension Conv2D {
    /// The shapes `backwardData` runs this way (AVX2, AVX-512 and NEON kernels alike):
    /// 3x3 stride-2 pad-1 with even H and W, more than one input channel, and at most
    /// `GEMM.blockM` input channels (all rows of A in one block).
    public static func usesPhasedBackwardData(_ shape: Conv2DShape) -> Bool {
        directPhases(shape) == 4 && shape.inChannels > 1 && shape.inChannels <= GEMM.blockM
    }

    /// Floats the four phases' rearranged weights take at the start of the scratch (a multiple
    /// of 16, so what follows stays 64-byte aligned).
    static func phasedWeightFloats(_ shape: Conv2DShape) -> Int { (9 * shape.inChannels * shape.outChannels + 15) / 16 * 16 }

    /// Images per block of `backwardDataPhased` with `scratchCount` floats of scratch (0: the
    /// shape does not run this way, or not even one image fits): the padded dOut and the four
    /// phase planes, after the rearranged weights.
    public static func phasedBackwardBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        guard usesPhasedBackwardData(shape) else { return 0 }
        let cin = shape.inChannels, cout = shape.outChannels
        return directBlockImages(shape, sequences: cout + 4 * cin,
                                 slack: cout * directSlack(shape) + 4 * cin * 16,
                                 scratchCount: scratchCount - phasedWeightFloats(shape))
    }

    /// The taps of phase `phase` (a = phase / 2, b = phase % 2): (ky, kx) and the offset of the
    /// dOut value they read in the padded layout with rows of `rowStride` floats.
    @inline(__always)
    static func phaseTaps(_ phase: Int, rowStride: Int) -> (count: Int, ky: InlineArray<4, Int>, kx: InlineArray<4, Int>,
                                                           offsets: InlineArray<9, Int>) {
        // (kernel index, shift) for the rows (a) and the columns (b) of the phase.
        let a = phase / 2, b = phase % 2
        var ky = InlineArray<4, Int>(repeating: 0), kx = InlineArray<4, Int>(repeating: 0)
        var offsets = InlineArray<9, Int>(repeating: 0)   // the first `count` used (ShiftPanelPacker's size)
        var count = 0
        for r in 0..<(a == 0 ? 1 : 2) {
            let kernelRow = a == 0 ? 1 : (r == 0 ? 0 : 2), rowShift = a == 1 && r == 0 ? 1 : 0
            for c in 0..<(b == 0 ? 1 : 2) {
                let kernelColumn = b == 0 ? 1 : (c == 0 ? 0 : 2), columnShift = b == 1 && c == 0 ? 1 : 0
                ky[count] = kernelRow
                kx[count] = kernelColumn
                offsets[count] = rowShift * rowStride + columnShift
                count += 1
            }
        }
        return (count, ky, kx, offsets)
    }

    /// dInput += the data gradient for `usesPhasedBackwardData` shapes, when
    /// `phasedBackwardBlockImages(shape, scratchCount:) > 0`.
    /// - Shapes: dInput [Cin, N, H, W], dOut [Cout, N, OH, OW], weights [Cout, Cin, 3, 3].
    public static func backwardDataPhased(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        let blockImages = phasedBackwardBlockImages(shape, scratchCount: scratchCount)
        precondition(blockImages > 0, "Conv2D: backwardDataPhased needs a 3x3 stride-2 pad-1 shape with even sizes and scratch for one image, got \(shape) with \(scratchCount) floats")
        let nr = GEMM.microColumns
        let cin = shape.inChannels, cout = shape.outChannels
        let outHeight = shape.outHeight, outWidth = shape.outWidth
        let rowStride = outWidth + 1
        let imageFloats = directImageFloats(shape)
        let outPlane = shape.batch * outHeight * outWidth
        // A of phase p: [cin, cout x taps], A[ci, co * taps + t] = W[co, ci, ky_t, kx_t]; the four
        // one after another (9 x cin x cout floats in all). Cheap next to the GEMMs.
        let phaseWeights = scratch
        var weightStart = InlineArray<4, Int>(repeating: 0)
        var start = 0
        for phase in 0..<4 {
            weightStart[phase] = start
            let taps = phaseTaps(phase, rowStride: rowStride)
            let k = cout * taps.count
            for ci in 0..<cin {
                for co in 0..<cout {
                    for t in 0..<taps.count {
                        phaseWeights[start + ci * k + co * taps.count + t] = weights[(co * cin + ci) * 9 + taps.ky[t] * 3 + taps.kx[t]]
                    }
                }
            }
            start += cin * k
        }
        let paddedDOut = scratch + phasedWeightFloats(shape)
        var n0 = 0
        while n0 < shape.batch {
            let images = min(blockImages, shape.batch - n0)
            let sequenceFloats = images * imageFloats + directSlack(shape)
            let count = (images * imageFloats + nr - 1) / nr * nr
            let planes = paddedDOut + cout * sequenceFloats
            // dOut in the padded layout, channels split over the threads.
            let copyThreads = min(context.threads, cout)
            context.pool.run(tasks: copyThreads, threads: copyThreads,
                             PhasedDOutCopy(target: paddedDOut, dOut: dOut, cout: cout, copyThreads: copyThreads,
                                            sequenceFloats: sequenceFloats, n0: n0, images: images, outPlane: outPlane,
                                            outHeight: outHeight, outWidth: outWidth))
            // One GEMM per phase over the padded positions.
            for phase in 0..<4 {
                let taps = phaseTaps(phase, rowStride: rowStride)
                GEMM.panelGEMM(m: cin, columns: count, k: cout * taps.count, a: UnsafePointer(phaseWeights + weightStart[phase]),
                               c: planes + phase * cin * count, accumulate: false, context: context,
                               packer: ShiftPanelPacker(planes: UnsafePointer(paddedDOut), channelFloats: sequenceFloats,
                                                        taps: taps.count, offsets: taps.offsets))
            }
            // The valid positions, interleaved, into dInput; input channels split over the threads.
            let addThreads = min(context.threads, cin)
            context.pool.run(tasks: addThreads, threads: addThreads,
                             PhasedInterleave(dInput: dInput, planes: UnsafePointer(planes), cin: cin, addThreads: addThreads,
                                              images: images, n0: n0, outHeight: outHeight, outWidth: outWidth,
                                              rowStride: rowStride, count: count, batch: shape.batch))
            n0 += images
        }
    }

    /// `backwardDataPhased`'s padded dOut for task `task` of `copyThreads`: a range of channels.
    struct PhasedDOutCopy: ParallelTask {
        let target: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>
        let cout: Int, copyThreads: Int, sequenceFloats: Int, n0: Int, images: Int
        let outPlane: Int, outHeight: Int, outWidth: Int

        func run(task: Int) {
            for c in (cout * task / copyThreads)..<(cout * (task + 1) / copyThreads) {
                padImages(target: target + c * sequenceFloats, source: dOut + c * outPlane + n0 * outHeight * outWidth,
                          images: images, rows: outHeight, columns: outWidth, rowStep: outWidth, columnStep: 1,
                          imageStep: outHeight * outWidth, bordered: false, total: sequenceFloats)
            }
        }
    }

    /// `backwardDataPhased`'s last pass for task `task` of `addThreads`: for a range of input
    /// channels, dInput[ci, n, 2i + a, 2j + b] += plane_ab[ci, (n, i, j)].
    struct PhasedInterleave: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, planes: UnsafePointer<Float>
        let cin: Int, addThreads: Int, images: Int, n0: Int
        let outHeight: Int, outWidth: Int, rowStride: Int, count: Int, batch: Int

        func run(task: Int) {
            let width = 2 * outWidth, imageSize = 4 * outHeight * outWidth
            for ci in (cin * task / addThreads)..<(cin * (task + 1) / addThreads) {
                for image in 0..<images {
                    let target = dInput + (ci * batch + n0 + image) * imageSize
                    for i in 0..<outHeight {
                        let position = ci * count + (image * (outHeight + 1) + i) * rowStride
                        for a in 0..<2 {
                            let even = planes + (2 * a) * cin * count + position
                            let odd = planes + (2 * a + 1) * cin * count + position
                            let row = target + (2 * i + a) * width
                            for j in 0..<outWidth {
                                row[2 * j] += even[j]
                                row[2 * j + 1] += odd[j]
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs B micro-panels from padded sequences where row (channel, t) of K is the NR floats at
/// the channel's sequence + offsets[t] + the panel's first column (`taps` shifts per channel,
/// every one a fixed offset: no masks). The stride-2 forward's nine taps over the phase planes
/// (`forwardPhased`) and the data gradient's 1-4 taps per phase over the padded dOut.
struct ShiftPanelPacker: BPanelPacker {
    let planes: UnsafePointer<Float>
    let channelFloats: Int
    let taps: Int
    let offsets: InlineArray<9, Int>

    mutating func start(atPanel panel: Int) {}

    mutating func pack(p0: Int, kc: Int, panel: Int, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        let nr = GEMM.microColumns, width = FloatVector.scalarCount
        var channel = p0 / taps, tap = p0 % taps
        var row = dst
        for _ in 0..<kc {
            let source = planes + channel * channelFloats + offsets[tap] + panel * nr
            var v = 0
            while v < nr { row.storeVector(source.loadVector(at: v), at: v); v += width }
            row += nr
            tap += 1
            if tap == taps { tap = 0; channel += 1 }
        }
    }
}
