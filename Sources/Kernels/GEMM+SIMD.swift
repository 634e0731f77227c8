import Platform
import KernelsAVX512

// The fast single-precision GEMM: BLIS/Goto-style cache blocking, packed operands, and one
// register-blocked micro-kernel written against `FloatVector` (see GEMM+Blocking.swift for the
// loop nest, the block sizes and the per-architecture micro-tile).

#if arch(x86_64)
/// The micro-tile's accumulators: microRows x (microColumns / 8) = 6 x 2 = 12 ymm registers.
typealias MicroAccumulators = InlineArray<12, FloatVector>
/// One k step of the packed B micro-panel: 16 floats = 2 ymm registers.
typealias MicroBRow = InlineArray<2, FloatVector>
/// A square tile of W vectors of W floats, transposed in registers when packing.
typealias TransposeTile = InlineArray<8, FloatVector>
/// Two vectors side by side, for the even/odd unzip of the transpose.
typealias DoubleVector = SIMD16<Float>
#else
/// A square tile of W vectors of W floats, transposed in registers when packing.
typealias TransposeTile = InlineArray<4, FloatVector>
/// Two vectors side by side, for the even/odd unzip of the transpose.
typealias DoubleVector = SIMD8<Float>
/// The micro-tile's accumulators: microRows x (microColumns / 4) = 8 x 3 = 24 q registers.
typealias MicroAccumulators = InlineArray<24, FloatVector>
/// One k step of the packed B micro-panel: 12 floats = 3 q registers.
typealias MicroBRow = InlineArray<3, FloatVector>
#endif

