import Platform

// MARK: - Winograd F(2x2, 3x3) for 3x3 stride-1 "same" convolutions

/// Lavin and Gray's minimal filtering (arXiv:1511.09308): each 2x2 output tile of a 3x3
/// convolution is A^T [ (G g G^T) (.) (B^T d B) ] A, where d is the 4x4 input patch and g the
/// 3x3 kernel. Summed over input channels, the 16 elementwise products become 16 independent
/// GEMMs M[xi] = U[xi] (Cout x Cin) x V[xi] (Cin x tiles): 16 multiplies per tile per channel
/// pair where the direct form takes 36, i.e. 2.25x fewer FLOPs in the GEMM, plus the transforms
/// (additions only, linear in Cin + Cout).
///
/// Each thread takes its own contiguous range of tile rows (image n, tile row ty) and, one chunk
/// of rows at a time in its private scratch: transforms the input patches of every channel into
/// V, runs the 16 GEMMs on one thread (`GEMM.serial`, the same blocks and micro-kernel as the
/// other paths) into M, and transforms M back into 2x2 output tiles. The result depends only on
/// the tile, never on the split, so it is the same for any thread count. The rounding differs
/// from the direct sum (the transforms add and subtract before multiplying): the naive twin is
/// matched within a relative tolerance, as the other GEMM paths are.
///
/// The transforms are vectorized across four neighbouring tiles of a tile row: each input row is
/// first split into its even and odd columns, so a tile's four columns are unit-stride vectors;
/// the outputs' even and odd columns are interleaved back when copied into the output row.
extension Conv2D {
    /// The shapes `forward` (and `backwardData`, for the transposed shape) may run through
    /// Winograd: 3x3, stride 1, pad 1, at least `winogradMinimumChannels` input and output
    /// channels (below that the 16 GEMMs are too thin to beat the direct paths).
    public static func usesWinograd(_ shape: Conv2DShape) -> Bool {
        shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.strideH == 1 && shape.strideW == 1
            && shape.padH == 1 && shape.padW == 1
            && shape.inChannels >= winogradMinimumChannels && shape.outChannels >= winogradMinimumChannels
    }

    /// See `usesWinograd`.
    public static let winogradMinimumChannels = 16

    /// Whether `forward` and `backwardData` take Winograd for a `usesWinograd` shape: where it was
    /// measured faster than the direct paths (Xeon, 2026-12-07, `leitner bench conv`, section
    /// "winograd", 1 thread, 3 runs; docs/results/2026-12-07-xeon-avx512.md section 7).
    /// - AVX-512 (`wide`): 64 channels and more on maps of 14x14 and up (ResNet-18's 64-256-
    ///   channel layers, 1.3-1.6x). At 16-64 channels the 16 GEMMs reduce over Cin only (K =
    ///   16-64, where the direct paths reduce over 9 Cin) and lost (0.6-0.9x); on 7x7 maps (16
    ///   tiles for 49 outputs) it lost too (0.75-0.87x).
    /// - AVX2: every `usesWinograd` shape (1.04-1.94x: half the FMA rate makes the saved
    ///   multiplies count for more).
    /// - NEON: not measured on a board. `tools/board-model` prices both ways: at 16-32 channels
    ///   the transformed tiles (V and M, written and read once each) make the Raspberry Pi 4's
    ///   4 GB/s the bound and Winograd predicts slower (resnet8 318 against 411 samples/s), at
    ///   64+ channels on 14x14+ maps it predicts faster (ResNet-18's layers 1-3); so NEON takes
    ///   the AVX-512 rule.
    public static func prefersWinograd(_ shape: Conv2DShape, wide: Bool) -> Bool {
        guard usesWinograd(shape) else { return false }
        #if arch(x86_64)
        if !wide { return true }
        #endif
        return shape.inChannels >= 64 && shape.outChannels >= 64 && shape.inHeight >= 14 && shape.inWidth >= 14
    }

    /// `prefersWinograd` with the context's micro-kernel width.
    public static func prefersWinograd(_ shape: Conv2DShape, context: KernelContext) -> Bool {
        prefersWinograd(shape, wide: context.wideKernels)
    }

