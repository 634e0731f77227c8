import Kernels
import NN
import Platform

/// The kernel checks compiled into the binary, so they run on a board and under emulation
/// (`leitner selftest`): every fast path against its naive twin on odd shapes (GEMM and conv
/// outputs guarded, C with ldc > n; see SelfTest+Kernels.swift; the backbone layer kinds in
/// SelfTest+Backbone.swift), the naive conv
/// gradients against central differences in Double, a whole-model directional derivative, and
/// the shared activation layout against separate buffers. A smaller mirror of the test suite.
public enum SelfTest {
    public struct Outcome {
        public let name: String
        public let passed: Bool
        public let detail: String
    }

    /// Runs every check; `report` sees each outcome as it completes.
    public static func run(threads: Int, report: (Outcome) -> Void) -> [Outcome] {
        var outcomes: [Outcome] = []
        func record(_ outcome: Outcome) { outcomes.append(outcome); report(outcome) }
        let contexts: [KernelContext]
        do { contexts = [try KernelContext(threads: 1), try KernelContext(threads: max(threads, 2))] }
        catch {
            record(Outcome(name: "kernel context", passed: false, detail: error.description))
            return outcomes
        }
        // The odd-shape sweep on one thread (the shapes are too small to split); on an AVX-512
        // machine also with the AVX2 micro-kernel. Shapes past the block sizes on both contexts.
        record(gemm(contexts[0], sweep: true))
        if contexts[0].wideKernels {
            do { record(gemm(try KernelContext(threads: 1, wideKernels: false), sweep: true)) }
            catch { record(Outcome(name: "kernel context", passed: false, detail: error.description)) }
        }
        record(gemm(contexts[1], sweep: false))
        for context in contexts { record(conv(context)) }
        record(pooling(contexts[1]))
        record(batchNorm(contexts[1]))
        record(softmax(contexts[1]))
        record(backboneKinds(contexts[1]))
        record(convGradient())
        record(modelGradient(contexts[1]))
        record(sharedLayout(contexts[1]))
        return outcomes
    }

