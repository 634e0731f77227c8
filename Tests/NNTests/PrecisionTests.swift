import Testing
import Kernels
import NN
import Platform

/// True when `value` is exactly a binary16 value (or NaN).
func isBinary16(_ value: Float) -> Bool {
    value.isNaN || Float(Float16(value)).bitPattern == value.bitPattern
}

/// The fp16 mode of `Model`: where the rounding happens, master weights, loss scaling.
@Suite(.serialized) struct PrecisionTests {
    /// Every node's output as its forward left it, every output gradient as its backward reads
    /// it, the input and the compute weights are binary16 values; the master weights are not
    /// rounded (the initialisation draws values that binary16 cannot hold).
    @Test(arguments: ["small", "cnn-s", "resnet8"])
    func everyTensorAStepReadsIsBinary16(name: String) throws {
        let description = name == "small" ? smallModel() : try ModelZoo.description(named: name)
        let batch = 3
        let model = try Model(description, batch: batch, context: try KernelContext(threads: 1), precision: .fp16)
        model.initialize(seed: 5)
        fillBatch(model, batch: batch, seed: 6)
        model.lossScale = 1024
        var checkedOutputs = 0, checkedGradients = 0, offending: [String] = []
        model.observedForwardBackward(batch: batch, forwardDone: { node in
            let count = batch * model.shapes[node].count
            let output = model.output(ofNode: node)
            if let bad = (0..<count).first(where: { !isBinary16(output[$0]) }) { offending.append("output of node \(node) [\(bad)] = \(output[bad])") }
            checkedOutputs += 1
        }, backwardReady: { node in
            let count = batch * model.shapes[node].count
            let gradient = model.outputGradient(ofNode: node)
            if let bad = (0..<count).first(where: { !isBinary16(gradient[$0]) }) { offending.append("gradient of node \(node) [\(bad)] = \(gradient[bad])") }
            checkedGradients += 1
        })
        #expect(offending.isEmpty, "\(offending.prefix(5))")
        #expect(checkedOutputs == description.layers.count && checkedGradients == description.layers.count)
        let inputCount = batch * description.input.count
        #expect((0..<inputCount).allSatisfy { isBinary16(model.input[$0]) })
        #expect((0..<model.parameterCount).allSatisfy { isBinary16(model.computeWeights[$0]) })
        #expect((0..<model.parameterCount).allSatisfy { model.computeWeights[$0] == Float(Float16(model.parameters[$0])) })
        #expect((0..<model.parameterCount).contains { !isBinary16(model.parameters[$0]) }, "the master weights must stay fp32")
        // Checkpoints and the optimizer see the master copy.
        for tensor in model.tensors() where tensor.trainable {
            #expect(tensor.pointer == model.parameters + tensor.offset, "\(tensor.name)")
        }
        #expect(model.plan.halfWeights == Arena.rounded(model.parameterCount * 4))
        #expect(model.plan.budgetLine.contains("fp16 compute weights"))
    }

    /// A few SGD steps in fp16 (loss scale 1024, gradients unscaled before the update) track
    /// fp32 closely but not exactly: the rounding does something, and not much.
    @Test(arguments: ["small", "cnn-s"])
    func fp16StepsStayCloseToFP32(name: String) throws {
        let description = name == "small" ? smallModel() : try ModelZoo.description(named: name)
        let batch = 8
        let context = try KernelContext(threads: 1)
        let full = try Model(description, batch: batch, context: context)
        let half = try Model(description, batch: batch, context: context, precision: .fp16)
        #expect(full.plan.halfWeights == 0 && !full.plan.budgetLine.contains("fp16"))
        half.lossScale = 1024
        var losses: [[Float]] = [[], []]
        for (which, model) in [full, half].enumerated() {
            model.initialize(seed: 11)
            for step in 0..<4 {
                fillBatch(model, batch: batch, seed: 20 + UInt64(step))
                model.forwardBackward(batch: batch)
                losses[which] += (0..<batch).map { model.losses[$0] }
                #expect(model.unscaleGradients())
                for index in 0..<model.parameterCount { model.parameters[index] -= 0.05 * model.gradients[index] }
            }
        }
        var largest: Float = 0
        for index in losses[0].indices { largest = max(largest, abs(losses[0][index] - losses[1][index]) / max(abs(losses[0][index]), 1e-3)) }
        #expect(losses[0] != losses[1], "fp16 gave fp32's losses bit for bit: nothing was rounded")
        #expect(largest < 0.02, "largest relative loss difference \(largest)")
        #expect(largest > 1e-6)
    }

    @Test func lossScalerFollowsGradScaler() {
        var scaler = LossScaler(growthInterval: 3)
        #expect(scaler.scale == 65536)
        scaler.update(finite: true)
        scaler.update(finite: false)
        #expect(scaler.scale == 32768 && scaler.goodSteps == 0 && scaler.skippedSteps == 1)
        for _ in 0..<2 { scaler.update(finite: true) }
        #expect(scaler.scale == 32768 && scaler.goodSteps == 2)
        scaler.update(finite: true)
        #expect(scaler.scale == 65536 && scaler.goodSteps == 0 && scaler.skippedSteps == 1)
    }
}