    /// Target floats of one thread's V + M chunk (2 MiB). Larger chunks give each of the 16 GEMMs
    /// more tiles (N): on the Xeon (AVX-512, 1 thread, `leitner bench conv`, one run per size)
    /// ResNet-18's 64-256-channel forward layers ran 0.57-1.41x the direct paths at 64-256 Ki
    /// floats (at 64 Ki a 256-channel 14x14 chunk is one tile row of 7 tiles) and 1.32-1.63x at
    /// 512 Ki; 1 Mi was no better.
    static let winogradChunkTarget = 1 << 19

    /// The geometry of one Winograd run.
    struct WinogradPlan {
        let tilesHigh: Int, tilesWide: Int
        /// tilesWide rounded up to the 4-tile vector groups.
        let groupTiles: Int
        /// Floats of one half (even or odd padded columns) of a split row, and of the row buffer.
        let halfFloats: Int, rowBufferFloats: Int
        let tileRows: Int
        /// Tile rows per chunk, and the stride of V and M rows (tiles of a chunk + spill, to 16).
        let chunkRows: Int, ldv: Int
        /// Floats between V[xi] and V[xi + 1], and between M[xi] and M[xi + 1].
        let vPlane: Int, mPlane: Int
        let transformedWeightFloats: Int, perThreadFloats: Int
        /// The 16 transformed weight matrices packed as the GEMM's A blocks (`GEMM.prepackA`), each.
        let packedWeightFloats: Int
        var sharedFloats: Int { transformedWeightFloats + 16 * packedWeightFloats }

        init(_ shape: Conv2DShape, chunkRows requested: Int) {
            tilesHigh = (shape.inHeight + 1) / 2
            tilesWide = (shape.inWidth + 1) / 2
            groupTiles = (tilesWide + 3) / 4 * 4
            halfFloats = (groupTiles + 1 + 15) / 16 * 16
            rowBufferFloats = 4 * 2 * halfFloats
            tileRows = shape.batch * tilesHigh
            chunkRows = max(1, min(requested, tileRows))
            // An odd number of cache lines per row, and planes one line more than their rows: with
            // power-of-two strides the 16 planes (and a GEMM panel's rows) fell into the same few
            // L1 sets (measured up to 1.6x slower at some chunk sizes).
            let lines = (chunkRows * tilesWide + 4 + 15) / 16
            ldv = (lines | 1) * 16
            vPlane = shape.inChannels * ldv + 16
            mPlane = shape.outChannels * ldv + 16
            transformedWeightFloats = (16 * shape.inChannels * shape.outChannels + 15) / 16 * 16
            packedWeightFloats = (GEMM.prepackedAFloats(m: shape.outChannels, k: shape.inChannels) + 15) / 16 * 16
            perThreadFloats = 16 * (vPlane + mPlane) + rowBufferFloats
        }

        func totalFloats(threads: Int) -> Int { sharedFloats + threads * perThreadFloats }
    }

    /// Tile rows per chunk that the chunk target asks for (at least one, at most a thread's share).
    static func winogradTargetRows(_ shape: Conv2DShape, threads: Int) -> Int {
        let tilesWide = (shape.inWidth + 1) / 2, tileRows = shape.batch * ((shape.inHeight + 1) / 2)
        let perRow = 16 * (shape.inChannels + shape.outChannels) * tilesWide
        let share = (tileRows + max(threads, 1) - 1) / max(threads, 1)
        return max(1, min(share, winogradChunkTarget / max(perRow, 1)))
    }

    /// Scratch floats for a Winograd run of `shape` on `threads` threads at the chunk target.
    public static func winogradScratchFloats(_ shape: Conv2DShape, threads: Int) -> Int {
        guard usesWinograd(shape) else { return 0 }
        return WinogradPlan(shape, chunkRows: winogradTargetRows(shape, threads: threads))
            .totalFloats(threads: max(threads, 1))
    }

    /// Scratch for Winograd on a layer: its forward on `shape` and its data gradient on the
    /// transposed shape, each where `takes` accepts it (0 where neither is taken).
    public static func winogradLayerScratchFloats(_ shape: Conv2DShape, threads: Int,
                                                  takes: (Conv2DShape) -> Bool) -> Int {
        var floats = takes(shape) ? winogradScratchFloats(shape, threads: threads) : 0
        if let transposed = transposedShape(shape), takes(transposed) {
            floats = max(floats, winogradScratchFloats(transposed, threads: threads))
        }
        return floats
    }

