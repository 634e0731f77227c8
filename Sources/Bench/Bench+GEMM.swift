import Platform
import Kernels
#if LEITNER_OPENBLAS
import COpenBLAS
#endif

/// `leitner bench gemm`: GEMM.simd on the shapes the models use, against its naive twin and
/// (with `--traits OpenBLAS`) against OpenBLAS's cblas_sgemm, measured in the same run.
enum GEMMBench {
    struct Case {
        var name: String
        var transA: Transpose
        var transB: Transpose
        var m: Int, n: Int, k: Int
    }

    static let cases: [Case] = [
        Case(name: "square A*B", transA: .none, transB: .none, m: 512, n: 512, k: 512),
        Case(name: "conv fwd A*B", transA: .none, transB: .none, m: 64, n: 12544, k: 288),
        Case(name: "conv fwd A*B", transA: .none, transB: .none, m: 128, n: 3136, k: 576),
        Case(name: "conv dX A^T*B", transA: .transposed, transB: .none, m: 288, n: 12544, k: 64),
        Case(name: "conv dW A*B^T", transA: .none, transB: .transposed, m: 64, n: 288, k: 12544),
    ]

    /// Multiply-adds the naive twin is timed on: it runs on the first rows of op(A) only
    /// (M reduced so that M*N*K is about this) and its time is scaled up by M / reduced M.
    static let naiveWork = 4_000_000

