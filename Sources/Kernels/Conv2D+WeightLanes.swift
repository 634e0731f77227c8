import Platform
import KernelsAVX512

// MARK: - The 3x3 weight gradient with output channels in the lanes (AVX-512)

/// dW[co, ci, ky, kx] = sum over n, oh, ow of dOut[co, n, oh, ow] * in[ci, n, s oh + ky - 1, s ow + kx - 1]
/// as a GEMM: C[(ci, ky, kx), co] over K = the output positions, with B = dOut transposed (one
/// row of output channels per position, rounded up to 16 with zeros) and A read as single
/// pixels of zero-padded input planes, broadcast by the FMA (`wideWeightLanesTile`).
///
/// Images go in blocks sized from the scratch (shape-only). For each block all threads copy
/// the input into padded planes (rows of W + 1 floats, the zero column shared by neighbouring
/// rows; a zero row above and below every image) and transpose dOut; then the threads split
/// the tiles (two input channels by 16 output channels, or one by 32), each adding the block
/// into its own rows of a tap-major sum matrix in the scratch, blocks in order. At the end
/// dW += that matrix, transposed. The result is the same for any thread count.
///
/// Why: the correlation tiles (`backwardWeightsDirect`) keep positions in the lanes, so each
/// step loads nine shifted vectors (64-byte loads spanning two cache lines) and every tile ends
/// in lane sums; here each FMA takes one 4-byte broadcast and no sums remain.
extension Conv2D {
    /// Whether the shape has the channel-lane path: 3x3, padding 1, stride 1 or 2 (both ways).
    static func weightLanesShape(_ shape: Conv2DShape) -> Bool {
        shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.padH == 1 && shape.padW == 1
            && shape.strideH == shape.strideW && (shape.strideH == 1 || shape.strideH == 2)
    }

    /// The layout of `backwardWeightsLanes`' scratch: the tap-major sums, then per block dOut
    /// transposed and the padded input planes.
    struct WeightLanesLayout {
        let rowStride: Int, imageFloats: Int, paddedOut: Int, sumFloats: Int, perImage: Int
        /// Floats after the padded planes (the last row's right border, read by the last tap).
        static let slack = 16

        init(_ shape: Conv2DShape) {
            rowStride = shape.inWidth + 1
            imageFloats = (shape.inHeight + 2) * rowStride
            paddedOut = (shape.outChannels + 15) / 16 * 16
            sumFloats = shape.inChannels * 9 * paddedOut
            perImage = shape.outHeight * shape.outWidth * paddedOut + shape.inChannels * imageFloats
        }
    }

    /// Where `backwardWeights` takes this path on an AVX-512 context: 4 or more input channels
    /// (with fewer there are too few tiles to share among threads) and at most 256 output
    /// channels (with 512 each position's two dOut vectors sit 2 KiB apart in the transposed
    /// block). `leitner bench conv`, "weight lanes" section, 2 threads, 2026-12-07 (Xeon, 2 runs):
    /// 1.47-2.46x the path taken before on the resnet8 layers and cnn-s conv2, 1.18-1.27x at
    /// ResNet-18's 128 and 256 channels; 0.82-0.84x at 1-32 and 1.05-1.09x at 1-16; 0.72x at 512.
    public static func prefersWeightLanes(_ shape: Conv2DShape) -> Bool {
        weightLanesShape(shape) && shape.inChannels >= 4 && shape.outChannels <= 256
    }

    /// Images per block of `backwardWeightsLanes` with `scratchCount` floats, or 0 where the
    /// path is not available (not a `weightLanesShape`, or not even one image fits). Blocks of
    /// more than one image stay within `directBlockLimitFloats`.
    public static func weightLanesBlockImages(_ shape: Conv2DShape, scratchCount: Int) -> Int {
        guard weightLanesShape(shape) else { return 0 }
        let layout = WeightLanesLayout(shape)
        // (15: the layout starts at the scratch's first 64-byte boundary)
        let room = scratchCount - 15 - layout.sumFloats - WeightLanesLayout.slack
        guard room >= layout.perImage else { return 0 }
        return min(shape.batch, max(1, min(room, directBlockLimitFloats) / layout.perImage))
    }

    /// The scratch `backwardWeightsLanes` wants for `shape`: blocks as large as
    /// `weightLanesBlockImages` takes them (0 where the path is not available).
    static func weightLanesScratchFloats(_ shape: Conv2DShape) -> Int {
        guard weightLanesShape(shape) else { return 0 }
        let layout = WeightLanesLayout(shape)
        let images = min(shape.batch, max(1, directBlockLimitFloats / layout.perImage))
        return 15 + layout.sumFloats + WeightLanesLayout.slack + images * layout.perImage
    }