    /// The least scratch Winograd runs `shape` in on `threads` threads (one tile row per chunk).
    public static func winogradMinimumScratchFloats(_ shape: Conv2DShape, threads: Int) -> Int {
        guard usesWinograd(shape) else { return 0 }
        return WinogradPlan(shape, chunkRows: 1).totalFloats(threads: max(threads, 1))
    }

    /// The plan that fits `scratchCount` floats for `threads` threads, or nil (not even one tile
    /// row per chunk fits).
    static func winogradPlan(_ shape: Conv2DShape, threads: Int, scratchCount: Int) -> WinogradPlan? {
        guard usesWinograd(shape) else { return nil }
        var rows = winogradTargetRows(shape, threads: threads)
        while rows >= 1 {
            let plan = WinogradPlan(shape, chunkRows: rows)
            if plan.totalFloats(threads: threads) <= scratchCount { return plan }
            rows = rows > 1 ? rows / 2 : 0
        }
        return nil
    }

    /// Whether `forward` can take Winograd for `shape` with this scratch and context.
    public static func winogradFits(_ shape: Conv2DShape, scratchCount: Int, context: KernelContext) -> Bool {
        winogradPlan(shape, threads: context.threads, scratchCount: scratchCount) != nil
    }

    /// out = conv(input, weights), or out += when `accumulate`, through Winograd F(2x2, 3x3).
    /// `flipped`: the weights are the forward kernel of the data gradient, i.e. `weights` is
    /// [Cin', Cout', 3, 3] of the *original* layer (`shape` is its transposed shape) and the
    /// kernel used is W'[o, i, ky, kx] = weights[i, o, 2 - ky, 2 - kx] (no copy is made).
    /// - Shapes as `forward`; scratch at least `winogradScratchFloats(shape, threads:)` or any
    ///   size `winogradFits` accepts.
    public static func forwardWinograd(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, flipped: Bool = false, accumulate: Bool = false,
        scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        guard let plan = winogradPlan(shape, threads: context.threads, scratchCount: scratchCount) else {
            preconditionFailure("Conv2D: forwardWinograd needs a 3x3 stride-1 pad-1 shape and scratch, got \(shape) with \(scratchCount) floats")
        }
        runWinograd(plan: plan, out: out, input: input, weights: weights, shape: shape, flipped: flipped,
                    accumulate: accumulate, scratch: scratch, context: context)
    }

    /// `forwardWinograd` with its plan already made (the dispatch makes it once, to decide).
    static func runWinograd(
        plan: WinogradPlan, out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, flipped: Bool, accumulate: Bool, scratch: UnsafeMutablePointer<Float>, context: KernelContext
    ) {
        let transformed = scratch
        let threads = context.threads
        context.pool.run(tasks: threads, threads: threads,
                         WinogradWeightTask(weights: weights, transformed: transformed, shape: shape,
                                            flipped: flipped, parts: threads))
        // Each U[xi] is the A of one GEMM per chunk: packed once here, not once per chunk.
        let packed = scratch + plan.transformedWeightFloats
        context.pool.run(tasks: 16, threads: threads,
                         WinogradPackTask(transformed: transformed, packed: packed, shape: shape, plan: plan))
        let participants = min(threads, plan.tileRows)
        context.pool.run(tasks: participants, threads: participants,
                         WinogradTask(out: out, input: input, packed: packed, shape: shape, plan: plan,
                                      accumulate: accumulate, wide: context.wideKernels, parts: participants,
                                      scratch: scratch + plan.sharedFloats, context: context))
    }

    /// U[xi][o][i] = (G g G^T)[xi] for every kernel g = W[o, i] (or the flipped, channel-swapped
    /// one), G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. Part p takes a range of output rows o.
    struct WinogradWeightTask: ParallelTask {
        let weights: UnsafePointer<Float>, transformed: UnsafeMutablePointer<Float>
        let shape: Conv2DShape, flipped: Bool, parts: Int

