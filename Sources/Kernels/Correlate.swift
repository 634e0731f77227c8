// The inner loop of the direct weight gradient of a 3x3 stride-1 pad-1 convolution
// (Conv2D.backwardWeightsDirect): for R output channels (1 or 2) and one input channel, the nine
// correlations sums[r][tap] += sum_q dOut_r[q] * input[q + shift(tap)] over zero-padded rows,
// with one vector accumulator per (r, tap) and a horizontal sum at the end.
//
// Generic over the vector type: Kernels specialises it for its own FloatVector (AVX2 / NEON).
// The 16-lane (AVX-512) tile is `wideCorrelateTile` in KernelsAVX512, the same FMA chain per lane.

/// A float vector that sums its lanes as a tree of halves (4 shuffle-adds for 16 lanes instead
/// of the 15 dependent scalar adds of `sum()`).
protocol TreeSummable: SIMD where Scalar == Float {
    func treeSum() -> Float
}

extension SIMD2: TreeSummable where Scalar == Float {
    @inline(__always) func treeSum() -> Float { x + y }
}

extension SIMD4: TreeSummable where Scalar == Float {
    @inline(__always) func treeSum() -> Float { (lowHalf + highHalf).treeSum() }
}

extension SIMD8: TreeSummable where Scalar == Float {
    @inline(__always) func treeSum() -> Float { (lowHalf + highHalf).treeSum() }
}

extension SIMD16: TreeSummable where Scalar == Float {
    @inline(__always) func treeSum() -> Float { (lowHalf + highHalf).treeSum() }
}

/// The nine input offsets of the taps, in tap order (ky * 3 + kx).
typealias TapOffsets = (Int, Int, Int, Int, Int, Int, Int, Int, Int)

/// sums[r * sumStride + tap] += sum over q in 0 ..< count of dOut[r * dOutStride + q] *
/// input[q + offsets.tap], for r in 0 ..< rows (1 or 2; a constant after inlining) and the nine
/// taps. count is a multiple of V.scalarCount; the caller guarantees that input can be read up
/// to count + (largest offset) + V.scalarCount floats.
/// Per q step the `rows` dOut vectors stay in registers while the nine shifted input vectors
/// are loaded one at a time (18 accumulators + 2 + 1 registers for two rows).
@inline(__always)
func correlateTile<V: TreeSummable>(_ vector: V.Type, rows: Int, dOut: UnsafePointer<Float>, dOutStride: Int,
                                    input: UnsafePointer<Float>, offsets: TapOffsets, count: Int,
                                    sums: UnsafeMutablePointer<Float>, sumStride: Int) {
    // Named accumulators (a runtime-indexed array of them was kept in memory by LLVM).
    var first = NineTaps<V>(), second = NineTaps<V>()
    var q = 0
    while q < count {
        let x = UnsafeRawPointer(dOut + q).loadUnaligned(as: V.self)
        let y = rows > 1 ? UnsafeRawPointer(dOut + dOutStride + q).loadUnaligned(as: V.self) : V()
        first.accumulate(x, y, rows: rows, input + q, offsets, &second)
        q += V.scalarCount
    }
    first.add(to: sums)
    if rows > 1 { second.add(to: sums + sumStride) }
}

/// Nine vector accumulators, one per 3x3 tap.
struct NineTaps<V: TreeSummable> {
    var t0 = V(), t1 = V(), t2 = V(), t3 = V(), t4 = V(), t5 = V(), t6 = V(), t7 = V(), t8 = V()

    @inline(__always) init() {}

    /// self += x * (each of the nine input vectors at p + offsets), and when rows > 1 also
    /// other += y * the same vectors: tap by tap, so one input vector is live at a time.
    @inline(__always)
    mutating func accumulate(_ x: V, _ y: V, rows: Int, _ p: UnsafePointer<Float>, _ o: TapOffsets,
                             _ other: inout NineTaps<V>) {
        @inline(__always) func tap(_ mine: inout V, _ theirs: inout V, _ offset: Int) {
            let v = UnsafeRawPointer(p + offset).loadUnaligned(as: V.self)
            mine = mine.addingProduct(x, v)
            if rows > 1 { theirs = theirs.addingProduct(y, v) }
        }
        tap(&t0, &other.t0, o.0); tap(&t1, &other.t1, o.1); tap(&t2, &other.t2, o.2)
        tap(&t3, &other.t3, o.3); tap(&t4, &other.t4, o.4); tap(&t5, &other.t5, o.5)
        tap(&t6, &other.t6, o.6); tap(&t7, &other.t7, o.7); tap(&t8, &other.t8, o.8)
    }

    /// sums[tap] += the lane sum of tap's accumulator.
    @inline(__always)
    func add(to sums: UnsafeMutablePointer<Float>) {
        sums[0] += t0.treeSum(); sums[1] += t1.treeSum(); sums[2] += t2.treeSum()
        sums[3] += t3.treeSum(); sums[4] += t4.treeSum(); sums[5] += t5.treeSum()
        sums[6] += t6.treeSum(); sums[7] += t7.treeSum(); sums[8] += t8.treeSum()
    }
}
