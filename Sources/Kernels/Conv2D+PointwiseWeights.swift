import Platform
import KernelsAVX512

// MARK: - The 1x1 stride-2 weight gradient with positions in the lanes (AVX-512)

/// dW[co, ci] += sum over the P = N * OH * OW output positions p of dOut[co, p] * x[ci, p], with
/// x[ci, p] = in[ci, n, 2 oh, 2 ow] (a ResNet downsampling shortcut): a GEMM with M = Cout,
/// N = Cin (16 to 64) and K = P (thousands). The column path gathered x (im2col) and ran the
/// GEMM on it, whose 12x32 tiles had N = 16 or 32 columns and split M = 32 or 64 rows over the
/// threads by panels.
///
/// Here dOut's rows are read where they lie (channel co's positions are contiguous in CNHW), and
/// x is gathered into rows of the same positions, a chunk of positions at a time (as many as the
/// scratch holds, a multiple of 16). `wideDotLanesTile4x4` takes four dOut rows by four x rows:
/// 16 accumulators of 16 lanes, lane l summing the positions p = l mod 16 in order, kept in the
/// scratch between chunks (tile by tile: `PointwiseWeightTiles.sumsOffset`). At the end each
/// (co, ci) adds its 16 lanes, in lane order, into dW. The threads split the gathering by input
/// channel and the tiles by (co, ci) block, so every sum is the same FMA chain whatever the
/// thread count or chunk size.
extension Conv2D {
    /// Where `backwardWeights` takes this path on an AVX-512 context: a `pointwiseLanesShape`
    /// (1x1, stride 2, pad 0) with at least 256 output positions and at most 64 input and 128
    /// output channels. `leitner bench conv`, 2026-12-08 (Xeon), 2 threads, two alternating
    /// rounds: resnet8's 16-32 @28 0.32-0.34 ms before, 0.20-0.21 after; 32-64 @14 0.29 and
    /// 0.18. Per call it zeroes and finally adds 16 lane sums a weight: with 98 positions (32-64
    /// at batch 2, one thread) it ran at a quarter of the column path's speed. The channel
    /// limits are the forward's: the lane sums (512 KB at 64 x 128) are scratch the plan
    /// reserves.
    public static func prefersPointwiseWeights(_ shape: Conv2DShape) -> Bool {
        pointwiseLanesShape(shape) && shape.batch * shape.outHeight * shape.outWidth >= 256
            && shape.inChannels <= 64 && shape.outChannels <= 128
    }

    /// The lane sums: 16 floats per (co, ci).
    static func pointwiseWeightsSumFloats(_ shape: Conv2DShape) -> Int { shape.outChannels * shape.inChannels * 16 }

    /// The smallest scratch of `backwardWeightsPointwise`: alignment, the lane sums and a chunk of
    /// 16 positions per input channel (0 where there is no such path).
    public static func pointwiseWeightsScratchFloats(_ shape: Conv2DShape) -> Int {
        guard pointwiseLanesShape(shape) else { return 0 }
        return 15 + pointwiseWeightsSumFloats(shape) + 16 * shape.inChannels
    }

    /// dWeights += the 1x1 stride-2 weight gradient (see above). Needs an AVX-512 context and
    /// `pointwiseWeightsScratchFloats(shape)` floats; more scratch gives longer chunks.
    /// - Shapes: dWeights [Cout, Cin, 1, 1], dOut [Cout, N, OH, OW], input [Cin, N, H, W].
    public static func backwardWeightsPointwise(
        dWeights: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        precondition(context.wideKernels && pointwiseLanesShape(shape) && scratchCount >= pointwiseWeightsScratchFloats(shape),
                     "Conv2D: backwardWeightsPointwise needs AVX-512 kernels, a 1x1 stride-2 pad-0 shape and its scratch, got \(shape) with \(scratchCount) floats")
        let cin = shape.inChannels, cout = shape.outChannels
        let positions = shape.batch * shape.outHeight * shape.outWidth
        let sums = scratch + cacheLineSkip(scratch)
        let sumFloats = pointwiseWeightsSumFloats(shape)
        let rows = sums + sumFloats
        let room = (scratchCount - 15 - sumFloats) / cin / 16 * 16
        let chunk = min(room, (positions + 15) / 16 * 16)
        sums.initialize(repeating: 0, count: sumFloats)
        let tiles = PointwiseWeightTiles(cout: cout, cin: cin)
        var start = 0
        while start < positions {
            let count = min(chunk, positions - start)
            let gatherThreads = min(context.threads, cin)
            context.pool.run(tasks: gatherThreads, threads: gatherThreads,
                             PointwiseWeightsGather(input: input, rows: rows, shape: shape, start: start, count: count,
                                                    rowFloats: chunk, threads: gatherThreads))
            let tileThreads = min(context.threads, tiles.count)
            context.pool.run(tasks: tileThreads, threads: tileThreads,
                             PointwiseWeightsRun(tiles: tiles, dOut: dOut + start, outPlane: positions, rows: rows,
                                                 rowFloats: chunk, count: count, sums: sums, threads: tileThreads))
            start += count
        }
        // dW[co, ci] += the 16 lanes of (co, ci), in lane order
        for t in 0..<tiles.count {
            let tile = tiles.tile(t)
            for i in 0..<tile.size {
                for j in 0..<tile.size {
                    let lanes = sums + tiles.sumsOffset(t) + (i * tile.size + j) * 16
                    var total: Float = 0
                    for lane in 0..<16 { total += lanes[lane] }
                    dWeights[(tile.co + i) * cin + tile.ci + j] += total
                }
            }
        }
    }