    /// dWeights += the weight gradient with output channels in the lanes (see above). Needs an
    /// AVX-512 context and `weightLanesBlockImages(shape, scratchCount:) > 0`.
    /// - Shapes: dWeights [Cout, Cin, 3, 3], dOut [Cout, N, OH, OW], input [Cin, N, H, W].
    public static func backwardWeightsLanes(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        let blockImages = weightLanesBlockImages(shape, scratchCount: scratchCount)
        precondition(context.wideKernels && blockImages > 0,
                     "Conv2D: backwardWeightsLanes needs AVX-512 kernels, a 3x3 pad-1 shape of stride 1 or 2 and scratch for one image, got \(shape) with \(scratchCount) floats")
        let layout = WeightLanesLayout(shape)
        // 64-byte aligned rows of dOut transposed (the arena's scratch is aligned; up to 15
        // floats are skipped otherwise).
        let sums = scratch + cacheLineSkip(scratch)
        let transposed = sums + layout.sumFloats
        let planes = transposed + blockImages * shape.outHeight * shape.outWidth * layout.paddedOut
        sums.initialize(repeating: 0, count: layout.sumFloats)
        let tiles = WeightLanesTiles(shape: shape, layout: layout)
        var n0 = 0
        while n0 < shape.batch {
            let images = min(blockImages, shape.batch - n0)
            // Copies: each input channel's padded planes, and dOut transposed by runs of positions.
            let positions = images * shape.outHeight * shape.outWidth
            let runs = (positions + 63) / 64
            let units = shape.inChannels + runs
            let copyThreads = min(context.threads, units)
            context.pool.run(tasks: copyThreads, threads: copyThreads,
                             WeightLanesCopy(shape: shape, layout: layout, input: input, dOut: dOut, planes: planes,
                                             transposed: transposed, n0: n0, images: images, positions: positions,
                                             units: units, copyThreads: copyThreads))
            let tileThreads = min(context.threads, tiles.count)
            context.pool.run(tasks: tileThreads, threads: tileThreads,
                             WeightLanesRun(tiles: tiles, layout: layout, shape: shape, planes: planes, transposed: transposed,
                                            sums: sums, images: images, tileThreads: tileThreads))
            n0 += images
        }
        // dW[co, ci, tap] += sums[(ci * 9 + tap) * paddedOut + co]
        let cin = shape.inChannels
        for co in 0..<shape.outChannels {
            let target = dWeights + co * cin * 9
            for row in 0..<(cin * 9) { target[row] += sums[row * layout.paddedOut + co] }
        }
    }

    /// The tiles of `backwardWeightsLanes`: output channels in groups of two vectors (32
    /// channels, one input channel per tile) while two remain, then one vector (two input
    /// channels per tile, one for an odd last channel). Every full tile has 18 accumulators.
    struct WeightLanesTiles {
        let pairs: Int, singles: Int, cin: Int
        var count: Int { pairs * cin + singles * ((cin + 1) / 2) }

        init(shape: Conv2DShape, layout: WeightLanesLayout) {
            let vectors = layout.paddedOut / 16
            pairs = vectors / 2
            singles = vectors % 2
            cin = shape.inChannels
        }

        /// Tile `tile`: (first input channel, input channels, first vector, vectors).
        func tile(_ tile: Int) -> (channel: Int, channels: Int, vector: Int, vectors: Int) {
            if tile < pairs * cin { return (tile % cin, 1, 2 * (tile / cin), 2) }
            let t = tile - pairs * cin
            let channel = 2 * t
            return (channel, min(2, cin - channel), 2 * pairs, 1)
        }
    }

    /// One block's copies for task `task` of `copyThreads`: a contiguous range of units (an
    /// input channel's padded planes, or a run of 64 output positions of dOut transposed).
    struct WeightLanesCopy: ParallelTask {
        let shape: Conv2DShape, layout: WeightLanesLayout
        let input: UnsafePointer<Float>, dOut: UnsafePointer<Float>
        let planes: UnsafeMutablePointer<Float>, transposed: UnsafeMutablePointer<Float>
        let n0: Int, images: Int, positions: Int, units: Int, copyThreads: Int

        func run(task: Int) {
            let cin = shape.inChannels
            for unit in firstUnit(task)..<firstUnit(task + 1) {
                if unit < cin { padChannel(unit) } else { transpose(positions: (unit - cin) * 64) }
            }
        }

        /// The first unit of task `task`: the units split by the floats they write (a channel's
        /// padded planes, images x imageFloats; a run, 64 x paddedOut), not by their count. By
        /// count, at resnet8's 16-16 layer (9 images a block) the task with the 16 channels
        /// wrote 2.7 times the floats of the other, which waited.
        func firstUnit(_ task: Int) -> Int {
            let cin = shape.inChannels
            let planeCost = images * layout.imageFloats, runCost = 64 * layout.paddedOut
            let planesTotal = cin * planeCost
            let target = (planesTotal + (units - cin) * runCost) * task / copyThreads
            if target <= planesTotal { return (target + planeCost - 1) / planeCost }
            return min(units, cin + (target - planesTotal + runCost - 1) / runCost)
        }

