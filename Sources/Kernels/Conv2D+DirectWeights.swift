import Platform
import KernelsAVX512

// MARK: - Direct weight gradient for 3x3 pad-1 convolutions, stride 1 or 2

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
/// Stride 2 (even H and W): input pixel (2i + a, 2j + b) lies in phase plane (a, b) at (i, j),
/// so the four phase planes of each input channel are copied into the same padded layout on the
/// output grid (OH x OW = H/2 x W/2), and tap (ky, kx) reads phase (ky != 1, kx != 1) shifted
/// by (ky != 0, kx != 0) rows and columns: nine fixed offsets again.
extension Conv2D {
    /// Input phase planes per channel of a direct-gradient shape: 1 (stride 1) or 4 (stride 2),
    /// or 0 when the shape has no direct path (not 3x3 pad 1; stride 2 with an odd size).
    static func directPhases(_ shape: Conv2DShape) -> Int {
        guard shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.padH == 1 && shape.padW == 1
                && shape.strideH == shape.strideW else { return 0 }
        if shape.strideH == 1 { return 1 }
        if shape.strideH == 2 && shape.inHeight % 2 == 0 && shape.inWidth % 2 == 0 { return 4 }
        return 0
    }

    /// Floats past a padded sequence: the input's leading zero row, the reads of the last
    /// vector's shifted taps (two rows and two floats) and the round-up to 16 floats.
    static func directSlack(_ shape: Conv2DShape) -> Int { 3 * (shape.outWidth + 1) + 2 + 32 }

    /// Floats of one padded image on the output grid: (OH + 1) x (OW + 1).
    static func directImageFloats(_ shape: Conv2DShape) -> Int { (shape.outHeight + 1) * (shape.outWidth + 1) }

    /// Upper bound on one block's padded copies (1 MiB, as the im2col chunk: the tiles stream
    /// four channels of it at a time; fewer blocks mean fewer horizontal sums).
    static let directBlockLimitFloats = 1 << 18

