// The GEMM micro-kernel for x86_64 CPUs with AVX-512, in a module of its own because Swift has
// no per-function target attributes: Package.swift compiles this module (and only this one)
// with an AVX-512 target CPU, and `GEMM` calls in here only after checking at run time that
// the CPU has AVX-512 (`KernelContext.wideKernels`). Everything else stays AVX2+FMA, so one
// binary runs on both kinds of CPU.
//
// Each lane of a tile runs exactly the FMA chain of the AVX2 micro-kernel (start at zero, one
// fused multiply-add per k step in order, the same alpha/beta store), so the two kernels give
// bit-for-bit the same C: 16 floats per zmm instead of 8 per ymm changes only how many lanes
// run side by side. KernelsTests checks that bit for bit.
//
// Dependency-free on purpose: raw pointers in, raw pointers out. On aarch64 (and in the
// Embedded cross-builds, which compile it for the board's CPU) the module is empty or unused.

#if arch(x86_64)
/// 16 floats: one zmm register.
public typealias WideVector = SIMD16<Float>

@inline(__always)
func loadWide(_ p: UnsafePointer<Float>) -> WideVector {
    UnsafeRawPointer(p).loadUnaligned(as: WideVector.self)
}

@inline(__always)
func storeWide(_ v: WideVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: WideVector.self)
}

/// Stores the first `rows` accumulators (spilled once to `acc`) into C rows of 16 floats, `ldc`
/// apart: C = alpha * acc (beta 0, C not read), C + alpha * acc (beta 1), beta * C + alpha * acc.
@inline(__always)
func storeRows(_ acc: UnsafePointer<WideVector>, rows: Int, c: UnsafeMutablePointer<Float>,
               ldc: Int, alpha: Float, beta: Float) {
    let alphaV = WideVector(repeating: alpha)
    if beta == 0 {
        for r in 0..<rows { storeWide(alphaV * acc[r], c + r * ldc) }
    } else if beta == 1 {
        for r in 0..<rows {
            let target = c + r * ldc
            storeWide(loadWide(target).addingProduct(alphaV, acc[r]), target)
        }
    } else {
        let betaV = WideVector(repeating: beta)
        for r in 0..<rows {
            let target = c + r * ldc
            storeWide((betaV * loadWide(target)).addingProduct(alphaV, acc[r]), target)
        }
    }
}

/// A 12 x 16 tile from two consecutive packed 6-row A panels (`a`: kc steps of 6 floats, then
/// the next panel's kc steps) and one packed 16-column B micro-panel (kc steps of 16 floats):
/// 12 zmm accumulators, one B load and 12 embedded-broadcast FMAs per k step. Stores the first
/// `rows` (7...12) rows of the tile into C.
@inline(never)
public func wideMicroKernel12x16(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, rows: Int,
                                 c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var acc = InlineArray<12, WideVector>(repeating: .zero)
    var pa0 = a
    var pa1 = a + 6 * kc
    var pb = b
    for _ in 0..<kc {
        let bv = loadWide(pb)
        for r in 0..<6 { acc[r] = acc[r].addingProduct(WideVector(repeating: pa0[r]), bv) }
        for r in 0..<6 { acc[6 + r] = acc[6 + r].addingProduct(WideVector(repeating: pa1[r]), bv) }
        pa0 += 6
        pa1 += 6
        pb += 16
    }
    let spilled = acc
    withUnsafePointer(to: spilled) { p in
        p.withMemoryRebound(to: WideVector.self, capacity: spilled.count) {
            storeRows($0, rows: rows, c: c, ldc: ldc, alpha: alpha, beta: beta)
        }
    }
}

/// An 18 x 16 tile from three consecutive packed 6-row A panels: 18 accumulators, one B load
/// and 18 embedded-broadcast FMAs per k step. Stores the first `rows` (13...18) rows. For
/// M = 16 it replaces a 12 x 16 and a latency-bound 6 x 16 call.
@inline(never)
public func wideMicroKernel18x16(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, rows: Int,
                                 c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var acc = InlineArray<18, WideVector>(repeating: .zero)
    var pa0 = a
    var pa1 = a + 6 * kc
    var pa2 = a + 12 * kc
    var pb = b
    for _ in 0..<kc {
        let bv = loadWide(pb)
        for r in 0..<6 { acc[r] = acc[r].addingProduct(WideVector(repeating: pa0[r]), bv) }
        for r in 0..<6 { acc[6 + r] = acc[6 + r].addingProduct(WideVector(repeating: pa1[r]), bv) }
        for r in 0..<6 { acc[12 + r] = acc[12 + r].addingProduct(WideVector(repeating: pa2[r]), bv) }
        pa0 += 6
        pa1 += 6
        pa2 += 6
        pb += 16
    }
    let spilled = acc
    withUnsafePointer(to: spilled) { p in
        p.withMemoryRebound(to: WideVector.self, capacity: spilled.count) {
            storeRows($0, rows: rows, c: c, ldc: ldc, alpha: alpha, beta: beta)
        }
    }
}

/// A 6 x 16 tile from one packed 6-row A panel and one 16-column B micro-panel; stores the first
/// `rows` (1...6) rows. (6 accumulators cannot hide the FMA latency: used for a last odd panel.)
@inline(never)
public func wideMicroKernel6x16(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, rows: Int,
                                c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var acc = InlineArray<6, WideVector>(repeating: .zero)
    var pa = a
    var pb = b
    for _ in 0..<kc {
        let bv = loadWide(pb)
        for r in 0..<6 { acc[r] = acc[r].addingProduct(WideVector(repeating: pa[r]), bv) }
        pa += 6
        pb += 16
    }
    let spilled = acc
    withUnsafePointer(to: spilled) { p in
        p.withMemoryRebound(to: WideVector.self, capacity: spilled.count) {
            storeRows($0, rows: rows, c: c, ldc: ldc, alpha: alpha, beta: beta)
        }
    }
}
#endif
