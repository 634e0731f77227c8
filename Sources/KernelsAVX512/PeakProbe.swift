// The FMA throughput probe of `leitner bench` at 512 bits: the "%peak" columns divide by the
// widest unit the kernels use, so on a CPU where the AVX-512 kernels run the peak is measured
// with 16-lane FMAs (a 256-bit probe there would understate the peak by up to half).

#if arch(x86_64)
/// GFLOP/s of one core running 12 independent 16-lane FMA chains for `iterations` rounds: one
/// trial (`leitner bench` takes the best of several). Call only where the CPU has AVX-512 (it
/// traps elsewhere).
@inline(never)
public func widePeakGFLOPS(iterations: Int, seconds now: () -> Double) -> Double {
    let x = WideVector(repeating: 0.999_999)
    var chains = InlineArray<12, WideVector>(repeating: WideVector(repeating: 1e-3))
    let start = now()
    for _ in 0..<iterations {
        for chain in 0..<12 { chains[chain] = chains[chain].addingProduct(chains[chain], x) }
    }
    let rate = Double(iterations * 12 * WideVector.scalarCount * 2) / (now() - start) / 1e9
    var total: Float = 0
    for chain in 0..<12 { total += chains[chain].sum() }
    // Keeps the chains alive: the sum is never negative.
    return total < 0 ? -rate : rate
}
#endif