        /// G (g0, g1, g2): (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2).
        @inline(__always)
        func rowsOf(_ g0: Float, _ g1: Float, _ g2: Float) -> (Float, Float, Float, Float) {
            (g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2)
        }

        @inline(__always)
        func store(_ values: (Float, Float, Float, Float), _ target: UnsafeMutablePointer<Float>, _ first: Int, _ stride: Int) {
            target[first * stride] = values.0
            target[(first + 1) * stride] = values.1
            target[(first + 2) * stride] = values.2
            target[(first + 3) * stride] = values.3
        }

        func run(task part: Int) {
            let outs = shape.outChannels, ins = shape.inChannels
            let stride = outs * ins
            for o in (outs * part / parts)..<(outs * (part + 1) / parts) {
                for i in 0..<ins {
                    // The kernel's rows g0 g1 g2 (three taps each), flipped when asked.
                    let source = flipped ? weights + (i * outs + o) * 9 : weights + (o * ins + i) * 9
                    @inline(__always) func tap(_ index: Int) -> Float { flipped ? source[8 - index] : source[index] }
                    // Rows: Gg (4 x 3), column by column.
                    let r = (rowsOf(tap(0), tap(3), tap(6)), rowsOf(tap(1), tap(4), tap(7)), rowsOf(tap(2), tap(5), tap(8)))
                    // Columns: (Gg) G^T (4 x 4): row k of Gg is (r.0.k, r.1.k, r.2.k).
                    let target = transformed + o * ins + i
                    store(rowsOf(r.0.0, r.1.0, r.2.0), target, 0, stride)
                    store(rowsOf(r.0.1, r.1.1, r.2.1), target, 4, stride)
                    store(rowsOf(r.0.2, r.1.2, r.2.2), target, 8, stride)
                    store(rowsOf(r.0.3, r.1.3, r.2.3), target, 12, stride)
                }
            }
        }
    }

    /// Packs U[xi] (task xi) into the GEMM's A blocks.
    struct WinogradPackTask: ParallelTask {
        let transformed: UnsafeMutablePointer<Float>, packed: UnsafeMutablePointer<Float>
        let shape: Conv2DShape, plan: WinogradPlan

        func run(task xi: Int) {
            let outs = shape.outChannels, ins = shape.inChannels
            GEMM.prepackA(m: outs, k: ins, a: transformed + xi * outs * ins, lda: ins,
                          into: packed + xi * plan.packedWeightFloats)
        }
    }

    /// One thread's tile rows: chunk by chunk, input transform -> 16 GEMMs -> output transform.
    struct WinogradTask: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let packed: UnsafeMutablePointer<Float>
        let shape: Conv2DShape, plan: WinogradPlan
        let accumulate: Bool, wide: Bool, parts: Int
        let scratch: UnsafeMutablePointer<Float>
        unowned(unsafe) let context: KernelContext

        func run(task part: Int) {
            let ins = shape.inChannels, outs = shape.outChannels
            let ldv = plan.ldv
            let mine = scratch + part * plan.perThreadFloats
            let v = mine
            let m = v + 16 * plan.vPlane
            let rows = m + 16 * plan.mPlane
            let pack = context.packBuffer(part)
            let first = plan.tileRows * part / parts, last = plan.tileRows * (part + 1) / parts
            var r0 = first
            while r0 < last {
                let count = min(plan.chunkRows, last - r0)
                // The last row's vector group spills up to three padding tiles past the chunk; the
                // GEMM computes them too (from zeros) so M holds no uninitialised values.
                let tiles = (count - 1) * plan.tilesWide + plan.groupTiles
                for ci in 0..<ins {
                    inputTransform(channel: ci, firstRow: r0, rowCount: count, v: v + ci * ldv, rows: rows)
                }
                for xi in 0..<16 {
                    GEMM.serial(transA: .none, transB: .none, m: outs, n: tiles, k: ins, alpha: 1,
                                a: packed, lda: ins, b: v + xi * plan.vPlane, ldb: ldv,
                                beta: 0, c: m + xi * plan.mPlane, ldc: ldv, wide: wide, pack: pack,
                                prepackedA: packed + xi * plan.packedWeightFloats)
                }
                for co in 0..<outs {
                    outputTransform(channel: co, firstRow: r0, rowCount: count, m: m + co * ldv, rows: rows)
                }
                r0 += count
            }
        }

