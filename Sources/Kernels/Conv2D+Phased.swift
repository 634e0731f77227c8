import Platform
import KernelsAVX512

// MARK: - Stride-2 forward through padded phase planes

/// The forward pass of a 3x3 stride-2 pad-1 convolution (even H and W) without an im2col matrix.
/// Each input channel is split into its four phase planes in the padded layout of the direct
/// weight gradient (`Conv2D+DirectWeights.swift`), where tap (ky, kx) of every output position
/// q is the input value at q + offset(tap): the GEMM's B micro-panel row for (ci, tap) is then
/// 16 contiguous floats, copied without masks. The GEMM runs over all padded output positions
/// of a block of images (the ones in the zero column and row are computed and dropped) into a
/// padded output, which is copied into the CNHW output at the end.
/// The packed values, K blocks and micro-kernel are the column path's, so the output is bit for
/// bit `forwardColumns`'.
extension Conv2D {
    /// The shapes `forward` runs this way: 3x3 stride-2 pad-1 with even H and W, and at most
    /// `GEMM.blockM` output channels (all rows of A in one packed block).
    public static func usesPhasedForward(_ shape: Conv2DShape) -> Bool {
        directPhases(shape) == 4 && shape.outChannels <= GEMM.blockM
    }

    /// Images per block of `forwardPhased` with `scratchCount` floats of scratch (0: none fits):
    /// the input phase planes and the padded output (rounded up to 16 columns).
    public static func phasedBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        guard usesPhasedForward(shape) else { return 0 }
        let inputSequences = 4 * shape.inChannels
        return directBlockImages(shape, sequences: inputSequences + shape.outChannels,
                                 slack: inputSequences * directSlack(shape) + 16 * shape.outChannels,
                                 scratchCount: scratchCount)
    }

    /// out = conv(input, weights) for `usesPhasedForward` shapes, when
    /// `phasedBlockImages(shape, scratchCount:) > 0`.
    public static func forwardPhased(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        let blockImages = phasedBlockImages(shape, scratchCount: scratchCount)
        precondition(blockImages > 0, "Conv2D: forwardPhased needs a 3x3 stride-2 pad-1 shape with even sizes and scratch for one image, got \(shape) with \(scratchCount) floats")
        let nr = GEMM.microColumns
        let cin = shape.inChannels, cout = shape.outChannels
        let k = shape.patchSize
        let outHeight = shape.outHeight, outWidth = shape.outWidth
        let rowStride = outWidth + 1
        let imageFloats = directImageFloats(shape)
        let outPlane = shape.batch * outHeight * outWidth
        var n0 = 0
        while n0 < shape.batch {
            let images = min(blockImages, shape.batch - n0)
            let sequenceFloats = images * imageFloats + directSlack(shape)
            let channelFloats = 4 * sequenceFloats
            let count = (images * imageFloats + nr - 1) / nr * nr
            let paddedInput = scratch
            let paddedOut = scratch + cin * channelFloats
            let offsetTuple = directTapOffsets(shape, sequenceFloats: sequenceFloats)
            var offsets = InlineArray<9, Int>(repeating: 0)
            (offsets[0], offsets[1], offsets[2], offsets[3], offsets[4], offsets[5], offsets[6], offsets[7], offsets[8]) = offsetTuple
            // Phase planes, sequences split over the threads.
            let sequences = 4 * cin
            let copyThreads = min(context.threads, sequences)
            context.pool.run(tasks: copyThreads, threads: copyThreads,
                             PhasedCopy(scratch: scratch, input: input, shape: shape, sequences: sequences, copyThreads: copyThreads,
                                        sequenceFloats: sequenceFloats, n0: n0, images: images))
            // The GEMM over the padded positions.
            GEMM.panelGEMM(m: cout, columns: count, k: k, a: weights, c: paddedOut, accumulate: false, context: context,
                           packer: ShiftPanelPacker(planes: UnsafePointer(paddedInput), channelFloats: channelFloats,
                                                    taps: 9, offsets: offsets))
            // The valid positions into the CNHW output, output channels split over the threads.
            let unpadThreads = min(context.threads, cout)
            context.pool.run(tasks: unpadThreads, threads: unpadThreads,
                             PhasedUnpad(out: out, paddedOut: paddedOut, cout: cout, unpadThreads: unpadThreads, images: images,
                                         outHeight: outHeight, outWidth: outWidth, rowStride: rowStride, count: count,
                                         outPlane: outPlane, n0: n0))
            n0 += images
        }
    }

    /// `forwardPhased`'s phase planes for task `task` of `copyThreads`: a contiguous range of sequences.
    struct PhasedCopy: ParallelTask {
        let scratch: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let shape: Conv2DShape
        let sequences: Int, copyThreads: Int, sequenceFloats: Int, n0: Int, images: Int

        func run(task: Int) {
            for sequence in (sequences * task / copyThreads)..<(sequences * (task + 1) / copyThreads) {
                padInputPhase(target: scratch + sequence * sequenceFloats, input: input, shape: shape, sequence: sequence,
                              firstImage: n0, images: images, total: sequenceFloats)
            }
        }
    }

    /// `forwardPhased`'s valid positions for task `task` of `unpadThreads`: a contiguous range of
    /// output channels.
    struct PhasedUnpad: ParallelTask {
        let out: UnsafeMutablePointer<Float>, paddedOut: UnsafeMutablePointer<Float>
        let cout: Int, unpadThreads: Int, images: Int
        let outHeight: Int, outWidth: Int, rowStride: Int, count: Int, outPlane: Int, n0: Int

        func run(task: Int) {
            for co in (cout * task / unpadThreads)..<(cout * (task + 1) / unpadThreads) {
                for image in 0..<images {
                    for oh in 0..<outHeight {
                        let source = paddedOut + co * count + (image * (outHeight + 1) + oh) * rowStride
                        let target = out + co * outPlane + ((n0 + image) * outHeight + oh) * outWidth
                        target.update(from: source, count: outWidth)
                    }
                }
            }
        }
    }
}