    /// Interleaved measurement rounds per case; figures are medians over rounds.
    static let rounds = 5

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }

    static func run(seconds: Double, threads: Int = 2) {
        let threads = max(threads, 1)
        guard let single = try? KernelContext(threads: 1), let multi = try? KernelContext(threads: threads) else {
            print("gemm: cannot create the thread pool")
            return
        }
        var maxA = 0, maxB = 0, maxC = 0
        for c in cases { maxA = max(maxA, c.m * c.k); maxB = max(maxB, c.k * c.n); maxC = max(maxC, c.m * c.n) }
        let a = UnsafeMutablePointer<Float>.allocate(capacity: maxA)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: maxB)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: maxC)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        BenchSupport.fill(a, count: maxA, seed: 1)
        BenchSupport.fill(b, count: maxB, seed: 2)
        BenchSupport.fill(c, count: maxC, seed: 3)

        let peak = BenchSupport.peakGFLOPSPerCore()
        print("")
        print("gemm: C = op(A)*op(B) (row-major, alpha 1, beta 0); GFLOP/s = 2MNK / s. Each case: \(rounds) interleaved rounds")
        print("  of (ours 1t, ours \(threads)t, OpenBLAS 1t), each a median over ~\(BenchSupport.format(seconds / Double(rounds), decimals: 2)) s; figures and ratios are medians over rounds.")
        print("  naive: timed on M reduced to ~\(naiveWork / 1_000_000)M multiply-adds, scaled by work. \(threads)t: \(threads) threads.")
        #if LEITNER_OPENBLAS
        print("  OpenBLAS: cblas_sgemm with openblas_set_num_threads(1), same buffers, same run; ours/BLAS = BLAS time / our time.")
        let blasHeader = Format.pad("BLAS GF/s", 10) + Format.pad("ours/BLAS", 10)
        #else
        print("  (build with --traits OpenBLAS for the OpenBLAS columns)")
        let blasHeader = ""
        #endif
        print(Format.padRight("case", 15) + Format.pad("M", 5) + Format.pad("N", 7) + Format.pad("K", 7)
              + Format.pad("ms", 9) + Format.pad("GFLOP/s", 9) + Format.pad("%peak", 7)
              + Format.pad("x naive", 9) + Format.pad("\(threads)t GF/s", 10) + Format.pad("\(threads)t/1t", 7)
              + blasHeader)

        for item in cases {
            let (m, n, k) = (item.m, item.n, item.k)
            let lda = item.transA == .none ? k : m
            let ldb = item.transB == .none ? n : k
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            // Interleaved rounds (ours 1 thread, ours N threads, OpenBLAS): on a shared, noisy
            // machine the per-round ratios are steadier than separately measured medians.
            var one = [Double](repeating: 0, count: rounds), many = one, blas = one
            for round in 0..<rounds {
                one[round] = BenchSupport.medianSeconds(targetSeconds: seconds / Double(rounds)) {
                    GEMM.simd(transA: item.transA, transB: item.transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
                              b: b, ldb: ldb, beta: 0, c: c, ldc: n, context: single)
                }
                many[round] = BenchSupport.medianSeconds(targetSeconds: seconds / Double(rounds)) {
                    GEMM.simd(transA: item.transA, transB: item.transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda,
                              b: b, ldb: ldb, beta: 0, c: c, ldc: n, context: multi)
                }
                #if LEITNER_OPENBLAS
                openblas_set_num_threads(1)
                blas[round] = BenchSupport.medianSeconds(targetSeconds: seconds / Double(rounds)) {
                    cblas_sgemm(CblasRowMajor, item.transA == .none ? CblasNoTrans : CblasTrans,
                                item.transB == .none ? CblasNoTrans : CblasTrans,
                                Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(n))
                }
                #endif
            }
            let oneSeconds = median(one)
            let multiSeconds = median(many)
            let naiveM = max(1, min(m, naiveWork / max(n * k, 1)))
            let naiveSeconds = BenchSupport.medianSeconds(targetSeconds: min(seconds, 0.2), minimumRuns: 3) {
                GEMM.naive(transA: item.transA, transB: item.transB, m: naiveM, n: n, k: k, alpha: Float(1),
                           a: UnsafePointer(a), lda: lda, b: UnsafePointer(b), ldb: ldb, beta: 0, c: c, ldc: n)
            } * Double(m) / Double(naiveM)
            let gflops = flops / oneSeconds / 1e9
            let multiGflops = flops / multiSeconds / 1e9
            var speedups = one
            for round in 0..<rounds { speedups[round] = one[round] / many[round] }
            var line = Format.padRight(item.name, 15) + Format.pad(String(m), 5)
                + Format.pad(String(n), 7) + Format.pad(String(k), 7)
                + Format.pad(BenchSupport.format(oneSeconds * 1e3, decimals: 2), 9)
                + Format.pad(BenchSupport.format(gflops, decimals: 1), 9)
                + Format.pad(BenchSupport.percentOfPeak(gflops, peak: peak), 7)
                + Format.pad(BenchSupport.format(naiveSeconds / oneSeconds, decimals: 0), 9)
                + Format.pad(BenchSupport.format(multiGflops, decimals: 1), 10)
                + Format.pad(BenchSupport.format(median(speedups), decimals: 2), 7)
            #if LEITNER_OPENBLAS
            var ratios = one
            for round in 0..<rounds { ratios[round] = blas[round] / one[round] }
            let blasGflops = flops / median(blas) / 1e9
            line += Format.pad(BenchSupport.format(blasGflops, decimals: 1), 10)
                + Format.pad(BenchSupport.format(median(ratios), decimals: 2), 10)
            #endif
            print(line)
        }

        microKernelRow(seconds: seconds, peak: peak, wide: single.wideKernels)
        partialPanelRow(seconds: seconds, a: a, b: b, c: c, context: single)

        #if LEITNER_OPENBLAS
        // OpenBLAS's own threads, measured last: its workers spin after a call and would steal
        // the second core from the single-thread measurements above.
        if threads > 1 {
            print("OpenBLAS with \(threads) threads (measured after the table):")
            openblas_set_num_threads(Int32(threads))
            for item in cases {
                let (m, n, k) = (item.m, item.n, item.k)
                let lda = item.transA == .none ? k : m
                let ldb = item.transB == .none ? n : k
                let blasSeconds = BenchSupport.medianSeconds(targetSeconds: seconds) {
                    cblas_sgemm(CblasRowMajor, item.transA == .none ? CblasNoTrans : CblasTrans,
                                item.transB == .none ? CblasNoTrans : CblasTrans,
                                Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(n))
                }
                print(Format.padRight(item.name, 15) + Format.pad(String(m), 5)
                      + Format.pad(String(n), 7) + Format.pad(String(k), 7)
                      + Format.pad(BenchSupport.format(2.0 * Double(m * n * k) / blasSeconds / 1e9, decimals: 1), 9)
                      + " GFLOP/s")
            }
            openblas_set_num_threads(1)
        }
        #endif
    }
}

