import Foundation
import Testing
import TestSupport
import Kernels

/// GEMM.simd against the naive twin: every transpose combination, odd shapes, shapes past each
/// block size, strided leading dimensions, alpha/beta variants, 1-3 threads.
@Suite struct GEMMTests {
    /// The bench's micro-kernel row times `GEMM.microKernelLoop`: its tile must be the product
    /// of the packed panels (A k-major in panels of MR rows, B k-major NR wide), for the AVX2 /
    /// NEON tile and, where the CPU has it, the AVX-512 one.
    @Test func microKernelLoopComputesThePanelProduct() throws {
        let kc = 37, mr = GEMM.microRows, nr = GEMM.microColumns
        var a = [Float](repeating: 0, count: 2 * mr * kc), b = [Float](repeating: 0, count: kc * nr)
        var state: UInt32 = 12345
        func next() -> Float { state = state &* 1664525 &+ 1013904223; return Float(Int(state >> 9) % 2001 - 1000) / 1000 }
        for i in a.indices { a[i] = next() }
        for i in b.indices { b[i] = next() }
        for wide in [false, try KernelContext(threads: 1).wideKernels] {
            var c = [Float](repeating: .nan, count: 2 * mr * nr)
            let rows = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        GEMM.microKernelLoop(calls: 3, kc: kc, a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!, wide: wide)
                    }
                }
            }
            #expect(rows == (wide ? 2 * mr : mr))
            for r in 0..<rows {
                for j in 0..<nr {
                    var sum = 0.0
                    for k in 0..<kc { sum += Double(a[(r / mr) * mr * kc + k * mr + r % mr]) * Double(b[k * nr + j]) }
                    #expect(abs(Double(c[r * nr + j]) - sum) <= 1e-5 * max(1, abs(sum)), "row \(r) column \(j) wide \(wide)")
                }
            }
        }
    }

    /// The partial row panel (`GEMM.partialRowsKernel`: M = 16 leaves 4 rows of a 6-row AVX2
    /// tile) against full tiles: the first m rows of C with A padded by extra rows up to a
    /// multiple of MR (every panel a full micro-kernel tile) are bit for bit those of the
    /// m-row product, for every remainder of m mod MR, beta 0, 1 and 0.5, with full and partial
    /// column panels and K in one and in two blocks.
    @Test func partialRowPanelsMatchFullTilesBitForBit() throws {
        let mr = GEMM.microRows, nr = GEMM.microColumns
        var state: UInt32 = 777
        func next() -> Float { state = state &* 1664525 &+ 1013904223; return Float(Int(state >> 9) % 2001 - 1000) / 1000 }
        let context = try KernelContext(threads: 1, wideKernels: false)
        var checked = 0
        for m in [16, 32, 64] + Array(1..<mr) + [mr + 1, 2 * mr - 1] {
            for (n, k) in [(3 * nr, 37), (2 * nr + 5, GEMM.blockK + 11)] {
                let padded = (m + mr - 1) / mr * mr
                guard padded > m else { continue }
                let a = (0..<(padded * k)).map { _ in next() }, b = (0..<(k * n)).map { _ in next() }
                let c0 = (0..<(padded * n)).map { _ in next() }
                for beta: Float in [0, 1, 0.5] {
                    var exact = c0, full = c0
                    a.withUnsafeBufferPointer { pa in
                        b.withUnsafeBufferPointer { pb in
                            exact.withUnsafeMutableBufferPointer { pc in
                                GEMM.simd(transA: .none, transB: .none, m: m, n: n, k: k, alpha: 1.25, a: pa.baseAddress!, lda: k,
                                          b: pb.baseAddress!, ldb: n, beta: beta, c: pc.baseAddress!, ldc: n, context: context)
                            }
                            full.withUnsafeMutableBufferPointer { pc in
                                GEMM.simd(transA: .none, transB: .none, m: padded, n: n, k: k, alpha: 1.25, a: pa.baseAddress!, lda: k,
                                          b: pb.baseAddress!, ldb: n, beta: beta, c: pc.baseAddress!, ldc: n, context: context)
                            }
                        }
                    }
                    let rowsDiffer = (0..<(m * n)).filter { exact[$0].bitPattern != full[$0].bitPattern }.count
                    #expect(rowsDiffer == 0, "m \(m) n \(n) k \(k) beta \(beta): \(rowsDiffer) elements differ")
                    // Rows past m are not written by the m-row product.
                    #expect(exact[(m * n)...] == c0[(m * n)...], "m \(m) wrote past its rows")
                    checked += 1
                }
            }
        }
        #expect(checked >= 3 * 2 * (mr - 1))
    }

    static let combos: [(Transpose, Transpose)] = [
        (.none, .none), (.transposed, .none), (.none, .transposed), (.transposed, .transposed),
    ]

    /// Sizes every shape is drawn from: 1, 7, 9, vector width +/- 1, 2*MR+1, NR+1, 33, 100.
    static let sizes: [Int] = [1, 7, 9, floatVectorWidth - 1, floatVectorWidth + 1,
                               2 * GEMM.microRows + 1, GEMM.microColumns + 1, 33, 100]

    /// 1, 2 and 3 threads; the 2-thread context forces the AVX2 micro-kernel, so on an AVX-512
    /// machine both micro-kernels meet every case (elsewhere all three run AVX2 / NEON).
    static func contexts() throws -> [KernelContext] {
        [try KernelContext(threads: 1), try KernelContext(threads: 2, wideKernels: false), try KernelContext(threads: 3)]
    }

    static func name(_ t: Transpose) -> String { t == .none ? "N" : "T" }

    /// One GEMM case: seeded A and B (op(A) m x k, op(B) k x n) stored with `pad` extra floats per
    /// line, C m x n with leading dimension n + pad; fast and naive compared by checkAgainstTwin.
    /// `nanFill`: prefill the C window with NaN (only meaningful with beta == 0).
    static func check(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int, pad: Int,
                      alpha: Float, beta: Float, context: KernelContext, seed: UInt64, nanFill: Bool = false,
                      sourceLocation: SourceLocation = #_sourceLocation) {
        let aRows = transA == .none ? m : k, aColumns = transA == .none ? k : m
        let bRows = transB == .none ? k : n, bColumns = transB == .none ? n : k
        let lda = aColumns + pad, ldb = bColumns + pad, ldc = n + pad
        var random = SeededRandom(seed: seed)
        let a = random.floats(aRows * lda)
        let b = random.floats(bRows * ldb)
        let shape = "\(name(transA))\(name(transB)) m \(m) n \(n) k \(k) lda \(lda) ldb \(ldb) ldc \(ldc) alpha \(alpha) beta \(beta) threads \(context.threads)\(nanFill ? " NaN-prefilled" : "")"
        checkAgainstTwin("GEMM", shape: shape, seed: seed, outputCounts: [m * ldc], sourceLocation: sourceLocation) { outputs, fast in
            let c = outputs[0]
            if nanFill {
                for row in 0..<m { for column in 0..<n { c[row * ldc + column] = .nan } }
            }
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    if fast {
                        GEMM.simd(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                  a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                                  beta: beta, c: c, ldc: ldc, context: context)
                    } else {
                        GEMM.naive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                                   a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                                   beta: beta, c: c, ldc: ldc)
                    }
                }
            }
        }
    }

    /// All m, n from the size list, k cycling through it, for every transpose combination;
    /// alpha, beta, padding and thread count cycle too so every value meets every combination.
    @Test(arguments: 0..<4)
    func oddShapesMatchNaive(combo: Int) throws {
        let (transA, transB) = Self.combos[combo]
        let contexts = try Self.contexts()
        let alphas: [Float] = [1, -0.5]
        let betas: [Float] = [0, 1, 0.3]
        var index = 0
        for (i, m) in Self.sizes.enumerated() {
            for (j, n) in Self.sizes.enumerated() {
                let k = Self.sizes[(i * 4 + j * 7 + combo) % Self.sizes.count]
                Self.check(transA, transB, m: m, n: n, k: k, pad: index % 3 == 0 ? 0 : index % 5 + 1,
                           alpha: alphas[index % 2], beta: betas[index % 3], context: contexts[index % 3],
                           seed: UInt64(1000 * combo + index))
                index += 1
            }
        }
    }

    /// Shapes past every block size: k > KC (several K blocks, beta applied once), m > MC
    /// (several A blocks: the blocked loop order), n > NC (several B panels per participant),
    /// with edges in every dimension.
    @Test(arguments: 0..<4)
    func shapesPastBlockSizesMatchNaive(combo: Int) throws {
        let (transA, transB) = Self.combos[combo]
        let contexts = try Self.contexts()
        let shapes: [(Int, Int, Int)] = [
            (GEMM.blockM + 7, 2 * GEMM.microColumns + 3, GEMM.blockK + 13),   // k > KC, one A block
            (2 * GEMM.microRows + 1, GEMM.blockN + 21, 37),                     // n > NC, one A block
            (GEMM.blockM * 2 + 5, 100, 2 * GEMM.blockK + 1),                  // m > MC, 3 K blocks, M split
            // kc = (KC + 13) / 2: MC = packed-A floats / kc < 300 rows and
            // NC = packBCacheFloats / kc < 500 columns, so all three loops have several blocks.
            (300, 500, GEMM.blockK + 13),
        ]
        for (index, (m, n, k)) in shapes.enumerated() {
            for (t, context) in contexts.enumerated() {
                Self.check(transA, transB, m: m, n: n, k: k, pad: 3, alpha: t == 1 ? -0.5 : 1,
                           beta: [0, 1, 0.3][(index + t) % 3], context: context,
                           seed: UInt64(5000 + 100 * combo + 10 * index + t))
            }
        }
    }

    /// beta == 0 must overwrite C without reading it: C prefilled with NaN gives no NaN.
    @Test(arguments: 0..<4)
    func betaZeroIgnoresNaNInC(combo: Int) throws {
        let (transA, transB) = Self.combos[combo]
        let contexts = try Self.contexts()
        let shapes: [(Int, Int, Int)] = [(7, 9, 33), (33, 100, 9), (100, 17, 100), (13, 33, GEMM.blockK + 1)]
        for (index, (m, n, k)) in shapes.enumerated() {
            for context in contexts {
                Self.check(transA, transB, m: m, n: n, k: k, pad: index, alpha: index % 2 == 0 ? 1 : -0.5,
                           beta: 0, context: context, seed: UInt64(7000 + 10 * combo + index), nanFill: true)
            }
        }
    }

    /// The split never changes any element's summation order: 1, 2 and 3 threads give the same
    /// bits, both when N is split (N >= M) and when M is split.
    @Test(arguments: 0..<4)
    func resultIsIdenticalForAnyThreadCount(combo: Int) throws {
        let (transA, transB) = Self.combos[combo]
        let contexts = try Self.contexts()
        let shapes: [(Int, Int, Int)] = [(100, 300, GEMM.blockK + 50), (333, 40, 200), (64, 1000, 72)]
        for (index, (m, n, k)) in shapes.enumerated() {
            let lda = (transA == .none ? k : m) + 1, ldb = (transB == .none ? n : k) + 2, ldc = n + 3
            var random = SeededRandom(seed: UInt64(9000 + 10 * combo + index))
            let a = random.floats((transA == .none ? m : k) * lda)
            let b = random.floats((transB == .none ? k : n) * ldb)
            let initial = random.floats(m * ldc)
            var results: [[Float]] = []
            for context in contexts {
                var c = initial
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        c.withUnsafeMutableBufferPointer { c in
                            GEMM.simd(transA: transA, transB: transB, m: m, n: n, k: k, alpha: -0.5,
                                      a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                                      beta: 0.3, c: c.baseAddress!, ldc: ldc, context: context)
                        }
                    }
                }
                results.append(c)
            }
            for t in 1..<results.count {
                let same = zip(results[0], results[t]).allSatisfy { $0.bitPattern == $1.bitPattern }
                #expect(same, "\(Self.name(transA))\(Self.name(transB)) m \(m) n \(n) k \(k): \(t + 1) threads differ from 1 thread")
            }
        }
    }

    /// The AVX-512 micro-kernels (12 x 16 and 6 x 16 tiles, partial row panels stored straight
    /// into C) give bit-for-bit the AVX2 micro-kernel's result: every M from 1 to 4 * MR + 1 (all
    /// row-edge cases of both tiles), N with and without a column edge, K past KC, every beta.
    @Test(.enabled(if: Requirement.runsOnHardware(Requirement.hasAVX512 && ProcessInfo.processInfo.environment["LEITNER_SIMD"] != "avx2"),
                   "this CPU has no AVX-512 (or LEITNER_SIMD=avx2): only the AVX2 micro-kernel runs here"))
    func wideMicroKernelMatchesAVX2BitForBit() throws {
        let wide = try KernelContext(threads: 2, wideKernels: true)
        try #require(wide.wideKernels, "the CPU reports avx512f but the kernel context did not select the AVX-512 kernels")
        let narrow = try KernelContext(threads: 2, wideKernels: false)
        #expect(!narrow.wideKernels)
        var cases = 0
        for m in 1...(4 * GEMM.microRows + 1) {
            for (index, (n, k)) in [(48, 9), (37, GEMM.blockK + 5), (2 * GEMM.microColumns, 64)].enumerated() {
                for (combo, (transA, transB)) in Self.combos.enumerated() where (m + combo) % 2 == 0 || index == 1 {
                    let beta: Float = [0, 1, 0.3][(m + index) % 3]
                    let lda = (transA == .none ? k : m) + 1, ldb = (transB == .none ? n : k) + 2, ldc = n + 3
                    var random = SeededRandom(seed: UInt64(11000 + 100 * m + 10 * index + combo))
                    let a = random.floats((transA == .none ? m : k) * lda)
                    let b = random.floats((transB == .none ? k : n) * ldb)
                    let initial = random.floats(m * ldc)
                    var results: [[Float]] = []
                    for context in [narrow, wide] {
                        var c = initial
                        a.withUnsafeBufferPointer { a in
                            b.withUnsafeBufferPointer { b in
                                c.withUnsafeMutableBufferPointer { c in
                                    GEMM.simd(transA: transA, transB: transB, m: m, n: n, k: k, alpha: -0.75,
                                              a: a.baseAddress!, lda: lda, b: b.baseAddress!, ldb: ldb,
                                              beta: beta, c: c.baseAddress!, ldc: ldc, context: context)
                                }
                            }
                        }
                        results.append(c)
                    }
                    let same = zip(results[0], results[1]).allSatisfy { $0.bitPattern == $1.bitPattern }
                    #expect(same, "\(Self.name(transA))\(Self.name(transB)) m \(m) n \(n) k \(k) beta \(beta): AVX-512 differs from AVX2")
                    cases += 1
                }
            }
        }
        #expect(cases > 100)
    }

    /// Degenerate shapes: k == 0 gives beta * C; m == 0 or n == 0 touches nothing.
    @Test func degenerateShapes() throws {
        let context = try KernelContext(threads: 2)
        for (m, n) in [(3, 5), (1, 1)] {
            Self.check(.none, .none, m: m, n: n, k: 0, pad: 1, alpha: 1, beta: 0.3, context: context, seed: 42)
            Self.check(.transposed, .none, m: m, n: n, k: 0, pad: 0, alpha: 1, beta: 0, context: context, seed: 43)
        }
        Self.check(.none, .none, m: 0, n: 5, k: 3, pad: 0, alpha: 1, beta: 0.3, context: context, seed: 44)
        Self.check(.none, .transposed, m: 4, n: 0, k: 3, pad: 0, alpha: 1, beta: 0.3, context: context, seed: 45)
    }
}
