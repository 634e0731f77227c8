import Testing
import Kernels
import NN
import Platform

/// Partial updates (fine-tuning): the naive twin of a partial update is full training with the
/// same batch-norm mode, whose gradients of the trained tensors must be the same.
@Suite(.serialized) struct PartialUpdateTests {
    static let modes: [UpdateMode] = [.biasOnly, .batchNormAndBias, .head, .last(2), .last(3)]

    /// Each mode's trained-tensor gradients equal full training's (frozen statistics in both,
    /// so the forward is the same function), bit for bit, on two steps; the losses too.
    @Test(arguments: ["small", "cnn-s", "resnet8"])
    func trainedGradientsEqualFullTraining(name: String) throws {
        let context = try KernelContext(threads: 2)
        let batch = 5
        let description = name == "small" ? smallModel() : try ModelZoo.description(named: name)
        let full = try Model(description, batch: batch, context: context,
                             trainability: try Trainability(description, mode: .all, frozenStatistics: true))
        for mode in Self.modes {
            let partial = try Model(description, batch: batch, context: context, trainability: try Trainability(description, mode: mode))
            #expect(partial.plan.activations <= full.plan.activations, "\(name) \(mode.name): plans more activation memory than full training")
            for model in [full, partial] { model.initialize(seed: 7) }
            // Non-trivial running statistics, as a pretrained model has.
            for model in [full, partial] {
                for tensor in model.tensors() where !tensor.trainable {
                    for index in 0..<tensor.count { tensor.pointer[index] = tensor.name.hasSuffix("var") ? 0.5 + Float(index % 3) : 0.1 * Float(index % 5) - 0.2 }
                }
            }
            var trainedCount = 0
            for step in 0..<2 {
                for model in [full, partial] {
                    fillBatch(model, batch: batch, seed: 90 + UInt64(step))
                    model.forwardBackward(batch: batch)
                }
                for sample in 0..<batch { #expect(full.losses[sample] == partial.losses[sample], "\(name) \(mode.name): loss \(sample)") }
                var differing: [String] = []
                var nonZero = 0
                trainedCount = 0
                for range in partial.trainedRanges {
                    trainedCount += range.count
                    for index in range.offset..<(range.offset + range.count) {
                        if full.gradients[index] != partial.gradients[index] { differing.append("\(index)") }
                        if partial.gradients[index] != 0 { nonZero += 1 }
                    }
                }
                #expect(differing.isEmpty, "\(name) \(mode.name) step \(step): \(differing.count) of \(trainedCount) trained gradients differ (first \(differing.prefix(5)))")
                #expect(nonZero > trainedCount / 4, "\(name) \(mode.name): vacuous, \(nonZero) of \(trainedCount) gradients non-zero")
                // The same update for both (plain SGD on the trained ranges only).
                for range in partial.trainedRanges {
                    for index in range.offset..<(range.offset + range.count) {
                        full.parameters[index] -= 0.05 * full.gradients[index]
                        partial.parameters[index] -= 0.05 * partial.gradients[index]
                    }
                }
            }
            #expect(trainedCount > 0 && trainedCount < partial.parameterCount, "\(name) \(mode.name): \(trainedCount) trained")
        }
    }

    /// Optimizer steps leave frozen parameters and running statistics bit-identical (weight
    /// decay and momentum included) and change the trained ones.
    @Test func frozenParametersStayBitIdentical() throws {
        let context = try KernelContext(threads: 2)
        let batch = 6
        let description = try ModelZoo.description(named: "resnet8")
        let model = try Model(description, batch: batch, context: context, trainability: try Trainability(description, mode: .biasOnly))
        model.initialize(seed: 3)
        let before = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
        let buffersBefore = Array(UnsafeBufferPointer(start: model.buffers, count: model.bufferCount))
        let optimizer = try Optimizer(.sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-3), model: model)
        for step in 0..<3 {
            fillBatch(model, batch: batch, seed: 30 + UInt64(step))
            model.forwardBackward(batch: batch)
            optimizer.step(learningRate: 0.1)
        }
        var trained = [Bool](repeating: false, count: model.parameterCount)
        for range in model.trainedRanges { for index in range.offset..<(range.offset + range.count) { trained[index] = true } }
        var frozenChanged = 0, trainedChanged = 0
        for index in 0..<model.parameterCount where model.parameters[index].bitPattern != before[index].bitPattern {
            if trained[index] { trainedChanged += 1 } else { frozenChanged += 1 }
        }
        #expect(frozenChanged == 0, "\(frozenChanged) frozen parameters changed")
        #expect(trainedChanged > trained.filter { $0 }.count / 2, "only \(trainedChanged) trained parameters changed")
        for index in 0..<model.bufferCount {
            #expect(model.buffers[index].bitPattern == buffersBefore[index].bitPattern, "running statistic \(index) changed")
        }
        // Bias-only resnet8 trains the batch-norm betas and the fc bias only (its convs have no bias).
        let names = model.tensors().filter { $0.trainable }.map(\.name)
        let trainedNames = names.filter { name in model.trainedRanges.contains { $0.offset == model.tensors().first { $0.name == name }!.offset } }
        #expect(trainedNames.allSatisfy { $0.hasSuffix(".bias") }, "\(trainedNames)")
    }