extension GEMMBench {
    /// The micro-kernel alone: one register tile over packed panels that stay in L1 (kc = 256),
    /// no packing and no C traffic beyond one tile per call: what llvm-mca models in
    /// `tools/board-model`. The rounds' median, and their spread.
    static func microKernelRow(seconds: Double, peak: Double, wide: Bool) {
        let kc = 256, calls = 64
        let a = UnsafeMutablePointer<Float>.allocate(capacity: 32 * kc)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: 32 * kc)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: 32 * 32)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        BenchSupport.fill(a, count: 32 * kc, seed: 4)
        BenchSupport.fill(b, count: 32 * kc, seed: 5)
        var rows = 0
        var times = [Double](repeating: 0, count: rounds)
        for round in 0..<rounds {
            times[round] = BenchSupport.medianSeconds(targetSeconds: min(seconds, 0.4) / Double(rounds)) {
                rows = GEMM.microKernelLoop(calls: calls, kc: kc, a: a, b: b, c: c, wide: wide)
            }
        }
        let columns = GEMM.microColumns
        let flops = 2.0 * Double(rows * columns * kc * calls)
        let sorted = times.sorted()
        let gflops = flops / median(times) / 1e9
        print("micro-kernel alone (\(rows)x\(columns) tile, kc \(kc), packed panels in L1, \(rounds) rounds): "
              + "\(BenchSupport.format(gflops, decimals: 1)) GFLOP/s, \(BenchSupport.percentOfPeak(gflops, peak: peak))% of peak "
              + "(rounds \(BenchSupport.format(flops / sorted[sorted.count - 1] / 1e9, decimals: 1))-"
              + "\(BenchSupport.format(flops / sorted[0] / 1e9, decimals: 1)))")
    }

    /// resnet8's 16-channel 3x3 layer as a GEMM (M 16, N 12544, K 144, one thread) against the
    /// same GEMM with M rounded up to a multiple of MR (18 on AVX2): the partial row panel
    /// computes only its rows, so the time ratio should approach 16 / 18. Interleaved rounds,
    /// the median ratio and its range. Nothing to show where MR divides 16 (NEON) or the
    /// AVX-512 kernel runs (it computes its edge tiles in full).
    static func partialPanelRow(seconds: Double, a: UnsafeMutablePointer<Float>, b: UnsafeMutablePointer<Float>,
                                c: UnsafeMutablePointer<Float>, context: KernelContext) {
        let m = 16, n = 12544, k = 144, mr = GEMM.microRows
        let padded = (m + mr - 1) / mr * mr
        guard padded > m && !context.wideKernels else { return }
        var ratios = [Double](repeating: 0, count: rounds)
        for round in 0..<rounds {
            let exact = BenchSupport.medianSeconds(targetSeconds: min(seconds, 0.4) / Double(2 * rounds)) {
                GEMM.simd(transA: .none, transB: .none, m: m, n: n, k: k, alpha: 1, a: a, lda: k,
                          b: b, ldb: n, beta: 0, c: c, ldc: n, context: context)
            }
            let full = BenchSupport.medianSeconds(targetSeconds: min(seconds, 0.4) / Double(2 * rounds)) {
                GEMM.simd(transA: .none, transB: .none, m: padded, n: n, k: k, alpha: 1, a: a, lda: k,
                          b: b, ldb: n, beta: 0, c: c, ldc: n, context: context)
            }
            ratios[round] = exact / full
        }
        let sorted = ratios.sorted()
        print("partial row panel: time of M \(m) over M \(padded) (N \(n), K \(k), 1 thread, \(rounds) rounds): "
              + "\(BenchSupport.format(median(ratios), decimals: 3)) (rounds \(BenchSupport.format(sorted[0], decimals: 3))-"
              + "\(BenchSupport.format(sorted[sorted.count - 1], decimals: 3)); rows alone \(BenchSupport.format(Double(m) / Double(padded), decimals: 3)))")
    }
}
