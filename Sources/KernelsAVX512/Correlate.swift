// The direct weight gradient's correlation tile (Kernels/Correlate.swift, `correlateTile`) with
// 16-lane vectors, for CPUs with AVX-512. Kernels' generic version cannot be specialised here
// (this module sits below Kernels), so this is the same loop written for `WideVector`: per lane
// the same FMA chain in the same order, and the same tree of halves for the lane sums, so the
// sums equal what `correlateTile(SIMD16<Float>.self, ...)` gives.

#if arch(x86_64)
/// sums[r * sumStride + tap] += sum over q in 0 ..< count of dOut[r * dOutStride + q] *
/// input[q + offsets.tap] for `rows` (1 or 2) output channels and the nine taps (`offsets` in
/// tap order ky * 3 + kx, Kernels' TapOffsets); count is a multiple of 16. For two rows, 18
/// accumulators, two dOut loads and nine input loads per 18 FMAs. (Three rows, 27 accumulators,
/// should fit the 32 zmm registers but LLVM spilled most of them: 2-3x slower.)
@inline(never)
public func wideCorrelateTile(rows: Int, dOut: UnsafePointer<Float>, dOutStride: Int, input: UnsafePointer<Float>,
                              offsets: (Int, Int, Int, Int, Int, Int, Int, Int, Int), count: Int,
                              sums: UnsafeMutablePointer<Float>, sumStride: Int) {
    switch rows {
    case 2:
        wideTile(rows: 2, dOut: dOut, dOutStride: dOutStride, input: input, offsets: offsets, count: count,
                 sums: sums, sumStride: sumStride)
    default:
        wideTile(rows: 1, dOut: dOut, dOutStride: dOutStride, input: input, offsets: offsets, count: count,
                 sums: sums, sumStride: sumStride)
    }
}

/// The body of `wideCorrelateTile`, inlined with a constant row count.
@inline(__always)
func wideTile(rows: Int, dOut: UnsafePointer<Float>, dOutStride: Int, input: UnsafePointer<Float>,
              offsets: (Int, Int, Int, Int, Int, Int, Int, Int, Int), count: Int,
              sums: UnsafeMutablePointer<Float>, sumStride: Int) {
    // Named accumulators (a runtime-indexed array of them was kept in memory by LLVM).
    var first = WideNineTaps(), second = WideNineTaps()
    var q = 0
    while q < count {
        let x = loadWide(dOut + q)
        let y = rows > 1 ? loadWide(dOut + dOutStride + q) : WideVector()
        first.accumulate(x, y, rows: rows, input + q, offsets, &second)
        q += WideVector.scalarCount
    }
    first.add(to: sums)
    if rows > 1 { second.add(to: sums + sumStride) }
}

/// The lane sum as a tree of halves: 16 -> 8 -> 4 -> 2 -> 1 (Kernels' `treeSum`).
@inline(__always)
func treeSum(_ v: WideVector) -> Float {
    let eight = v.lowHalf + v.highHalf
    let four = eight.lowHalf + eight.highHalf
    let two = four.lowHalf + four.highHalf
    return two.x + two.y
}

/// Nine zmm accumulators, one per 3x3 tap.
struct WideNineTaps {
    var t0 = WideVector(), t1 = WideVector(), t2 = WideVector(), t3 = WideVector(), t4 = WideVector()
    var t5 = WideVector(), t6 = WideVector(), t7 = WideVector(), t8 = WideVector()

    /// self += x * (each of the nine input vectors at p + offsets), and when rows > 1 also
    /// other += y * the same vectors: tap by tap, so one input vector is live at a time.
    @inline(__always)
    mutating func accumulate(_ x: WideVector, _ y: WideVector, rows: Int, _ p: UnsafePointer<Float>,
                             _ o: (Int, Int, Int, Int, Int, Int, Int, Int, Int), _ other: inout WideNineTaps) {
        @inline(__always) func tap(_ mine: inout WideVector, _ theirs: inout WideVector, _ offset: Int) {
            let v = loadWide(p + offset)
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
        sums[0] += treeSum(t0); sums[1] += treeSum(t1); sums[2] += treeSum(t2)
        sums[3] += treeSum(t3); sums[4] += treeSum(t4); sums[5] += treeSum(t5)
        sums[6] += treeSum(t6); sums[7] += treeSum(t7); sums[8] += treeSum(t8)
    }
}
#endif
