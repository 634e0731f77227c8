import Kernels
import Platform

/// The GEMM and convolution checks of `leitner selftest`: the fast paths against their naive
/// twins on shapes with a tail in every dimension of the micro-tile, a leading dimension of C
/// larger than its row (ldc > n), and guard words around every output that must come back
/// bit for bit untouched. The same checks run natively and under qemu-aarch64, where they are
/// the NEON kernels' (8 x 12 tile, 4-float vectors) only test.
extension SelfTest {
    /// Guard word: a NaN with a recognisable payload, never produced by arithmetic.
    static let guardBits: UInt32 = 0x7FC0_DEAD
    /// Guard words before and after every output buffer.
    static let guardCount = 16
    /// Stored in the padding of A and B (columns past the operand's rows): a kernel that reads
    /// and uses one gives an error of that size.
    static let poison: Float = 1e6

    /// An output buffer with guard words on both sides; `pointer` is its first element.
    struct Guarded {
        var storage: [Float]
        let count: Int

        init(_ values: [Float]) {
            let guardWords = [Float](repeating: Float(bitPattern: SelfTest.guardBits), count: SelfTest.guardCount)
            storage = guardWords + values + guardWords
            count = values.count
        }

        mutating func withPointer(_ body: (UnsafeMutablePointer<Float>) -> Void) {
            storage.withUnsafeMutableBufferPointer { body($0.baseAddress! + SelfTest.guardCount) }
        }

        subscript(index: Int) -> Float { storage[SelfTest.guardCount + index] }

        /// Guard words before and after the buffer that were overwritten.
        var damagedGuards: Int {
            var damaged = 0
            for index in 0..<SelfTest.guardCount {
                if storage[index].bitPattern != SelfTest.guardBits { damaged += 1 }
                if storage[SelfTest.guardCount + count + index].bitPattern != SelfTest.guardBits { damaged += 1 }
            }
            return damaged
        }

        var values: [Float] { Array(storage[SelfTest.guardCount..<(SelfTest.guardCount + count)]) }
    }

    /// The worst case of a check: normalised error, writes outside the output, and where.
    struct Worst {
        var error: Float = 0
        var label = ""
        var strayWrites = 0
        var strayLabel = ""
        var cases = 0

        mutating func record(error: Float, stray: Int, _ label: @autoclosure () -> String) {
            cases += 1
            if !(error <= self.error) { self.error = error.isNaN ? .infinity : error; self.label = label() }
            if stray > 0 && strayWrites == 0 { strayLabel = label() }
            strayWrites += stray
        }

        func outcome(_ name: String, tolerance: Float) -> Outcome {
            var text = "\(cases) cases, worst normalised error \(error)"
            if error > tolerance { text += " at \(label) (tolerance \(tolerance))" }
            text += strayWrites == 0 ? ", every guard word intact" : ", \(strayWrites) guard words overwritten, first at \(strayLabel)"
            return Outcome(name: name, passed: error <= tolerance && strayWrites == 0, detail: text)
        }
    }

    /// m, n and k for the GEMM sweep: 1, 3, 7 (inside one micro-tile on both architectures),
    /// 13 (x86 6 + 6 + 1 rows, 12 + 1 NEON columns), 17 (16 + 1 x86 columns and NEON rows,
    /// 12 + 5 NEON columns), 33 (32 + 1, 24 + 9); in k they give the 4- and 8-float tails of
    /// the packing transposes.
    static let gemmSizes = [1, 3, 7, 13, 17, 33]