    /// Images per block for `backwardWeightsDirect` with `scratchCount` floats of scratch, or 0
    /// when the shape has no direct path (`directPhases`) or not even one image fits.
    public static func directWeightBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        let phases = directPhases(shape)
        guard phases > 0 else { return 0 }
        let sequences = shape.inChannels * phases + shape.outChannels
        return directBlockImages(shape, sequences: sequences, slack: sequences * directSlack(shape), scratchCount: scratchCount)
    }

    /// Images per block when each image takes `sequences` padded images of `imageFloats`
    /// (default `directImageFloats(shape)`) and the block `slack` floats more, in at most
    /// min(scratchCount, directBlockLimitFloats) floats; 0 when not even one image fits.
    static func directBlockImages(_ shape: Conv2DShape, sequences: Int, slack: Int, scratchCount: Int,
                                  imageFloats: Int? = nil) -> Int {
        let perImage = sequences * (imageFloats ?? directImageFloats(shape))
        let budget = min(scratchCount, directBlockLimitFloats) - slack
        return budget < perImage ? 0 : min(shape.batch, budget / perImage)
    }

    /// The padded layout of one block of `backwardWeightsDirect`.
    /// - plain: rows of OW + 1 floats; one sequence per input phase plane; tap offsets as in
    ///   `directTapOffsets`.
    /// - lane-aligned (the AVX-512 tile): rows of OW + 1 rounded up to 16 floats (the extra
    ///   columns are zeros in dOut and input, so they add exact zeros), and each input phase
    ///   plane also copied shifted left by 1 (and 2 at stride 1) floats. Every tap then reads a
    ///   plane at a multiple of 16 floats from q: no 64-byte load spans two cache lines. With the
    ///   shifted taps of the plain layout each such load did, and the tile's loop ran 1.77-1.84x
    ///   slower than with aligned taps (`tools/split-loads.c`, 2026-12-07, Xeon); 32-byte AVX2
    ///   loads lose 1.11-1.14x, so the AVX2 and NEON tiles keep the plain layout.
    struct DirectLayout {
        let rowStride: Int, shifts: Int, imageFloats: Int, slack: Int, aligned: Bool

        init(_ shape: Conv2DShape, aligned: Bool) {
            self.aligned = aligned
            if aligned {
                rowStride = (shape.outWidth + 1 + 15) / 16 * 16
                shifts = shape.strideH == 1 ? 3 : 2
                // three rows (the input's leading zero row, two rows of tap shifts), one vector
                // read past the end, and the round-up of the sequence to 16 floats
                slack = 3 * rowStride + 32 + 15
            } else {
                rowStride = shape.outWidth + 1
                shifts = 1
                slack = directSlack(shape)
            }
            imageFloats = (shape.outHeight + 1) * rowStride
        }

        /// Floats of one sequence of a block of `images` images (aligned: rounded down to 16,
        /// which the slack's last 15 floats allow).
        func sequenceFloats(images: Int) -> Int {
            aligned ? (images * imageFloats + slack) / 16 * 16 : images * imageFloats + slack
        }
    }

    /// Images per block of the lane-aligned layout (`DirectLayout`), or 0 where it is not taken.
    /// Measured against the plain layout with the AVX-512 tile (`leitner bench conv`, 3
    /// alternating runs, 64-byte aligned scratch, 2026-12-07, Xeon): 0.83x the time at 16-16
    /// @28, 0.87x at 16-32 stride 2, 0.93-0.94x with one input channel; 1.05x at 32-32 @14 (three
    /// copies of 32 channels leave half the images per 1 MiB block, so twice the lane sums),
    /// 1.48x and 1.73x at 7-wide outputs (rows of 16 floats for 8). So: up to 16 input channels,
    /// and rows padded by at most a quarter.
    public static func directAlignedBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        let phases = directPhases(shape)
        let layout = DirectLayout(shape, aligned: true)
        guard phases > 0, shape.inChannels <= 16, 4 * layout.rowStride <= 5 * (shape.outWidth + 1) else { return 0 }
        let sequences = shape.inChannels * phases * layout.shifts + shape.outChannels
        return directBlockImages(shape, sequences: sequences, slack: sequences * layout.slack, scratchCount: scratchCount,
                                 imageFloats: layout.imageFloats)
    }

    /// dWeights += the weight gradient, directly from the images (see above). Needs
    /// `directWeightBlockImages(shape, scratchCount:) > 0`.
    /// - Shapes: dWeights [Cout, Cin, 3, 3], dOut [Cout, N, OH, OW], input [Cin, N, H, W].
    public static func backwardWeightsDirect(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        let plainImages = directWeightBlockImages(shape, scratchCount: scratchCount)
        precondition(plainImages > 0, "Conv2D: backwardWeightsDirect needs a 3x3 pad-1 shape (stride 1, or 2 with even sizes) and scratch for one padded image, got \(shape) with \(scratchCount) floats")
        // The lane-aligned layout starts at the scratch's first 64-byte boundary (the arena's
        // scratch is on one; up to 15 floats are skipped otherwise).
        let skip = cacheLineSkip(scratch)
        #if arch(x86_64)
        let alignedImages = context.wideKernels ? directAlignedBlockImages(shape, scratchCount: scratchCount - skip) : 0
        #else
        let alignedImages = 0
        #endif
        let layout = DirectLayout(shape, aligned: alignedImages > 0)
        let blockImages = alignedImages > 0 ? alignedImages : plainImages
        let scratch = alignedImages > 0 ? scratch + skip : scratch
        let phases = directPhases(shape)
        let outHeight = shape.outHeight, outWidth = shape.outWidth
        let imageFloats = layout.imageFloats
        let cin = shape.inChannels, cout = shape.outChannels
        let outPlane = shape.batch * outHeight * outWidth
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
            let sequenceFloats = layout.sequenceFloats(images: images)
            let channelFloats = phases * layout.shifts * sequenceFloats
            let offsets = directTapOffsets(shape, sequenceFloats: sequenceFloats, layout: layout)
            let paddedInput = scratch
            let paddedDOut = scratch + cin * channelFloats
            // Padded copies (units: each input channel's phases, with their shifted copies, then
            // each dOut channel), split over the threads.
            let units = cin * phases + cout
            let copyThreads = min(context.threads, units)
            context.pool.run(tasks: copyThreads, threads: copyThreads,
                             DirectWeightsCopy(scratch: scratch, input: input, dOut: dOut, shape: shape, units: units,
                                               copyThreads: copyThreads, sequenceFloats: sequenceFloats, cin: cin, phases: phases,
                                               n0: n0, images: images, outPlane: outPlane, outHeight: outHeight, outWidth: outWidth,
                                               rowStride: layout.rowStride, shifts: layout.shifts))
            // Tiles: (output-channel pair, input channel), split over the threads.
            let tiles = pairs * cin
            let tileThreads = min(context.threads, tiles)
            context.pool.run(tasks: tileThreads, threads: tileThreads,
                             DirectWeightsTiles(dWeights: dWeights, paddedDOut: paddedDOut, paddedInput: paddedInput, context: context,
                                                offsets: offsets, tiles: tiles, tileThreads: tileThreads, cin: cin, cout: cout, rows: rows,
                                                sequenceFloats: sequenceFloats, channelFloats: channelFloats, count: count))
            n0 += images
        }
    }

    /// `backwardWeightsDirect`'s padded copies for task `task` of `copyThreads`: a contiguous range
    /// of units (an input phase plane with its `shifts` - 1 shifted copies, or a dOut channel).
    struct DirectWeightsCopy: ParallelTask {
        let scratch: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, dOut: UnsafePointer<Float>
        let shape: Conv2DShape
        let units: Int, copyThreads: Int, sequenceFloats: Int, cin: Int, phases: Int, n0: Int, images: Int
        let outPlane: Int, outHeight: Int, outWidth: Int, rowStride: Int, shifts: Int

        func run(task: Int) {
            for unit in (units * task / copyThreads)..<(units * (task + 1) / copyThreads) {
                if unit < cin * phases {
                    let target = scratch + unit * shifts * sequenceFloats
                    padInputPhase(target: target, input: input, shape: shape, sequence: unit, firstImage: n0,
                                  images: images, total: sequenceFloats, rowStride: rowStride)
                    // copy s holds the plane shifted left by s floats (zeros after its end)
                    for shift in 1..<shifts {
                        let copy = target + shift * sequenceFloats
                        copy.update(from: target + shift, count: sequenceFloats - shift)
                        for i in (sequenceFloats - shift)..<sequenceFloats { copy[i] = 0 }
                    }
                } else {
                    let c = unit - cin * phases
                    let target = scratch + cin * phases * shifts * sequenceFloats + c * sequenceFloats
                    let source = dOut + c * outPlane + n0 * outHeight * outWidth
                    padImages(target: target, source: source, images: images, rows: outHeight, columns: outWidth,
                              rowStep: outWidth, columnStep: 1, imageStep: outHeight * outWidth,
                              bordered: false, total: sequenceFloats, rowStride: rowStride)
                }
            }
        }
    }

    /// `backwardWeightsDirect`'s tiles for task `task` of `tileThreads`: a contiguous range of
    /// (output-channel pair, input channel) tiles.
    struct DirectWeightsTiles: ParallelTask {
        let dWeights: UnsafeMutablePointer<Float>, paddedDOut: UnsafeMutablePointer<Float>, paddedInput: UnsafeMutablePointer<Float>
        // Not retained: the caller holds the context for the run, and a retain and release per
        // task from every thread would contend on one reference count.
        unowned(unsafe) let context: KernelContext
        let offsets: TapOffsets
        let tiles: Int, tileThreads: Int, cin: Int, cout: Int, rows: Int
        let sequenceFloats: Int, channelFloats: Int, count: Int

        func run(task: Int) {
            for tile in (tiles * task / tileThreads)..<(tiles * (task + 1) / tileThreads) {
                let pair = tile / cin, ci = tile % cin
                let co = pair * rows
                let dOutRows = UnsafePointer(paddedDOut + co * sequenceFloats)
                let source = UnsafePointer(paddedInput + ci * channelFloats)
                let sums = dWeights + (co * cin + ci) * 9
                let rowsHere = min(rows, cout - co)
                #if arch(x86_64)
                if context.wideKernels {
                    wideCorrelateTile(rows: rowsHere, dOut: dOutRows, dOutStride: sequenceFloats, input: source,
                                      offsets: offsets, count: count, sums: sums, sumStride: cin * 9)
                    continue
                }
                #endif
                if rowsHere == 2 {
                    correlateTile(FloatVector.self, rows: 2, dOut: dOutRows, dOutStride: sequenceFloats, input: source,
                                  offsets: offsets, count: count, sums: sums, sumStride: cin * 9)
                } else {
                    correlateTile(FloatVector.self, rows: 1, dOut: dOutRows, dOutStride: sequenceFloats, input: source,
                                  offsets: offsets, count: count, sums: sums, sumStride: cin * 9)
                }
            }
        }
    }

    /// The input offsets of the nine taps from output position q in the padded layout, for
    /// sequences of `sequenceFloats` (stride 2: phase (ky != 1, kx != 1) shifted by (ky != 0,
    /// kx != 0) rows and columns; stride 1: shifted by (ky, kx)).
    /// With a lane-aligned `layout` the column shift is the shifted copy's instead (sequence
    /// phase * shifts + shift), so every offset is a multiple of 16.
    static func directTapOffsets(_ shape: Conv2DShape, sequenceFloats: Int, layout: DirectLayout? = nil) -> TapOffsets {
        let layout = layout ?? DirectLayout(shape, aligned: false)
        func offset(_ ky: Int, _ kx: Int) -> Int {
            let phase = shape.strideH == 1 ? 0 : (ky == 1 ? 0 : 2) + (kx == 1 ? 0 : 1)
            let rowShift = shape.strideH == 1 ? ky : (ky == 0 ? 0 : 1)
            let columnShift = shape.strideH == 1 ? kx : (kx == 0 ? 0 : 1)
            if layout.aligned { return (phase * layout.shifts + columnShift) * sequenceFloats + rowShift * layout.rowStride }
            return phase * sequenceFloats + rowShift * layout.rowStride + columnShift
        }
        return (offset(0, 0), offset(0, 1), offset(0, 2), offset(1, 0), offset(1, 1),
                offset(1, 2), offset(2, 0), offset(2, 1), offset(2, 2))
    }

    /// Pads input sequence `sequence` (channel sequence / phases, phase sequence % phases) of
    /// images firstImage ..< firstImage + images into `target` (`total` floats).
    @inline(__always)
    static func padInputPhase(target: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, shape: Conv2DShape,
                              sequence: Int, firstImage: Int, images: Int, total: Int, rowStride: Int? = nil) {
        let phases = directPhases(shape), stride = shape.strideH
        let height = shape.inHeight, width = shape.inWidth
        let c = sequence / phases, phase = sequence % phases
        // Phase (a, b) of stride 2 starts at pixel (a, b) and steps 2.
        let source = input + c * shape.batch * height * width + firstImage * height * width + (phase / 2) * width + phase % 2
        padImages(target: target, source: source, images: images, rows: shape.outHeight, columns: shape.outWidth,
                  rowStep: stride * width, columnStep: stride, imageStep: height * width, bordered: true, total: total,
                  rowStride: rowStride)
    }

    /// Copies `images` images of `rows` x `columns` pixels (pixel (i, j) of image n at
    /// source[n * imageStep + i * rowStep + j * columnStep]) into the padded layout (see above) at
    /// `target` and zeros the rest up to `total` floats. Input (`bordered`): a zero row, then per
    /// image `rows` rows of (0, pixels) and a zero row. dOut: per image rows of (pixels, 0) and a
    /// zero row. Rows are `rowStride` floats (default columns + 1), zero past the pixels.
    @inline(__always)
    static func padImages(target: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>, images: Int,
                          rows: Int, columns: Int, rowStep: Int, columnStep: Int, imageStep: Int,
                          bordered: Bool, total: Int, rowStride stride: Int? = nil) {
        let rowStride = stride ?? columns + 1
        var out = target
        if bordered { for x in 0..<rowStride { out[x] = 0 }; out += rowStride }
        for n in 0..<images {
            for i in 0..<rows {
                let src = source + n * imageStep + i * rowStep
                let pixels = bordered ? out + 1 : out
                if columnStep == 1 {
                    pixels.update(from: src, count: columns)
                } else {
                    for j in 0..<columns { pixels[j] = src[j * columnStep] }
                }
                if bordered { out[0] = 0 }
                for x in (bordered ? columns + 1 : columns)..<rowStride { out[x] = 0 }
                out += rowStride
            }
            for x in 0..<rowStride { out[x] = 0 }
            out += rowStride
        }
        let used = out - target
        for i in used..<total { target[i] = 0 }
    }
}