        /// Input channel c's images into padded planes: a zero row, rows of (0, pixels) with the
        /// next row's 0 as the right border, a zero row.
        func padChannel(_ c: Int) {
            let height = shape.inHeight, width = shape.inWidth
            let channelFloats = images * layout.imageFloats
            let target = planes + c * channelFloats
            let source = input + (c * shape.batch + n0) * height * width
            for n in 0..<images {
                padImage(target + n * layout.imageFloats, source + n * height * width, height: height, width: width)
            }
            if c == shape.inChannels - 1 {
                (planes + shape.inChannels * channelFloats).initialize(repeating: 0, count: WeightLanesLayout.slack)
            }
        }

        /// Positions p0 ..< p0 + 64 of the block (fewer at its end): transposed[p * paddedOut + co]
        /// = dOut[co, the block's first position + p], zeros for co >= Cout. Whole 16 x 16 blocks
        /// by register transposes.
        func transpose(positions p0: Int) {
            let p1 = min(p0 + 64, positions)
            let outPlane = shape.batch * shape.outHeight * shape.outWidth
            let first = dOut + n0 * shape.outHeight * shape.outWidth
            let cout = shape.outChannels, paddedOut = layout.paddedOut
            var co = 0
            #if arch(x86_64)
            while co + 16 <= cout {
                var p = p0
                while p + 16 <= p1 {
                    wideTranspose16(first + co * outPlane + p, outPlane, transposed + p * paddedOut + co, paddedOut)
                    p += 16
                }
                for q in p..<p1 {
                    for c in co..<(co + 16) { transposed[q * paddedOut + c] = first[c * outPlane + q] }
                }
                co += 16
            }
            #endif
            for c in co..<cout {
                let source = first + c * outPlane
                for p in p0..<p1 { transposed[p * paddedOut + c] = source[p] }
            }
            if cout < paddedOut {
                for p in p0..<p1 { (transposed + p * paddedOut + cout).initialize(repeating: 0, count: paddedOut - cout) }
            }
        }
    }

    /// One image (height x width pixels at `source`) into the padded layout of the lane kernels
    /// at `target`: rows of width + 1 floats, a zero row above and below, pixel (y, x) at
    /// (y + 1) (width + 1) + x + 1; column 0 of each row is the previous row's right border.
    /// Writes (height + 2) (width + 1) floats.
    static func padImage(_ target: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, height: Int, width: Int) {
        let rowStride = width + 1
        target.initialize(repeating: 0, count: rowStride + 1)  // zero row, first row's border
        for y in 0..<height {
            let row = target + (y + 1) * rowStride + 1
            copyFloats(row, source + y * width, width)
            row[width] = 0  // the right border, which is also the next row's left one
        }
        (target + (height + 1) * rowStride + 1).initialize(repeating: 0, count: rowStride - 1)
    }

    /// Floats from `scratch` to its first 64-byte boundary (0 for the arena's aligned scratch).
    static func cacheLineSkip(_ scratch: UnsafeMutablePointer<Float>) -> Int {
        (64 - Int(bitPattern: UnsafeRawPointer(scratch)) % 64) % 64 / MemoryLayout<Float>.stride
    }

    /// dst[0 ..< count] = src[0 ..< count] by vectors (the last one overlapping), inline: the
    /// rows here are short (7 to 56 floats) and a memmove call per row cost more than the copy.
    @inline(__always)
    static func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
        let width = FloatVector.scalarCount
        guard count >= width else {
            for i in 0..<count { dst[i] = src[i] }
            return
        }
        var i = 0
        while i + width <= count {
            dst.storeVector(src.loadVector(at: i), at: i)
            i += width
        }
        if i < count { dst.storeVector(src.loadVector(at: count - width), at: count - width) }
    }

    /// One block's tiles for task `task` of `tileThreads`: a contiguous range of tiles.
    struct WeightLanesRun: ParallelTask {
        let tiles: WeightLanesTiles, layout: WeightLanesLayout, shape: Conv2DShape
        let planes: UnsafeMutablePointer<Float>, transposed: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>
        let images: Int, tileThreads: Int

        func run(task: Int) {
            #if arch(x86_64)
            let channelFloats = images * layout.imageFloats
            for index in (tiles.count * task / tileThreads)..<(tiles.count * (task + 1) / tileThreads) {
                let tile = tiles.tile(index)
                wideWeightLanesTile(channels: tile.channels, vectors: tile.vectors,
                                    input: planes + tile.channel * channelFloats, channelFloats: channelFloats,
                                    rowStride: layout.rowStride, imageFloats: layout.imageFloats, stride: shape.strideH,
                                    images: images, outHeight: shape.outHeight, outWidth: shape.outWidth,
                                    bt: transposed + 16 * tile.vector, btStride: layout.paddedOut,
                                    sums: sums + tile.channel * 9 * layout.paddedOut + 16 * tile.vector,
                                    sumStride: layout.paddedOut)
            }
            #else
            preconditionFailure("Conv2D: backwardWeightsLanes runs only with the AVX-512 kernels")
            #endif
        }
    }
}