        /// V[xi][ci][tile] = (B^T d B)[xi] for the chunk's tiles of channel ci, B^T =
        /// [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. `v` points at V[0][ci][0]; xi strides
        /// `plan.vPlane`. Four tiles per step; a tile row's last group may spill up to three tiles
        /// into the next row's slots (overwritten next) or past the chunk (inside ldv).
        @inline(__always)
        func inputTransform(channel ci: Int, firstRow: Int, rowCount: Int, v: UnsafeMutablePointer<Float>,
                            rows: UnsafeMutablePointer<Float>) {
            let height = shape.inHeight, width = shape.inWidth
            let plane = input + ci * shape.batch * height * width
            let half = plan.halfFloats
            let xiStride = plan.vPlane
            // Input row dy of the current tile row sits in slot (dy + rotation) % 4.
            var rotation = 0
            for local in 0..<rowCount {
                let tileRow = firstRow + local
                let n = tileRow / plan.tilesHigh, ty = tileRow % plan.tilesHigh
                // Four input rows y = 2ty - 1 ... 2ty + 2, each split by padded column p = x + 1
                // into its even half E[p / 2] and odd half O[p / 2], zeros outside the image: tile
                // t's columns are then E[t], O[t], E[t + 1], O[t + 1], four unit-stride vectors
                // (an unzip of loaded vectors was scalarised by the compiler).
                // Rows 2ty - 1 and 2ty are the previous tile row's last two when it was the row
                // above in the same image: the four slots rotate and only two rows are split anew.
                let reuse = local > 0 && ty > 0
                if reuse { rotation = (rotation + 2) % 4 }
                @inline(__always) func row(_ dy: Int) -> UnsafeMutablePointer<Float> { rows + (dy + rotation) % 4 * 2 * half }
                for dy in (reuse ? 2 : 0)..<4 {
                    let y = 2 * ty - 1 + dy
                    let even = row(dy), odd = even + half
                    if y < 0 || y >= height {
                        for q in 0..<(2 * half) { even[q] = 0 }
                        continue
                    }
                    let source = plane + (n * height + y) * width
                    even[0] = 0
                    var q = 0
                    while 2 * q + 1 < width {
                        odd[q] = source[2 * q]
                        even[q + 1] = source[2 * q + 1]
                        q += 1
                    }
                    if 2 * q < width { odd[q] = source[2 * q]; q += 1 }
                    for rest in q..<half { odd[rest] = 0 }
                    let evenFilled = width / 2 + 1
                    for rest in min(evenFilled, half)..<half { even[rest] = 0 }
                }
                let base = local * plan.tilesWide
                var t = 0
                while t < plan.tilesWide {
                    // Each row's (d B) for four tiles.
                    let r0 = rowTransform(row(0) + t, half), r1 = rowTransform(row(1) + t, half)
                    let r2 = rowTransform(row(2) + t, half), r3 = rowTransform(row(3) + t, half)
                    // B^T (d B): row i of V from rows 0-3, column by column.
                    let target = v + base + t
                    store(r0.0 - r2.0, target + 0 * xiStride); store(r0.1 - r2.1, target + 1 * xiStride)
                    store(r0.2 - r2.2, target + 2 * xiStride); store(r0.3 - r2.3, target + 3 * xiStride)
                    store(r1.0 + r2.0, target + 4 * xiStride); store(r1.1 + r2.1, target + 5 * xiStride)
                    store(r1.2 + r2.2, target + 6 * xiStride); store(r1.3 + r2.3, target + 7 * xiStride)
                    store(r2.0 - r1.0, target + 8 * xiStride); store(r2.1 - r1.1, target + 9 * xiStride)
                    store(r2.2 - r1.2, target + 10 * xiStride); store(r2.3 - r1.3, target + 11 * xiStride)
                    store(r1.0 - r3.0, target + 12 * xiStride); store(r1.1 - r3.1, target + 13 * xiStride)
                    store(r1.2 - r3.2, target + 14 * xiStride); store(r1.3 - r3.3, target + 15 * xiStride)
                    t += 4
                }
            }
        }