    // MARK: - Helpers

    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in generator.uniform(-1, 1) }
    }

    /// max |fast - naive| / max |naive| (1 when the naive result is all zero but fast is not).
    static func error(_ fast: [Float], _ naive: [Float]) -> Float {
        var difference: Float = 0
        var scale: Float = 0
        for index in 0..<naive.count {
            let gap = abs(fast[index] - naive[index])
            difference = gap.isNaN ? .infinity : max(difference, gap)
            scale = max(scale, abs(naive[index]))
        }
        return scale > 0 ? difference / scale : (difference > 0 ? 1 : 0)
    }

    static func outcome(_ name: String, worst: Float, at label: String, tolerance: Float, cases: Int) -> Outcome {
        let text = "\(cases) cases, worst normalised error \(worst)" + (worst > tolerance ? " at \(label) (tolerance \(tolerance))" : "")
        return Outcome(name: name, passed: worst <= tolerance, detail: text)
    }

    // MARK: - Checks

    static func pooling(_ context: KernelContext) -> Outcome {
        let shape = Pool2DShape(channels: 3, batch: 2, height: 9, width: 8, kernel: 2)
        let input = values(shape.inputCount, seed: 11)
        var fast = [Float](repeating: 0, count: shape.outputCount)
        var naive = fast
        var fastIndices = [Int32](repeating: 0, count: shape.outputCount)
        var naiveIndices = fastIndices
        MaxPool2D.forward(out: &fast, indices: &fastIndices, input: input, shape: shape, context: context)
        MaxPool2D.naiveForward(out: &naive, indices: &naiveIndices, input: input, shape: shape)
        var worst = error(fast, naive)
        if fastIndices != naiveIndices { worst = .infinity }
        let dOut = values(shape.outputCount, seed: 12)
        var fastBack = [Float](repeating: 0, count: shape.inputCount)
        var naiveBack = fastBack
        MaxPool2D.backward(dInput: &fastBack, dOut: dOut, indices: fastIndices, shape: shape, context: context)
        MaxPool2D.naiveBackward(dInput: &naiveBack, dOut: dOut, indices: naiveIndices, shape: shape)
        worst = max(worst, error(fastBack, naiveBack))
        return outcome("MaxPool2D forward/backward vs naive", worst: worst, at: "\(shape)", tolerance: 0, cases: 2)
    }

    static func batchNorm(_ context: KernelContext) -> Outcome {
        let channels = 5, spatial = 2 * 7 * 9
        let input = values(channels * spatial, seed: 21).map { $0 * 3 + 0.5 }
        let gamma = values(channels, seed: 22).map { $0 + 1.5 }
        let beta = values(channels, seed: 23)
        var outputs = [[Float]](repeating: [Float](repeating: 0, count: channels * spatial), count: 2)
        var means = [[Float]](repeating: [Float](repeating: 0, count: channels), count: 2)
        var invStds = means
        var runningMeans = [[Float]](repeating: [Float](repeating: 0, count: channels), count: 2)
        var runningVariances = [[Float]](repeating: [Float](repeating: 1, count: channels), count: 2)
        BatchNorm.forwardTraining(output: &outputs[0], savedMean: &means[0], savedInvStd: &invStds[0],
                                  runningMean: &runningMeans[0], runningVariance: &runningVariances[0], input: input,
                                  gamma: gamma, beta: beta, channels: channels, spatial: spatial, context: context)
        BatchNorm.naiveForwardTraining(output: &outputs[1], savedMean: &means[1], savedInvStd: &invStds[1],
                                       runningMean: &runningMeans[1], runningVariance: &runningVariances[1], input: input,
                                       gamma: gamma, beta: beta, channels: channels, spatial: spatial)
        var worst = max(error(outputs[0], outputs[1]), error(runningVariances[0], runningVariances[1]))
        let dOutput = values(channels * spatial, seed: 24)
        var dInputs = [[Float]](repeating: [Float](repeating: 0, count: channels * spatial), count: 2)
        var dGammas = [[Float]](repeating: [Float](repeating: 0, count: channels), count: 2)
        var dBetas = dGammas
        BatchNorm.backward(dInput: &dInputs[0], dGamma: &dGammas[0], dBeta: &dBetas[0], dOutput: dOutput, savedMean: means[0],
                           savedInvStd: invStds[0], input: input, gamma: gamma, channels: channels, spatial: spatial, context: context)
        BatchNorm.naiveBackward(dInput: &dInputs[1], dGamma: &dGammas[1], dBeta: &dBetas[1], dOutput: dOutput, savedMean: means[1],
                                savedInvStd: invStds[1], input: input, gamma: gamma, channels: channels, spatial: spatial)
        worst = max(worst, error(dInputs[0], dInputs[1]), error(dGammas[0], dGammas[1]), error(dBetas[0], dBetas[1]))
        return outcome("BatchNorm training forward/backward vs naive", worst: worst, at: "C\(channels) spatial \(spatial)",
                       tolerance: 1e-5, cases: 2)
    }

    static func softmax(_ context: KernelContext) -> Outcome {
        let batch = 13, classes = 10
        let logits = values(batch * classes, seed: 31).map { $0 * 4 }
        var labels = [Int32](repeating: 0, count: batch)
        for sample in 0..<batch { labels[sample] = Int32(sample % classes) }
        let weights = values(batch, seed: 32).map { $0 + 1.5 }
        var losses = [[Float]](repeating: [Float](repeating: 0, count: batch), count: 2)
        var correct = [[UInt8]](repeating: [UInt8](repeating: 0, count: batch), count: 2)
        var gradients = [[Float]](repeating: [Float](repeating: 0, count: batch * classes), count: 2)
        SoftmaxCrossEntropy.forwardBackward(losses: &losses[0], correct: &correct[0], dLogits: &gradients[0], logits: logits,
                                            labels: labels, weights: weights, batch: batch, classes: classes,
                                            scale: 1 / Float(batch), context: context)
        SoftmaxCrossEntropy.naiveForwardBackward(losses: &losses[1], correct: &correct[1], dLogits: &gradients[1], logits: logits,
                                                 labels: labels, weights: weights, batch: batch, classes: classes,
                                                 scale: 1 / Float(batch))
        var worst = max(error(losses[0], losses[1]), error(gradients[0], gradients[1]))
        if correct[0] != correct[1] { worst = .infinity }
        return outcome("SoftmaxCrossEntropy vs naive", worst: worst, at: "batch \(batch)", tolerance: 1e-5, cases: 1)
    }

    /// The naive conv's two backward twins against central differences of its forward, in
    /// Double: the oracle itself checked.
    static func convGradient() -> Outcome {
        let shape = Conv2DShape(batch: 2, inChannels: 2, outChannels: 3, inHeight: 5, inWidth: 4, kernelHeight: 3,
                                kernelWidth: 2, strideH: 2, strideW: 1, padH: 1, padW: 1)
        var generator = SeededGenerator(seed: 41)
        var input = (0..<shape.inputCount).map { _ in Double(generator.uniform(-1, 1)) }
        var weights = (0..<shape.weightCount).map { _ in Double(generator.uniform(-1, 1)) }
        let lossWeights = (0..<shape.outputCount).map { _ in Double(generator.uniform(-1, 1)) }
        func loss() -> Double {
            var out = [Double](repeating: 0, count: shape.outputCount)
            Conv2D.naiveForward(out: &out, input: input, weights: weights, shape: shape)
            var sum = 0.0
            for index in 0..<out.count { sum += out[index] * lossWeights[index] }
            return sum
        }
        var dInput = [Double](repeating: 0, count: shape.inputCount)
        var dWeights = [Double](repeating: 0, count: shape.weightCount)
        Conv2D.naiveBackwardData(dInput: &dInput, dOut: lossWeights, weights: weights, shape: shape)
        Conv2D.naiveBackwardWeights(dWeights: &dWeights, dOut: lossWeights, input: input, shape: shape)
        let step = 1e-5
        var worst = 0.0
        for index in 0..<input.count {
            let saved = input[index]
            input[index] = saved + step
            let plus = loss()
            input[index] = saved - step
            let minus = loss()
            input[index] = saved
            worst = max(worst, abs((plus - minus) / (2 * step) - dInput[index]))
        }
        for index in 0..<weights.count {
            let saved = weights[index]
            weights[index] = saved + step
            let plus = loss()
            weights[index] = saved - step
            let minus = loss()
            weights[index] = saved
            worst = max(worst, abs((plus - minus) / (2 * step) - dWeights[index]))
        }
        return Outcome(name: "Conv2D naive gradients vs central differences (Double)", passed: worst < 1e-7,
                       detail: "\(input.count + weights.count) partial derivatives, worst absolute error \(worst)")
    }

    /// A small model with every layer kind the reference models use.
    static func smallModel() -> ModelDescription {
        var builder = ModelBuilder(name: "selftest", input: .spatial(2, 10, 10), classes: 5)
        let stem = builder.conv(ModelBuilder.input, out: 6, kernel: 3, padding: 1, bias: false)
        let activated = builder.relu(builder.batchNorm(stem))
        let branch = builder.conv(activated, out: 6, kernel: 3, padding: 1)
        let pooled = builder.maxPool(builder.relu(builder.add(branch, activated)), kernel: 2)
        let averaged = builder.avgPool(builder.conv(pooled, out: 8, kernel: 1), kernel: 2)
        let hidden = builder.relu(builder.linear(builder.flatten(averaged), out: 12))
        builder.linear(hidden, out: 5)
        return builder.description
    }

    static func fill(_ model: Model, batch: Int, seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for index in 0..<(batch * model.description.input.count) { model.input[index] = generator.uniform(-1, 1) }
        for sample in 0..<batch { model.labels[sample] = Int32(generator.below(model.description.classes)) }
    }

    /// (L(p + h d) - L(p - h d)) / 2h against <dL/dp, d> for one random direction d.
    static func modelGradient(_ context: KernelContext) -> Outcome {
        let batch = 6
        let model: Model
        do { model = try Model(smallModel(), batch: batch, context: context) }
        catch { return Outcome(name: "whole-model gradient", passed: false, detail: error.message) }
        model.initialize(seed: 3)
        fill(model, batch: batch, seed: 11)
        model.forwardBackward(batch: batch)
        var generator = SeededGenerator(seed: 99)
        var direction = [Float](repeating: 0, count: model.parameterCount)
        var analytic = 0.0
        for index in 0..<direction.count {
            direction[index] = generator.uniform(-1, 1)
            analytic += Double(direction[index]) * Double(model.gradients[index])
        }
        let original = (0..<model.parameterCount).map { model.parameters[$0] }
        func meanLoss(_ sign: Float) -> Double {
            for index in 0..<direction.count { model.parameters[index] = original[index] + sign * 1e-3 * direction[index] }
            model.forward(batch: batch, training: true)
            model.loss(batch: batch, gradient: false)
            var sum = 0.0
            for sample in 0..<batch { sum += Double(model.losses[sample]) }
            return sum / Double(batch)
        }
        let numeric = (meanLoss(1) - meanLoss(-1)) / 2e-3
        for index in 0..<direction.count { model.parameters[index] = original[index] }
        let relative = abs(numeric - analytic) / max(1e-3, abs(numeric), abs(analytic))
        return Outcome(name: "whole-model directional derivative", passed: relative < 2e-2 && abs(analytic) > 1e-4,
                       detail: "numeric \(numeric), analytic \(analytic), relative error \(relative)")
    }

    /// The shared activation layout against separate buffers: identical losses and gradients.
    static func sharedLayout(_ context: KernelContext) -> Outcome {
        let batch = 5
        let shared: Model
        let separate: Model
        do {
            shared = try Model(smallModel(), batch: batch, context: context)
            separate = try Model(smallModel(), batch: batch, context: context, sharedActivations: false)
        } catch {
            return Outcome(name: "shared activation layout", passed: false, detail: error.message)
        }
        var differing = 0
        for model in [shared, separate] {
            model.initialize(seed: 5)
            fill(model, batch: batch, seed: 40)
            model.forwardBackward(batch: batch)
        }
        for index in 0..<shared.parameterCount where shared.gradients[index] != separate.gradients[index] { differing += 1 }
        for sample in 0..<batch where shared.losses[sample] != separate.losses[sample] { differing += 1 }
        return Outcome(name: "shared activation layout vs separate buffers", passed: differing == 0,
                       detail: "\(shared.parameterCount) gradients and \(batch) losses, \(differing) differ; activations "
                           + "\(shared.plan.activations) vs \(separate.plan.activations) bytes")
    }
}
