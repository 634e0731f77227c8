import Testing
import Kernels

/// Softmax cross-entropy: per-sample loss and correctness against an independent Double
/// computation, fast paths against naive twins, gradients against central differences.
@Suite struct LossTests {
    /// A fresh two-thread context per use: tests run concurrently and one ThreadPool must not
    /// be driven by two callers at once.
    static func makeContext() -> KernelContext { try! KernelContext(threads: 2) }

    static func labels(batch: Int, classes: Int, seed: UInt64) -> [Int32] {
        var random = SeededRandom(seed: seed)
        return (0..<batch).map { _ in Int32(random.next() % UInt64(classes)) }
    }

    /// Runs a kernel that writes UInt8 correctness into a guarded byte buffer, checks the guard
    /// bytes, and copies the flags into a Float output so `checkAgainstTwin` compares them.
    static func withCorrectness(batch: Int, into output: UnsafeMutablePointer<Float>, _ body: (UnsafeMutablePointer<UInt8>) -> Void) {
        let guardCount = 16
        let bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: batch + guardCount)
        defer { bytes.deallocate() }
        bytes.update(repeating: 0xAB, count: batch + guardCount)
        body(bytes)
        for index in 0..<guardCount {
            #expect(bytes[batch + index] == 0xAB, "correctness buffer overrun at guard byte \(index)")
        }
        for index in 0..<batch { output[index] = Float(bytes[index]) }
    }

    @Test func vectorExponentialIsAccurate() {
        // Relative error against Double exp over the softmax range [-87, 0] and a little above.
        let width = floatVectorWidth
        var worst = 0.0
        var argument: Float = -87
        while argument < 10 {
            var lanes = FloatVector(repeating: 0)
            for lane in 0..<width { lanes[lane] = argument + Float(lane) * 1e-3 }
            let result = exponential(lanes)
            for lane in 0..<width {
                let exact = Double.exponential(Double(lanes[lane]))
                worst = max(worst, abs(Double(result[lane]) - exact) / exact)
            }
            argument += 0.0371
        }
        #expect(worst < 5e-7, "vector exp relative error \(worst)")
        #expect(exponential(FloatVector(repeating: -1000)).max() < 1e-37)
        #expect(exponential(FloatVector(repeating: 0)) == FloatVector(repeating: 1))
    }

    @Test func perSampleLossMatchesDoubleReference() {
        let context = Self.makeContext()
        for classes in [2, 7, 10, floatVectorWidth + 1, 33] {
            let batch = 9
            var random = SeededRandom(seed: UInt64(classes))
            let logits = random.floats(batch * classes, -5, 5)
            let labels = Self.labels(batch: batch, classes: classes, seed: UInt64(classes))
            var losses = [Float](repeating: -1, count: batch)
            var correct = [UInt8](repeating: 7, count: batch)
            SoftmaxCrossEntropy.forward(losses: &losses, correct: &correct, logits: logits, labels: labels,
                                        batch: batch, classes: classes, context: context)
            for sample in 0..<batch {
                let row = (0..<classes).map { Double(logits[sample * classes + $0]) }
                // -log softmax[label], directly: log(sum e^z) - z[label] (|z| <= 5, no overflow).
                let expected = Double.logarithm(row.map { Double.exponential($0) }.reduce(0, +)) - row[Int(labels[sample])]
                #expect(abs(Double(losses[sample]) - expected) < 1e-5 * max(1, expected),
                        "classes \(classes) sample \(sample): loss \(losses[sample]), expected \(expected)")
                let argmax = row.indices.max { row[$0] < row[$1] || (row[$0] == row[$1] && $0 > $1) }!
                #expect(correct[sample] == (argmax == Int(labels[sample]) ? 1 : 0))
            }
        }
    }

    /// torch.argmax returns the first maximal index; a tie with the label counts as correct
    /// only when the label is that first index.
    @Test func correctnessTiesPickFirstMaximum() {
        let logits: [Float] = [1, 3, 3, 0,   1, 3, 3, 0,   5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
        let labels: [Int32] = [2, 1]
        var losses = [Float](repeating: 0, count: 2)
        var correct = [UInt8](repeating: 9, count: 2)
        SoftmaxCrossEntropy.forward(losses: &losses, correct: &correct, logits: logits, labels: labels, batch: 2, classes: 4)
        #expect(correct == [0, 1])
        var naiveLosses = [Float](repeating: 0, count: 2)
        var naiveCorrect = [UInt8](repeating: 9, count: 2)
        SoftmaxCrossEntropy.naiveForward(losses: &naiveLosses, correct: &naiveCorrect, logits: logits, labels: labels, batch: 2, classes: 4)
        #expect(naiveCorrect == [0, 1])
        // A row of 12 equal logits (longer than a vector): index 0 wins, loss is log 12.
        var wideLoss: [Float] = [0]
        var wideCorrect: [UInt8] = [9]
        SoftmaxCrossEntropy.forward(losses: &wideLoss, correct: &wideCorrect, logits: Array(logits[8...]), labels: [0], batch: 1, classes: 12)
        #expect(wideCorrect == [1])
        #expect(abs(wideLoss[0] - Float.logarithm(12)) < 1e-6)
    }

    @Test func largeLogitsGiveFiniteResults() {
        let context = Self.makeContext()
        let classes = 10, batch = 3
        var logits = [Float](repeating: 0, count: batch * classes)
        for index in logits.indices { logits[index] = index % 3 == 0 ? 1e4 : (index % 3 == 1 ? -1e4 : 5e3) }
        let labels: [Int32] = [0, 1, 2]
        for useFast in [true, false] {
            var losses = [Float](repeating: 0, count: batch)
            var correct = [UInt8](repeating: 0, count: batch)
            var dLogits = [Float](repeating: 0, count: batch * classes)
            if useFast {
                SoftmaxCrossEntropy.forwardBackward(losses: &losses, correct: &correct, dLogits: &dLogits, logits: logits, labels: labels,
                                                    weights: nil, batch: batch, classes: classes, scale: 1, context: context)
            } else {
                SoftmaxCrossEntropy.naiveForwardBackward(losses: &losses, correct: &correct, dLogits: &dLogits, logits: logits, labels: labels,
                                                         weights: nil, batch: batch, classes: classes, scale: 1)
            }
            #expect(losses.allSatisfy { $0.isFinite }, "fast \(useFast): \(losses)")
            #expect(dLogits.allSatisfy { $0.isFinite }, "fast \(useFast)")
            // Sample 0: label 0 holds 1e4, tied with logits 3, 6, 9: loss = log 4.
            #expect(abs(losses[0] - Float.logarithm(4)) < 1e-5)
            // Every sample against the stable formula in Double.
            for sample in 0..<batch {
                let row = (0..<classes).map { Double(logits[sample * classes + $0]) }
                let top = row.max()!
                let expected = top + Double.logarithm(row.map { Double.exponential($0 - top) }.reduce(0, +)) - row[Int(labels[sample])]
                #expect(abs(Double(losses[sample]) - expected) <= 1e-6 * max(1, expected), "fast \(useFast) sample \(sample)")
            }
        }
    }

    @Test func fastMatchesTwin() {
        let context = Self.makeContext()
        for batch in [1, 3, 300] {
            for (seed, classes) in ([2, 10] + oddSizes.filter { $0 > 1 }).enumerated() {
                let shape = "N \(batch) K \(classes)"
                var random = SeededRandom(seed: UInt64(seed))
                let logits = random.floats(batch * classes, -8, 8)
                let labels = Self.labels(batch: batch, classes: classes, seed: UInt64(seed))
                let weights = random.floats(batch, 0, 2)
                for weighted in [false, true] {
                    checkAgainstTwin("SoftmaxCrossEntropy.forwardBackward", shape: shape + " weighted \(weighted)", seed: UInt64(seed),
                                     outputCounts: [batch, batch, batch * classes]) { outputs, fast in
                        Self.withCorrectness(batch: batch, into: outputs[1]) { correct in
                            weights.withUnsafeBufferPointer { weightBuffer in
                                let weightPointer = weighted ? weightBuffer.baseAddress : nil
                                if fast {
                                    SoftmaxCrossEntropy.forwardBackward(losses: outputs[0], correct: correct, dLogits: outputs[2], logits: logits,
                                                                        labels: labels, weights: weightPointer, batch: batch, classes: classes,
                                                                        scale: 1 / Float(batch), context: context)
                                } else {
                                    SoftmaxCrossEntropy.naiveForwardBackward(losses: outputs[0], correct: correct, dLogits: outputs[2], logits: logits,
                                                                             labels: labels, weights: weightPointer, batch: batch, classes: classes,
                                                                             scale: 1 / Float(batch))
                                }
                            }
                        }
                    }
                }
                checkAgainstTwin("SoftmaxCrossEntropy.forward", shape: shape, seed: UInt64(seed), outputCounts: [batch, batch]) { outputs, fast in
                    Self.withCorrectness(batch: batch, into: outputs[1]) { correct in
                        if fast {
                            SoftmaxCrossEntropy.forward(losses: outputs[0], correct: correct, logits: logits, labels: labels,
                                                        batch: batch, classes: classes, context: context)
                        } else {
                            SoftmaxCrossEntropy.naiveForward(losses: outputs[0], correct: correct, logits: logits, labels: labels,
                                                             batch: batch, classes: classes)
                        }
                    }
                }
            }
        }
    }

    /// Without a context, and with one, the results are bit-identical (threading is by sample).
    @Test func threadingDoesNotChangeResults() {
        let context = Self.makeContext()
        let batch = 1000, classes = 10
        var random = SeededRandom(seed: 3)
        let logits = random.floats(batch * classes, -8, 8)
        let labels = Self.labels(batch: batch, classes: classes, seed: 3)
        let weights = random.floats(batch, 0, 2)
        func run(_ context: KernelContext?) -> [Float] {
            var losses = [Float](repeating: 0, count: batch)
            var correct = [UInt8](repeating: 0, count: batch)
            var dLogits = [Float](repeating: 0, count: batch * classes)
            SoftmaxCrossEntropy.forwardBackward(losses: &losses, correct: &correct, dLogits: &dLogits, logits: logits, labels: labels,
                                                weights: weights, batch: batch, classes: classes, scale: 0.001, context: context)
            return losses + dLogits + correct.map { Float($0) }
        }
        let differing = zip(run(nil), run(context)).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) values differ between serial and threaded runs")
    }

    /// L = scale * sum_i w_i * loss_i; the analytic dLogits of the naive twin in Double against
    /// central differences, with and without per-sample weights.
    @Test func gradientMatchesCentralDifferences() {
        let batch = 3, classes = 5
        var random = SeededRandom(seed: 99)
        var logits = (0..<batch * classes).map { _ in random.double(-3, 3) }
        let labels: [Int32] = [4, 0, 2]
        let sampleWeights = [2.0, 0.5, 1.25]
        let scale = 1.0 / 3.0
        for weighted in [false, true] {
            func total(_ logits: [Double]) -> Double {
                var losses = [Double](repeating: 0, count: batch)
                var correct = [UInt8](repeating: 0, count: batch)
                SoftmaxCrossEntropy.naiveForward(losses: &losses, correct: &correct, logits: logits, labels: labels,
                                                 batch: batch, classes: classes)
                return scale * (0..<batch).reduce(0) { $0 + (weighted ? sampleWeights[$1] : 1) * losses[$1] }
            }
            var losses = [Double](repeating: 0, count: batch)
            var correct = [UInt8](repeating: 0, count: batch)
            var dLogits = [Double](repeating: 0, count: batch * classes)
            sampleWeights.withUnsafeBufferPointer { buffer in
                SoftmaxCrossEntropy.naiveForwardBackward(losses: &losses, correct: &correct, dLogits: &dLogits, logits: logits,
                                                         labels: labels, weights: weighted ? buffer.baseAddress : nil,
                                                         batch: batch, classes: classes, scale: scale)
            }
            let (error, index) = finiteDifferenceError(x: &logits, analytic: dLogits, loss: total)
            #expect(error < 1e-8, "softmax CE gradient (weighted \(weighted)): error \(error) at \(index)")
        }
    }

    /// A label outside 0..<classes stops the process instead of reading past the row.
    @Test func labelOutOfRangeIsAPreconditionFailure() async {
        await #expect(processExitsWith: .failure) {
            var losses: [Float] = [0]
            var correct: [UInt8] = [0]
            SoftmaxCrossEntropy.forward(losses: &losses, correct: &correct, logits: [1, 2, 3], labels: [3], batch: 1, classes: 3)
        }
        await #expect(processExitsWith: .failure) {
            var losses: [Float] = [0]
            var correct: [UInt8] = [0]
            SoftmaxCrossEntropy.forward(losses: &losses, correct: &correct, logits: [1, 2, 3], labels: [-1], batch: 1, classes: 3)
        }
    }
}