extension GEMM {
    /// The fast path: packed panels, register-blocked micro-kernel, multi-threaded.
    /// Same contract as `naive`: row-major C[M,N] = alpha * op(A) * op(B) + beta * C, where
    /// beta == 0 overwrites C without reading it. Nothing outside the M x N window of C (with
    /// stride ldc) is written. Performs no heap allocation: packing goes to
    /// `context.packBuffer(participant)`.
    /// Work is split over `context.threads` participants by contiguous NR-aligned column ranges
    /// (or MR-aligned row ranges when N is small); block sizes depend only on the shape, so the
    /// result is bit-for-bit the same for any thread count.
    public static func simd(
        transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, context: KernelContext
    ) {
        if m <= 0 || n <= 0 { return }
        if k <= 0 {
            // Nothing to multiply: C = beta * C (the naive twin does exactly that).
            naive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let mr = microRows, nr = microColumns
        let rowPanels = (m + mr - 1) / mr
        let columnPanels = (n + nr - 1) / nr
        // Threads only pay off above ~256K multiply-adds each (waking a worker costs microseconds).
        var participants = participantsFor(work: m * n * k, threads: context.threads)
        // Split the larger of M and N, as long as it has a panel for every participant: each
        // participant packs the whole of the other operand, so the smaller one is duplicated.
        let splitColumns = (n >= m && columnPanels >= participants) || rowPanels < participants
        participants = min(participants, splitColumns ? columnPanels : rowPanels)

        let shape = makeShape(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, wide: context.wideKernels)
        context.pool.run(tasks: participants, threads: participants,
                         SIMDShare(shape: shape, context: context, m: m, n: n, rowPanels: rowPanels,
                                   columnPanels: columnPanels, participants: participants, splitColumns: splitColumns))
    }

    /// The block sizes (KC, MC, NC) for an M x K A, from the shape only (never from the thread
    /// count).
    @inline(__always)
    static func blockSizes(m: Int, k: Int) -> (kc: Int, mc: Int, nc: Int) {
        let mr = microRows, nr = microColumns
        let kc = kBlockSize(k)
        // The A block gets the whole packed-A buffer (~L2/4): mc = packAFloats / kc rows at most,
        // so a short K gives a tall block (one block for all of M when it fits).
        let mcLimit = max(mr, packAFloats / kc / mr * mr)
        let mBlocks = (m + mcLimit - 1) / mcLimit
        let mc = ((m + mBlocks - 1) / mBlocks + mr - 1) / mr * mr
        // The B panel (kc x nc) is sized to stay in L2 next to the A block: for small M it is
        // reused by few row panels, so it must not round-trip through L3.
        let nc = max(nr, min(blockN, packBCacheFloats / kc / nr * nr))
        return (kc, mc, nc)
    }

    /// The problem with its block sizes (`blockSizes`).
    @inline(__always)
    static func makeShape(transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int, alpha: Float,
                          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                          c: UnsafeMutablePointer<Float>, ldc: Int, wide: Bool) -> Shape {
        let (kc, mc, nc) = blockSizes(m: m, k: k)
        return Shape(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                     a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, kc: kc, mc: mc, nc: nc, wide: wide)
    }

    /// `simd` on the calling thread only, packing into `pack` (`packFloatsPerThread` floats, 64-byte
    /// aligned): for kernels that already split their work over the pool (Winograd's 16 GEMMs per
    /// thread-private chunk). Same blocks and micro-kernel, so the same bits as `simd`.
    static func serial(transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int, alpha: Float,
                       a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
                       c: UnsafeMutablePointer<Float>, ldc: Int, wide: Bool, pack: UnsafeMutablePointer<Float>,
                       prepackedA: UnsafePointer<Float>? = nil) {
        if m <= 0 || n <= 0 || k <= 0 {
            naive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        var shape = makeShape(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, wide: wide)
        precondition(prepackedA == nil || transA == .none, "GEMM.serial: a prepacked A must be untransposed")
        shape.prepackedA = prepackedA
        runShare(shape, rows: 0..<m, columns: 0..<n, pack: pack)
    }

    /// One participant's part of `simd`: a contiguous range of column panels (or row panels).
    struct SIMDShare: ParallelTask {
        let shape: Shape
        // Not retained: the caller holds the context for the run, and a retain and release per
        // task from every thread would contend on one reference count.
        unowned(unsafe) let context: KernelContext
        let m: Int, n: Int
        let rowPanels: Int, columnPanels: Int, participants: Int
        let splitColumns: Bool
        var mr: Int { microRows }
        var nr: Int { microColumns }

        func run(task participant: Int) {
            let panels = splitColumns ? columnPanels : rowPanels
            let first = panels * participant / participants
            let last = panels * (participant + 1) / participants
            let pack = context.packBuffer(participant)
            if splitColumns {
                runShare(shape, rows: 0..<m, columns: (first * nr)..<min(last * nr, n), pack: pack)
            } else {
                runShare(shape, rows: (first * mr)..<min(last * mr, m), columns: 0..<n, pack: pack)
            }
        }
    }

    /// C[m, columns] = A[m, k] x B (or C += when `accumulate`) where B is never stored: `packer`
    /// writes each NR-column micro-panel of B for a K block just before the micro-kernel runs
    /// down it (the implicit convolutions). Row-major A with lda k, C with ldc columns, m at most
    /// `blockM` (one packed A block). The GEMM's own K blocks and micro-kernel, so C is bit for
    /// bit what `simd` gives on the same B; threads take contiguous ranges of panels.
    static func panelGEMM<Packer: BPanelPacker>(
        m: Int, columns: Int, k: Int, a: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, accumulate: Bool,
        context: KernelContext, packer: Packer
    ) {
        let nr = microColumns
        let kc = kBlockSize(k)
        let panels = (columns + nr - 1) / nr
        let participants = min(participantsFor(work: m * columns * k, threads: context.threads), panels)
        // b is unused: the packer stands for it.
        let shape = Shape(transA: .none, transB: .none, m: m, n: columns, k: k, alpha: 1, a: a, lda: k, b: a, ldb: 0,
                          beta: 0, c: c, ldc: columns, kc: kc, mc: m, nc: nr, wide: context.wideKernels)
        context.pool.run(tasks: participants, threads: participants,
                         PanelShare(shape: shape, context: context, packer: packer, m: m, columns: columns, k: k, kc: kc,
                                    panels: panels, participants: participants, accumulate: accumulate))
    }

    /// One participant's part of `panelGEMM`: a contiguous range of column panels, each packed
    /// by its own copy of the packer.
    struct PanelShare<Packer: BPanelPacker>: ParallelTask {
        let shape: Shape
        // Not retained: the caller holds the context for the run, and a retain and release per
        // task from every thread would contend on one reference count.
        unowned(unsafe) let context: KernelContext
        let packer: Packer
        let m: Int, columns: Int, k: Int, kc: Int
        let panels: Int, participants: Int
        let accumulate: Bool
        var nr: Int { microColumns }

        func run(task participant: Int) {
            let (packA, packB, edge) = packParts(context.packBuffer(participant))
            let firstPanel = panels * participant / participants
            let lastPanel = panels * (participant + 1) / participants
            var packer = packer
            var p0 = 0
            while p0 < k {
                let kcHere = min(kc, k - p0)
                let beta: Float = p0 == 0 && !accumulate ? 0 : 1
                packABlock(shape, p0: p0, kc: kcHere, i0: 0, mc: m, into: packA)
                packer.start(atPanel: firstPanel)
                for panel in firstPanel..<lastPanel {
                    let j0 = panel * nr
                    let width = min(nr, columns - j0)
                    packer.pack(p0: p0, kc: kcHere, panel: panel, columns: width, into: packB)
                    computeColumnPanel(shape, aBlock: packA, i0: 0, mc: m, bPanel: packB, column: j0,
                                       columns: width, kc: kcHere, beta: beta, edge: edge)
                }
                p0 += kcHere
            }
        }
    }

    /// Participants for `work` multiply-adds: threads only pay off above ~256K each (waking a
    /// worker costs microseconds).
    @inline(__always)
    static func participantsFor(work: Int, threads: Int) -> Int { min(threads, max(1, work / (256 * 1024))) }

    /// The K block for a reduced dimension k: K split into equal blocks of at most KC (k = 288
    /// is one block, not 256 + 32). Shape-only, so sums are the same for any thread count.
    @inline(__always)
    static func kBlockSize(_ k: Int) -> Int {
        let kBlocks = (k + blockK - 1) / blockK
        return (k + kBlocks - 1) / kBlocks
    }

    /// A participant's packing buffer split into the packed A block, the packed B panel and the
    /// edge tile (each part 64-byte aligned; see `packFloatsPerThread`).
    @inline(__always)
    static func packParts(_ pack: UnsafeMutablePointer<Float>)
        -> (a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>, edge: UnsafeMutablePointer<Float>) {
        let b = pack + (packAFloats + 15) / 16 * 16
        return (pack, b, b + (packBFloats + 15) / 16 * 16)
    }

    /// The problem, passed by value to each participant.
    struct Shape {
        var transA: Transpose, transB: Transpose
        var m: Int, n: Int, k: Int
        var alpha: Float
        var a: UnsafePointer<Float>, lda: Int
        var b: UnsafePointer<Float>, ldb: Int
        var beta: Float
        var c: UnsafeMutablePointer<Float>, ldc: Int
        var kc: Int, mc: Int, nc: Int
        /// Run the AVX-512 micro-kernels (`KernelContext.wideKernels`).
        var wide: Bool
        /// A already packed by `prepackA` (every K block and M block): runShare reads the blocks
        /// instead of packing them.
        var prepackedA: UnsafePointer<Float>? = nil
    }

    /// Where A block (p0, i0) sits in a `prepackA` buffer of an M x K A with blocks KC x MC:
    /// blocks of MC (rounded up to MR) x KC floats, K blocks outer.
    @inline(__always)
    static func prepackedOffset(m: Int, kc: Int, mc: Int, p0: Int, i0: Int) -> Int {
        let blockFloats = (mc + microRows - 1) / microRows * microRows * kc
        return ((p0 / kc) * ((m + mc - 1) / mc) + i0 / mc) * blockFloats
    }

    /// Floats `prepackA` writes for an untransposed M x K matrix A.
    public static func prepackedAFloats(m: Int, k: Int) -> Int {
        let (kc, mc, _) = blockSizes(m: m, k: k)
        return prepackedOffset(m: m, kc: kc, mc: mc, p0: (k + kc - 1) / kc * kc, i0: 0)
    }

    /// Packs every A block of the untransposed M x K matrix `a` (row stride `lda`) as `runShare`
    /// would, for `serial(prepackedA:)` calls that reuse one A on many B (Winograd's transformed
    /// weights). Writes `prepackedAFloats(m:k:)` floats.
    static func prepackA(m: Int, k: Int, a: UnsafePointer<Float>, lda: Int, into packed: UnsafeMutablePointer<Float>) {
        let s = makeShape(transA: .none, transB: .none, m: m, n: 1, k: k, alpha: 1, a: a, lda: lda,
                          b: a, ldb: 1, beta: 0, c: packed, ldc: 1, wide: false)
        var p0 = 0
        while p0 < k {
            var i0 = 0
            while i0 < m {
                packABlock(s, p0: p0, kc: min(s.kc, k - p0), i0: i0, mc: min(s.mc, m - i0),
                           into: packed + prepackedOffset(m: m, kc: s.kc, mc: s.mc, p0: p0, i0: i0))
                i0 += s.mc
            }
            p0 += s.kc
        }
    }

    /// A block (p0, i0): from the prepacked buffer, or packed into `scratch` now.
    @inline(__always)
    static func aBlock(_ s: Shape, p0: Int, kc: Int, i0: Int, mc: Int, scratch: UnsafeMutablePointer<Float>)
        -> UnsafeMutablePointer<Float> {
        if let prepacked = s.prepackedA {
            return UnsafeMutablePointer(mutating: prepacked + prepackedOffset(m: s.m, kc: s.kc, mc: s.mc, p0: p0, i0: i0))
        }
        packABlock(s, p0: p0, kc: kc, i0: i0, mc: mc, into: scratch)
        return scratch
    }

    /// One participant's loop nest over its block of C (rows and columns start MR/NR aligned).
    /// Either loop order sums every element of C over the K blocks in ascending order with the
    /// same micro-kernel, so the result does not depend on which one runs.
    static func runShare(_ s: Shape, rows: Range<Int>, columns: Range<Int>, pack: UnsafeMutablePointer<Float>) {
        let nr = microColumns
        let (packA, packB, edge) = packParts(pack)
        if rows.count <= s.mc {
            // All rows fit one A block: pack each K block of A once, then stream B one
            // micro-panel at a time (packed right before use, so it is hot in L1 and never
            // needs to be kept: B is packed exactly once).
            var p0 = 0
            while p0 < s.k {
                let kc = min(s.kc, s.k - p0)
                let beta: Float = p0 == 0 ? s.beta : 1
                let aBlock = aBlock(s, p0: p0, kc: kc, i0: rows.lowerBound, mc: rows.count, scratch: packA)
                var j = columns.lowerBound
                while j < columns.upperBound {
                    let cols = min(nr, columns.upperBound - j)
                    packBPanel(s, p0: p0, kc: kc, j0: j, nc: cols, into: packB)
                    computeColumnPanel(s, aBlock: aBlock, i0: rows.lowerBound, mc: rows.count, bPanel: packB,
                                       column: j, columns: cols, kc: kc, beta: beta, edge: edge)
                    j += nr
                }
                p0 += kc
            }
            return
        }
        var j0 = columns.lowerBound
        while j0 < columns.upperBound {
            let nc = min(s.nc, columns.upperBound - j0)
            var p0 = 0
            while p0 < s.k {
                let kc = min(s.kc, s.k - p0)
                // beta applies once: later K blocks accumulate onto the partial result.
                let beta: Float = p0 == 0 ? s.beta : 1
                var i0 = rows.lowerBound
                while i0 < rows.upperBound {
                    let mc = min(s.mc, rows.upperBound - i0)
                    let aBlock = aBlock(s, p0: p0, kc: kc, i0: i0, mc: mc, scratch: packA)
                    var jr = 0
                    while jr < nc {
                        let cols = min(nr, nc - jr)
                        // The B panel is packed one micro-panel at a time during the first row
                        // block, right before its first use, while it is hot in L1.
                        if i0 == rows.lowerBound {
                            packBPanel(s, p0: p0, kc: kc, j0: j0 + jr, nc: cols, into: packB + jr * kc)
                        }
                        computeColumnPanel(s, aBlock: aBlock, i0: i0, mc: mc, bPanel: packB + jr * kc,
                                           column: j0 + jr, columns: cols, kc: kc, beta: beta, edge: edge)
                        jr += nr
                    }
                    i0 += mc
                }
                p0 += kc
            }
            j0 += nc
        }
    }

    /// Runs the micro-kernel down one B micro-panel: rows i0 ..< i0 + mc of C (the packed A
    /// block), columns column ..< column + columns (at most NR). Edge tiles go through `edge`.
    @inline(__always)
    static func computeColumnPanel(_ s: Shape, aBlock: UnsafeMutablePointer<Float>, i0: Int, mc: Int,
                                   bPanel: UnsafeMutablePointer<Float>, column: Int, columns: Int, kc: Int,
                                   beta: Float, edge: UnsafeMutablePointer<Float>) {
        let mr = microRows, nr = microColumns
        #if arch(x86_64)
        if s.wide && columns == nr {
            // AVX-512: 12 x 16 tiles (two A panels per B load), ending in one 18 x 16 tile when
            // 13-18 rows are left or at most one 6 x 16 tile;
            // partial row panels store only their valid rows straight into C (the zero rows of
            // the packed panel are computed and dropped), with the same arithmetic as storeEdge.
            var ir = 0
            while ir < mc {
                let left = mc - ir
                // 13-18 rows left (all of M = 16): one 18-row tile instead of 12 + 6.
                let panels = left > 2 * mr && left <= 3 * mr ? 3 : min(2, (left + mr - 1) / mr)
                wideMicroKernel(panels: panels, kc: kc, a: UnsafePointer(aBlock + ir * kc), b: UnsafePointer(bPanel),
                                rows: min(left, panels * mr), c: s.c + (i0 + ir) * s.ldc + column, ldc: s.ldc,
                                alpha: s.alpha, beta: beta)
                ir += panels * mr
            }
            return
        }
        #endif
        var ir = 0
        while ir < mc {
            let rowsHere = min(mr, mc - ir)
            let aPanel = UnsafePointer(aBlock + ir * kc)
            let target = s.c + (i0 + ir) * s.ldc + column
            if rowsHere == mr && columns == nr {
                microKernel(kc: kc, a: aPanel, b: UnsafePointer(bPanel), c: target, ldc: s.ldc,
                            alpha: s.alpha, beta: beta)
            } else if columns == nr {
                // The last, partial row panel (M = 16 leaves 4 rows of a 6-row AVX2 tile): only
                // its valid rows are computed and stored, straight into C.
                partialRowsKernel(rows: rowsHere, kc: kc, a: aPanel, b: UnsafePointer(bPanel), c: target, ldc: s.ldc,
                                  alpha: s.alpha, beta: beta)
            } else {
                microKernel(kc: kc, a: aPanel, b: UnsafePointer(bPanel), c: edge, ldc: nr, alpha: 1, beta: 0)
                storeEdge(edge, rows: rowsHere, columns: columns, into: target, ldc: s.ldc,
                          alpha: s.alpha, beta: beta)
            }
            ir += mr
        }
    }

    /// Copies the valid `rows x columns` part of an edge tile into C: C = alpha * tile + beta * C,
    /// without reading C when beta == 0. Same arithmetic as the micro-kernel's store.
    @inline(never)
    static func storeEdge(_ tile: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
                          into c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
        let nr = microColumns
        for row in 0..<rows {
            let source = tile + row * nr
            let target = c + row * ldc
            if beta == 0 {
                for column in 0..<columns { target[column] = alpha * source[column] }
            } else if beta == 1 {
                for column in 0..<columns { target[column] = target[column].addingProduct(alpha, source[column]) }
            } else {
                for column in 0..<columns {
                    target[column] = (beta * target[column]).addingProduct(alpha, source[column])
                }
            }
        }
    }

    /// Packs op(B)[p0..<p0+kc, j0..<j0+nc] into NR-column micro-panels: panel q holds columns
    /// j0 + q*NR ..< j0 + (q+1)*NR as kc rows of NR floats; columns past N are zeros.
    static func packBPanel(_ s: Shape, p0: Int, kc: Int, j0: Int, nc: Int, into packed: UnsafeMutablePointer<Float>) {
        let nr = microColumns
        let width = FloatVector.scalarCount
        var jr = 0
        while jr < nc {
            let cols = min(nr, nc - jr)
            let column0 = j0 + jr
            let dst = packed + jr * kc
            if s.transB == .none {
                // B stored K x N: each k row of the panel is contiguous in B.
                var src = s.b + p0 * s.ldb + column0
                if cols == nr {
                    for p in 0..<kc {
                        let row = dst + p * nr
                        var v = 0
                        while v < nr { row.storeVector(src.loadVector(at: v), at: v); v += width }
                        src += s.ldb
                    }
                } else {
                    for p in 0..<kc {
                        let row = dst + p * nr
                        for column in 0..<cols { row[column] = src[column] }
                        for column in cols..<nr { row[column] = 0 }
                        src += s.ldb
                    }
                }
            } else {
                // B stored N x K: column `column0 + j` of op(B) is row `column0 + j` of B.
                packTransposed(source: s.b + column0 * s.ldb + p0, ld: s.ldb, lines: cols, width: nr,
                               count: kc, into: dst)
            }
            jr += nr
        }
    }

    /// Packs op(A)[i0..<i0+mc, p0..<p0+kc] into MR-row micro-panels: panel holds rows
    /// i0 + q*MR ..< i0 + (q+1)*MR as kc columns of MR floats; rows past M are zeros.
    static func packABlock(_ s: Shape, p0: Int, kc: Int, i0: Int, mc: Int, into packed: UnsafeMutablePointer<Float>) {
        let mr = microRows
        var ir = 0
        while ir < mc {
            let rows = min(mr, mc - ir)
            let row0 = i0 + ir
            let dst = packed + ir * kc
            if s.transA == .none {
                // A stored M x K: row `row0 + r` of op(A) is contiguous in A.
                packTransposed(source: s.a + row0 * s.lda + p0, ld: s.lda, lines: rows, width: mr,
                               count: kc, into: dst)
            } else {
                // A stored K x M: each k column of the panel is contiguous in A.
                var src = s.a + p0 * s.lda + row0
                for p in 0..<kc {
                    let column = dst + p * mr
                    for r in 0..<rows { column[r] = src[r] }
                    for r in rows..<mr { column[r] = 0 }
                    src += s.lda
                }
            }
            ir += mr
        }
    }

    /// Interleaves `lines` contiguous source lines (each `count` floats, `ld` apart) into a
    /// k-major micro-panel of `width` floats per step: dst[p * width + line] = src[line * ld + p].
    /// Lines past `lines` are zero-filled. Whole groups of W lines (W = vector width) are done
    /// W x W at a time with in-register transposes; the rest element by element.
    @inline(__always)
    static func packTransposed(source: UnsafePointer<Float>, ld: Int, lines: Int, width: Int, count: Int,
                               into dst: UnsafeMutablePointer<Float>) {
        let w = FloatVector.scalarCount
        var line0 = 0
        if lines == width && width % w == 0 {
            while line0 < lines {
                var p = 0
                while p + w <= count {
                    var tile = TransposeTile(repeating: .zero)
                    for l in 0..<w { tile[l] = (source + (line0 + l) * ld).loadVector(at: p) }
                    transpose(&tile)
                    for q in 0..<w { dst.storeVector(tile[q], at: (p + q) * width + line0) }
                    p += w
                }
                while p < count {
                    for l in 0..<w { dst[p * width + line0 + l] = source[(line0 + l) * ld + p] }
                    p += 1
                }
                line0 += w
            }
            return
        }
        for line in 0..<lines {
            let src = source + line * ld
            var out = dst + line
            for p in 0..<count { out.pointee = src[p]; out += width }
        }
        if lines < width {
            for p in 0..<count {
                for line in lines..<width { dst[p * width + line] = 0 }
            }
        }
    }

    /// Transposes a W x W tile in registers: log2(W) rounds of unzipping row pairs into their
    /// even and odd lanes (each round rotates the element index bits (row, column) by one).
    @inline(__always)
    static func transpose(_ tile: inout TransposeTile) {
        let w = FloatVector.scalarCount
        let half = w / 2
        var rounds = 0
        var size = 1
        while size < w { size *= 2; rounds += 1 }
        for _ in 0..<rounds {
            var next = tile
            for i in 0..<half {
                let pair = DoubleVector(lowHalf: tile[2 * i], highHalf: tile[2 * i + 1])
                next[i] = pair.evenHalf
                next[i + half] = pair.oddHalf
            }
            tile = next
        }
    }

    /// The micro-kernel: the MR x NR tile C = alpha * A_panel * B_panel + beta * C, where the
    /// packed A panel holds kc steps of MR floats and the packed B panel kc steps of NR floats.
    /// beta == 0 writes C without reading it.
    ///
    /// Register budget: x86_64 AVX2 (16 ymm): 6 x 16 tile = 12 accumulators + 2 B vectors +
    /// 1 broadcast of A = 15 registers. aarch64 NEON (32 q): 8 x 12 tile = 24 accumulators +
    /// 3 B vectors + A broadcasts = 27-29 registers.
    @inline(never)
    static func microKernel(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
        microKernelBody(rows: microRows, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
    }

    /// The micro-kernel for a partial row panel: the first `rows` (1 ..< MR) rows of the tile,
    /// reading the packed A panel at its full MR-float stride. Each computed element gets the
    /// same fused multiply-adds in the same order as in `microKernel`, so C is bit for bit what
    /// `microKernel` into the edge tile plus `storeEdge` gave, without the rows of zeros (an M =
    /// 16 layer on AVX2 computed 18 rows) and without the copy through the edge tile.
    @inline(never)
    static func partialRowsKernel(rows: Int, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                  c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
        // One specialisation per row count, so the row loops unroll as in `microKernel`.
        switch rows {
        case 1: microKernelBody(rows: 1, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        case 2: microKernelBody(rows: 2, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        case 3: microKernelBody(rows: 3, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        case 4: microKernelBody(rows: 4, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        case 5: microKernelBody(rows: 5, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        #if arch(arm64)
        case 6: microKernelBody(rows: 6, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        case 7: microKernelBody(rows: 7, kc: kc, a: a, b: b, c: c, ldc: ldc, alpha: alpha, beta: beta)
        #endif
        default: preconditionFailure("GEMM.partialRowsKernel: rows \(rows) not in 1 ..< \(microRows)")
        }
    }

    /// The body of both micro-kernels: rows x NR of the MR x NR tile (rows a constant after
    /// inlining; the packed A panel keeps its MR-float stride).
    @inline(__always)
    static func microKernelBody(rows mr: Int, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
        let stride = microRows
        let nr = microColumns
        let width = FloatVector.scalarCount
        let vectors = nr / width
        var acc = MicroAccumulators(repeating: .zero)
        var pa = a
        var pb = b
        // One k step: load NR floats of B, broadcast each of the MR floats of A, MR x NR/W FMAs.
        // (LLVM keeps this loop rolled; a manual unroll measured no faster.)
        for _ in 0..<kc {
            var bRow = MicroBRow(repeating: .zero)
            for v in 0..<vectors { bRow[v] = pb.loadVector(at: v * width) }
            #if arch(arm64)
            // NEON: the MR = 8 floats of A as two vector loads, each used by lane
            // (`fmla v.4s, v.4s, v.s[lane]`), instead of a scalar load per row: 3 B + 1 A load
            // instructions per 24 FMAs rather than 3 + 5 (decode-bound on 3-wide cores such as
            // the Cortex-A72). The same fused multiply-adds in the same order: bit-identical.
            let aLow = pa.loadVector(at: 0), aHigh = pa.loadVector(at: width)
            for r in 0..<mr {
                let ar = FloatVector(repeating: r < width ? aLow[r] : aHigh[r - width])
                for v in 0..<vectors {
                    acc[r * vectors + v] = acc[r * vectors + v].addingProduct(ar, bRow[v])
                }
            }
            #else
            for r in 0..<mr {
                let ar = FloatVector(repeating: pa[r])
                for v in 0..<vectors {
                    acc[r * vectors + v] = acc[r * vectors + v].addingProduct(ar, bRow[v])
                }
            }
            #endif
            pa += stride
            pb += nr
        }
        let alphaV = FloatVector(repeating: alpha)
        if beta == 0 {
            for r in 0..<mr {
                for v in 0..<vectors { c.storeVector(alphaV * acc[r * vectors + v], at: r * ldc + v * width) }
            }
        } else if beta == 1 {
            for r in 0..<mr {
                for v in 0..<vectors {
                    let offset = r * ldc + v * width
                    c.storeVector(c.loadVector(at: offset).addingProduct(alphaV, acc[r * vectors + v]), at: offset)
                }
            }
        } else {
            let betaV = FloatVector(repeating: beta)
            for r in 0..<mr {
                for v in 0..<vectors {
                    let offset = r * ldc + v * width
                    c.storeVector((betaV * c.loadVector(at: offset)).addingProduct(alphaV, acc[r * vectors + v]),
                                  at: offset)
                }
            }
        }
    }
}

/// Writes the B micro-panels of `GEMM.panelGEMM`. Each participant works on its own copy.
protocol BPanelPacker {
    /// A K block starts; the participant's panels begin at `panel`.
    mutating func start(atPanel panel: Int)
    /// Packs B[p0 ..< p0 + kc, panel's NR columns] k-major into `dst` (kc rows of NR floats;
    /// columns past `columns` zero). Called for consecutive panels after `start`.
    mutating func pack(p0: Int, kc: Int, panel: Int, columns: Int, into dst: UnsafeMutablePointer<Float>)
}

extension GEMM {
    /// `leitner bench gemm`'s micro-kernel row: `calls` micro-kernel calls on one packed A
    /// panel (kc x MR, or 2 x MR rows for the AVX-512 kernel when `wide`) and one packed B
    /// panel (kc x NR), all in L1, writing one tile of C (beta 0). The FLOPs are
    /// 2 * rows * NR * kc per call; returns the rows of the tile computed per call. Not used in
    /// training: it times the register tile alone, against which llvm-mca's figure is checked.
    @inline(never)
    public static func microKernelLoop(calls: Int, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                       c: UnsafeMutablePointer<Float>, wide: Bool) -> Int {
        #if arch(x86_64)
        if wide {
            for _ in 0..<calls {
                wideMicroKernel(panels: 2, kc: kc, a: a, b: b, rows: 2 * microRows, c: c, ldc: microColumns,
                                alpha: 1, beta: 0)
            }
            return 2 * microRows
        }
        #endif
        for _ in 0..<calls {
            microKernel(kc: kc, a: a, b: b, c: c, ldc: microColumns, alpha: 1, beta: 0)
        }
        return microRows
    }
}