    /// Every (m, n, k) from `gemmSizes` and every transpose combination when `sweep`, plus
    /// shapes past the block sizes (two K blocks; two A blocks on NEON; a split over threads).
    /// A, B and C have leading dimensions larger than their rows in 3 of 4 cases; beta 0 cases
    /// prefill C with NaN (beta 0 must not read C).
    static func gemm(_ context: KernelContext, sweep: Bool) -> Outcome {
        var worst = Worst()
        var shapes: [(Int, Int, Int)] = []
        if sweep {
            for m in gemmSizes { for n in gemmSizes { for k in gemmSizes { shapes.append((m, n, k)) } } }
        }
        shapes += [(70, 33, 300), (64, 100, 288), (137, 29, 512)]
        let combos: [(Transpose, Transpose)] = [(.none, .none), (.transposed, .none), (.none, .transposed), (.transposed, .transposed)]
        for (shapeIndex, (m, n, k)) in shapes.enumerated() {
            for (comboIndex, (transA, transB)) in combos.enumerated() {
                // Each combination meets every padding, beta and alpha across the shapes.
                let pad = [0, 3, 1, 5][(shapeIndex + comboIndex) % 4]
                let beta: Float = [0, 1, 0.3][(shapeIndex + 2 * comboIndex) % 3]
                let alpha: Float = (shapeIndex / 2 + comboIndex) % 2 == 0 ? 1 : -0.5
                let aRows = transA == .none ? m : k, aColumns = transA == .none ? k : m
                let bRows = transB == .none ? k : n, bColumns = transB == .none ? n : k
                let lda = aColumns + pad, ldb = bColumns + pad, ldc = n + pad
                let seed = UInt64(1000 * shapeIndex + comboIndex)
                let a = padded(values(aRows * aColumns, seed: seed), rows: aRows, columns: aColumns, ld: lda, fill: poison)
                let b = padded(values(bRows * bColumns, seed: seed + 500), rows: bRows, columns: bColumns, ld: ldb, fill: poison)
                var window = values(m * n, seed: seed + 900)
                if beta == 0 { window = [Float](repeating: .nan, count: m * n) }
                var fast = Guarded(padded(window, rows: m, columns: n, ld: ldc, fill: Float(bitPattern: guardBits)))
                var naive = fast
                a.withUnsafeBufferPointer { a in
                    b.withUnsafeBufferPointer { b in
                        fast.withPointer { c in
                            GEMM.simd(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.baseAddress!, lda: lda,
                                      b: b.baseAddress!, ldb: ldb, beta: beta, c: c, ldc: ldc, context: context)
                        }
                        naive.withPointer { c in
                            GEMM.naive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a.baseAddress!, lda: lda,
                                       b: b.baseAddress!, ldb: ldb, beta: beta, c: c, ldc: ldc)
                        }
                    }
                }
                // The window against the twin; the padding columns and guard words untouched.
                var difference: Float = 0, scale: Float = 0, stray = fast.damagedGuards
                for row in 0..<m {
                    for column in 0..<ldc {
                        let index = row * ldc + column
                        if column >= n {
                            if fast[index].bitPattern != guardBits { stray += 1 }
                            continue
                        }
                        let gap = abs(fast[index] - naive[index])
                        difference = gap.isNaN ? .infinity : max(difference, gap)
                        scale = max(scale, abs(naive[index]))
                    }
                }
                let error = scale > 0 ? difference / scale : (difference > 0 ? 1 : 0)
                worst.record(error: error, stray: stray,
                             "m\(m) n\(n) k\(k) \(name(transA))\(name(transB)) lda \(lda) ldb \(ldb) ldc \(ldc) alpha \(alpha) beta \(beta)")
            }
        }
        let kernels = context.wideKernels ? "AVX-512" : "\(GEMM.microRows)x\(GEMM.microColumns)"
        return worst.outcome("GEMM.simd vs naive, \(kernels) micro-kernel, \(context.threads) thread(s)", tolerance: 1e-5)
    }

    static func name(_ transpose: Transpose) -> String { transpose == .none ? "N" : "T" }

    /// "N2 C3->5 9x7 k3x3 s1x1 p1x1".
    static func describe(_ shape: Conv2DShape) -> String {
        "N\(shape.batch) C\(shape.inChannels)->\(shape.outChannels) \(shape.inHeight)x\(shape.inWidth) "
            + "k\(shape.kernelHeight)x\(shape.kernelWidth) s\(shape.strideH)x\(shape.strideW) p\(shape.padH)x\(shape.padW)"
    }

    /// `values` (rows x columns) stored with leading dimension `ld`, the extra columns `fill`.
    static func padded(_ values: [Float], rows: Int, columns: Int, ld: Int, fill: Float) -> [Float] {
        var result = [Float](repeating: fill, count: rows * ld)
        for row in 0..<rows {
            for column in 0..<columns { result[row * ld + column] = values[row * columns + column] }
        }
        return result
    }

    /// Conv2D forward, backward data and backward weights against the naive twins, with the
    /// full and the minimum scratch, every output guarded. The shapes reach each path: im2col
    /// columns (one input channel; 5x5), the implicit 3x3 GEMM and its transposed backward
    /// data (odd planes, so NR-column panels straddle rows and images), the phased stride-2
    /// forward and the direct weight gradient (two-channel tiles with an odd channel left), 1x1.
    static func conv(_ context: KernelContext) -> Outcome {
        let shapes = [
            Conv2DShape(batch: 2, inChannels: 3, outChannels: 5, inHeight: 9, inWidth: 7, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
            Conv2DShape(batch: 3, inChannels: 2, outChannels: 4, height: 8, width: 8, kernel: 3, stride: 2, padding: 1),
            Conv2DShape(batch: 2, inChannels: 4, outChannels: 6, height: 7, width: 7, kernel: 1),
            Conv2DShape(batch: 2, inChannels: 4, outChannels: 6, height: 7, width: 7, kernel: 1, stride: 2),
            Conv2DShape(batch: 2, inChannels: 1, outChannels: 8, height: 10, width: 10, kernel: 3, padding: 1),
            Conv2DShape(batch: 1, inChannels: 3, outChannels: 2, height: 6, width: 5, kernel: 5, padding: 2),
            Conv2DShape(batch: 2, inChannels: 16, outChannels: 16, height: 28, width: 28, kernel: 3, padding: 1),
            Conv2DShape(batch: 3, inChannels: 2, outChannels: 3, inHeight: 11, inWidth: 13, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
            Conv2DShape(batch: 2, inChannels: 5, outChannels: 7, inHeight: 6, inWidth: 10, kernelHeight: 3, kernelWidth: 3,
                        strideH: 2, strideW: 2, padH: 1, padW: 1),
            Conv2DShape(batch: 1, inChannels: 17, outChannels: 13, height: 5, width: 5, kernel: 3, padding: 1),
        ]
        var worst = Worst()
        // One comparison: the fast and the naive kernel from the same starting values (NaN for a
        // pass that overwrites, so an element it skips shows), every guard word checked.
        func compare(_ label: String, start: [Float], fast: (UnsafeMutablePointer<Float>) -> Void,
                     naive: (UnsafeMutablePointer<Float>) -> Void) {
            var fastOut = Guarded(start), naiveOut = Guarded(start)
            fastOut.withPointer(fast)
            naiveOut.withPointer(naive)
            worst.record(error: error(fastOut.values, naiveOut.values), stray: fastOut.damagedGuards, label)
        }
        for (index, shape) in shapes.enumerated() {
            let input = values(shape.inputCount, seed: UInt64(100 + index))
            let weights = values(shape.weightCount, seed: UInt64(200 + index))
            let dOut = values(shape.outputCount, seed: UInt64(300 + index))
            for smallScratch in [false, true] {
                let scratchCount = smallScratch ? Conv2D.minimumScratchFloats(shape: shape)
                    : Conv2D.scratchFloats(shape: shape, threads: context.threads)
                var scratch = [Float](repeating: 0, count: max(scratchCount, 1))
                let label = describe(shape) + (smallScratch ? " minimum scratch" : "")
                compare("forward \(label)", start: [Float](repeating: .nan, count: shape.outputCount), fast: { out in
                    scratch.withUnsafeMutableBufferPointer {
                        Conv2D.forward(out: out, input: input, weights: weights, shape: shape,
                                       scratch: $0.baseAddress!, scratchCount: scratchCount, context: context)
                    }
                }, naive: { Conv2D.naiveForward(out: $0, input: input, weights: weights, shape: shape) })
                // The backward passes accumulate: start from the same values.
                compare("backward data \(label)", start: values(shape.inputCount, seed: 7), fast: { dInput in
                    scratch.withUnsafeMutableBufferPointer {
                        Conv2D.backwardData(dInput: dInput, dOut: dOut, weights: weights, shape: shape,
                                            scratch: $0.baseAddress!, scratchCount: scratchCount, context: context)
                    }
                }, naive: { Conv2D.naiveBackwardData(dInput: $0, dOut: dOut, weights: weights, shape: shape) })
                compare("backward weights \(label)", start: values(shape.weightCount, seed: 8), fast: { dWeights in
                    scratch.withUnsafeMutableBufferPointer {
                        Conv2D.backwardWeights(dWeights: dWeights, dOut: dOut, input: input, shape: shape,
                                               scratch: $0.baseAddress!, scratchCount: scratchCount, context: context)
                    }
                }, naive: { Conv2D.naiveBackwardWeights(dWeights: $0, dOut: dOut, input: input, shape: shape) })
            }
        }
        // Winograd F(2x2, 3x3), called directly (the dispatch takes it for some layers only, by
        // core): forward, and the flipped accumulating form backward data uses; odd sizes.
        let winogradShapes = [
            Conv2DShape(batch: 2, inChannels: 17, outChannels: 21, inHeight: 7, inWidth: 9, kernelHeight: 3, kernelWidth: 3, padH: 1, padW: 1),
            Conv2DShape(batch: 1, inChannels: 16, outChannels: 16, height: 14, width: 14, kernel: 3, padding: 1),
        ]
        for (index, shape) in winogradShapes.enumerated() {
            guard let transposed = Conv2D.transposedShape(shape) else { continue }
            let input = values(shape.inputCount, seed: UInt64(400 + index))
            let weights = values(shape.weightCount, seed: UInt64(500 + index))
            let dOut = values(shape.outputCount, seed: UInt64(600 + index))
            let scratchCount = Conv2D.winogradLayerScratchFloats(shape, threads: context.threads, takes: Conv2D.usesWinograd)
            var scratch = [Float](repeating: 0, count: max(scratchCount, 1))
            let label = "Winograd " + describe(shape)
            compare("forward \(label)", start: [Float](repeating: .nan, count: shape.outputCount), fast: { out in
                scratch.withUnsafeMutableBufferPointer {
                    Conv2D.forwardWinograd(out: out, input: input, weights: weights, shape: shape,
                                           scratch: $0.baseAddress!, scratchCount: scratchCount, context: context)
                }
            }, naive: { Conv2D.naiveForward(out: $0, input: input, weights: weights, shape: shape) })
            compare("backward data \(label)", start: values(shape.inputCount, seed: 9), fast: { dInput in
                scratch.withUnsafeMutableBufferPointer {
                    Conv2D.forwardWinograd(out: dInput, input: dOut, weights: weights, shape: transposed, flipped: true,
                                           accumulate: true, scratch: $0.baseAddress!, scratchCount: scratchCount,
                                           context: context)
                }
            }, naive: { Conv2D.naiveBackwardData(dInput: $0, dOut: dOut, weights: weights, shape: shape) })
        }
        return worst.outcome("Conv2D forward/backward vs naive (and Winograd), \(context.threads) thread(s)", tolerance: 1e-4)
    }
}