        /// The chunk's output tiles of channel co from M[xi][co][tile] (`m` points at
        /// M[0][co][0]; xi strides `plan.mPlane`): Y = A^T M A, A^T = [1 1 1 0; 0 1 -1 -1], written
        /// (or added) into the two output rows 2ty, 2ty + 1 that lie inside the image.
        @inline(__always)
        func outputTransform(channel co: Int, firstRow: Int, rowCount: Int, m: UnsafeMutablePointer<Float>,
                             rows: UnsafeMutablePointer<Float>) {
            let height = shape.inHeight, width = shape.inWidth
            let plane = out + co * shape.batch * height * width
            let xiStride = plan.mPlane
            let half = plan.halfFloats
            for local in 0..<rowCount {
                let tileRow = firstRow + local
                let n = tileRow / plan.tilesHigh, ty = tileRow % plan.tilesHigh
                let base = local * plan.tilesWide
                var t = 0
                while t < plan.tilesWide {
                    let source = m + base + t
                    // A^T M, column j of the two rows: s0j = m0j + m1j + m2j, s1j = m1j - m2j - m3j.
                    let c0 = columnTransform(source, xiStride, 0), c1 = columnTransform(source, xiStride, 1)
                    let c2 = columnTransform(source, xiStride, 2), c3 = columnTransform(source, xiStride, 3)
                    // (A^T M) A: output row dy's even columns (2t) and odd columns (2t + 1), kept
                    // apart and interleaved by the copy below.
                    store(c0.0 + c1.0 + c2.0, rows + t)
                    store(c1.0 - c2.0 - c3.0, rows + half + t)
                    store(c0.1 + c1.1 + c2.1, rows + 2 * half + t)
                    store(c1.1 - c2.1 - c3.1, rows + 3 * half + t)
                    t += 4
                }
                for dy in 0..<2 {
                    let y = 2 * ty + dy
                    if y >= height { break }
                    let target = plane + (n * height + y) * width
                    let even = rows + dy * 2 * half, odd = even + half
                    var q = 0
                    if accumulate {
                        while 2 * q + 1 < width {
                            target[2 * q] += even[q]
                            target[2 * q + 1] += odd[q]
                            q += 1
                        }
                        if 2 * q < width { target[2 * q] += even[q] }
                    } else {
                        while 2 * q + 1 < width {
                            target[2 * q] = even[q]
                            target[2 * q + 1] = odd[q]
                            q += 1
                        }
                        if 2 * q < width { target[2 * q] = even[q] }
                    }
                }
            }
        }

        /// One split input row's (d B) for four tiles from tile t (`row` = E + t; O is `half` on).
        @inline(__always)
        func rowTransform(_ row: UnsafeMutablePointer<Float>, _ half: Int) -> (SIMD4<Float>, SIMD4<Float>, SIMD4<Float>, SIMD4<Float>) {
            let d0 = load(row), d1 = load(row + half), d2 = load(row + 1), d3 = load(row + half + 1)
            return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
        }

        /// Column j of A^T M for four tiles: (m0j + m1j + m2j, m1j - m2j - m3j).
        @inline(__always)
        func columnTransform(_ source: UnsafeMutablePointer<Float>, _ xiStride: Int, _ j: Int) -> (SIMD4<Float>, SIMD4<Float>) {
            let m0 = load(source + j * xiStride), m1 = load(source + (4 + j) * xiStride)
            let m2 = load(source + (8 + j) * xiStride), m3 = load(source + (12 + j) * xiStride)
            return (m0 + m1 + m2, m1 - m2 - m3)
        }

        @inline(__always)
        func store(_ value: SIMD4<Float>, _ at: UnsafeMutablePointer<Float>) {
            UnsafeMutableRawPointer(at).storeBytes(of: value, as: SIMD4<Float>.self)
        }

        @inline(__always)
        func load(_ at: UnsafeMutablePointer<Float>) -> SIMD4<Float> {
            UnsafeRawPointer(at).loadUnaligned(as: SIMD4<Float>.self)
        }
    }
}