    /// The (co, ci) tiles: 4 x 4 blocks while both have four left, then single pairs.
    struct PointwiseWeightTiles {
        let cout: Int, cin: Int, blockRows: Int, blockColumns: Int
        init(cout: Int, cin: Int) {
            self.cout = cout
            self.cin = cin
            blockRows = cout / 4
            blockColumns = cin / 4
        }
        var blocks: Int { blockRows * blockColumns }
        var count: Int { blocks + cout * cin - 16 * blocks }

        /// Where tile t's lane sums start: 256 floats per block ((i * 4 + j) * 16 for pair (co +
        /// i, ci + j)), then 16 per single pair.
        func sumsOffset(_ t: Int) -> Int { t < blocks ? 256 * t : 256 * blocks + 16 * (t - blocks) }

        /// Tile t: (first co, first ci, 4 or 1).
        func tile(_ t: Int) -> (co: Int, ci: Int, size: Int) {
            if t < blocks { return (4 * (t / blockColumns), 4 * (t % blockColumns), 4) }
            // the pairs outside the blocks: rows past the blocks' rows, then the blocks' rows'
            // columns past the blocks' columns
            var rest = t - blocks
            let tailColumns = cin - 4 * blockColumns
            let inBlockRows = 4 * blockRows * tailColumns
            if rest < inBlockRows { return (rest / tailColumns, 4 * blockColumns + rest % tailColumns, 1) }
            rest -= inBlockRows
            return (4 * blockRows + rest / cin, rest % cin, 1)
        }
    }

    /// Gathers x[ci, start ..< start + count] into rows of `rowFloats` (zeros after count, to a
    /// whole vector) for task `task`'s input channels.
    struct PointwiseWeightsGather: ParallelTask {
        let input: UnsafePointer<Float>, rows: UnsafeMutablePointer<Float>
        let shape: Conv2DShape, start: Int, count: Int, rowFloats: Int, threads: Int

        func run(task: Int) {
            let cin = shape.inChannels
            let outWidth = shape.outWidth, sequence = shape.outHeight * outWidth
            let width = shape.inWidth, plane = shape.inHeight * width
            for ci in (cin * task / threads)..<(cin * (task + 1) / threads) {
                let row = rows + ci * rowFloats
                let channel = input + ci * shape.batch * plane
                var p = start
                let end = start + count
                while p < end {
                    // one output row's positions at a time: (n, oh, ow ..< OW)
                    let n = p / sequence, oh = (p % sequence) / outWidth, ow = p % outWidth
                    let run = min(outWidth - ow, end - p)
                    let source = channel + n * plane + 2 * oh * width + 2 * ow
                    let target = row + (p - start)
                    for j in 0..<run { target[j] = source[2 * j] }
                    p += run
                }
                let used = (count + 15) / 16 * 16
                (row + count).initialize(repeating: 0, count: used - count)
            }
        }
    }

    /// The tiles of task `task` over one chunk: whole vectors through the tile kernels, and a
    /// last partial vector (only at the end of the positions) lane by lane with the same FMA.
    struct PointwiseWeightsRun: ParallelTask {
        let tiles: PointwiseWeightTiles
        let dOut: UnsafePointer<Float>, outPlane: Int
        let rows: UnsafeMutablePointer<Float>, rowFloats: Int, count: Int
        let sums: UnsafeMutablePointer<Float>, threads: Int

        func run(task: Int) {
            #if arch(x86_64)
            let vectors = count / 16, tail = count % 16
            for t in (tiles.count * task / threads)..<(tiles.count * (task + 1) / threads) {
                let tile = tiles.tile(t)
                let a = dOut + tile.co * outPlane, b = UnsafePointer(rows + tile.ci * rowFloats)
                let lanes = sums + tiles.sumsOffset(t)
                if vectors > 0 {
                    if tile.size == 4 {
                        wideDotLanesTile4x4(a: a, aStride: outPlane, b: b, bStride: rowFloats, vectors: vectors, sums: lanes)
                    } else {
                        wideDotLanesTile1x1(a: a, b: b, vectors: vectors, sums: lanes)
                    }
                }
                for i in 0..<tile.size {
                    for j in 0..<tile.size {
                        let pair = lanes + (i * tile.size + j) * 16
                        for lane in 0..<tail {
                            let p = 16 * vectors + lane
                            pair[lane] = pair[lane].addingProduct(a[i * outPlane + p], b[j * rowFloats + p])
                        }
                    }
                }
            }
            #else
            preconditionFailure("Conv2D: backwardWeightsPointwise runs only with the AVX-512 kernels")
            #endif
        }
    }
}
