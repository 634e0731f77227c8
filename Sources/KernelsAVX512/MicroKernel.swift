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

/// A (6 * panels) x 16 tile, panels = 1, 2 or 3 consecutive packed 6-row A panels (each kc
/// steps of 6 floats) against one packed 16-column B micro-panel (kc steps of 16 floats):
/// 6 * panels zmm accumulators, one B load and 6 * panels embedded-broadcast FMAs per k step.
/// Stores the first `rows` rows of the tile into C. Two or three panels hide the FMA latency;
/// one (6 accumulators) is for a last odd panel. Three replace 12 + 6 rows for M = 16.
@inline(never)
public func wideMicroKernel(panels: Int, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, rows: Int,
                            c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    switch panels {
    case 3: microTile(panels: 3, kc: kc, a: a, b: b, rows: rows, c: c, ldc: ldc, alpha: alpha, beta: beta)
    case 2: microTile(panels: 2, kc: kc, a: a, b: b, rows: rows, c: c, ldc: ldc, alpha: alpha, beta: beta)
    default: microTile(panels: 1, kc: kc, a: a, b: b, rows: rows, c: c, ldc: ldc, alpha: alpha, beta: beta)
    }
}

/// The body of `wideMicroKernel`, inlined with a constant panel count.
@inline(__always)
func microTile(panels: Int, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, rows: Int,
               c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float) {
    var acc = InlineArray<18, WideVector>(repeating: .zero)
    let panelStride = 6 &* kc  // floats from one packed A panel to the next (wrapping: no checks in the loop)
    var pa = a
    var pb = b
    for _ in 0..<kc {
        let bv = loadWide(pb)
        for panel in 0..<panels {
            for r in 0..<6 {
                acc[6 * panel + r] = acc[6 * panel + r].addingProduct(WideVector(repeating: pa[panel &* panelStride &+ r]), bv)
            }
        }
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