    /// The new backward paths (frozen-statistics batch norm, masked ReLU, stopping early) along
    /// a random direction of the trained parameters: (L(p + h d) - L(p - h d)) / 2h = <dL/dp, d>.
    @Test(arguments: [UpdateMode.biasOnly, .batchNormAndBias, .last(3)])
    func directionalDerivativeOfTrainedParameters(mode: UpdateMode) throws {
        let context = try KernelContext(threads: 2)
        let batch = 6
        let description = smallModel()
        let model = try Model(description, batch: batch, context: context, trainability: try Trainability(description, mode: mode))
        model.initialize(seed: 3)
        for tensor in model.tensors() where tensor.name.hasSuffix("running_mean") { for index in 0..<tensor.count { tensor.pointer[index] = 0.3 } }
        fillBatch(model, batch: batch, seed: 11)
        model.forwardBackward(batch: batch)
        let (numeric, analytic) = directionalDerivatives(model, batch: batch, over: model.trainedRanges)
        let error = abs(numeric - analytic) / max(1e-3, abs(numeric), abs(analytic))
        #expect(error < 2e-2, "\(mode.name): numeric \(numeric), analytic \(analytic), relative error \(error)")
        #expect(abs(analytic) > 1e-4, "\(mode.name): vacuous, directional derivative \(analytic)")
    }

    /// The bar: bias-only fine-tuning of resnet8 at batch 64 plans at most a third of full
    /// fine-tuning's activation memory.
    @Test func biasOnlyResNet8PlansAThirdOfTheActivations() throws {
        let description = try ModelZoo.description(named: "resnet8")
        let all = try Model.plan(description, batch: 64, threads: 2, trainability: try Trainability(description, mode: .all))
        let bias = try Model.plan(description, batch: 64, threads: 2, trainability: try Trainability(description, mode: .biasOnly))
        #expect(3 * bias.activations <= all.activations, "bias-only \(bias.activations) bytes vs all \(all.activations)")
        let head = try Model.plan(description, batch: 64, threads: 2, trainability: try Trainability(description, mode: .head))
        #expect(head.activations <= bias.activations)
    }

    @Test func updateModesParse() throws {
        for text in ["all", "head", "bias-only", "bn+bias", "last:3"] { #expect(UpdateMode(parsing: text)?.name == text) }
        for text in ["", "last:0", "last:", "bias", "last:x"] { #expect(UpdateMode(parsing: text) == nil, "\(text)") }
        // A mode that trains nothing is refused (mlp has no batch norm and trains biases: fine).
        var builder = ModelBuilder(name: "nobias", input: .flat(4), classes: 2)
        builder.linear(ModelBuilder.input, out: 2, bias: false)
        #expect(throws: ModelError.self) { _ = try Trainability(builder.description, mode: .biasOnly) }
    }
}
