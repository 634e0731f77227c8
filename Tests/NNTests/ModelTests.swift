import AllocCounting
import Testing
import Kernels
import NN
import Platform

/// A small model touching every layer kind the reference models use.
func smallModel(classes: Int = 5) -> ModelDescription {
    var builder = ModelBuilder(name: "small", input: .spatial(2, 10, 10), classes: classes)
    let stem = builder.conv(ModelBuilder.input, out: 6, kernel: 3, padding: 1, bias: false)
    let normed = builder.batchNorm(stem)
    let activated = builder.relu(normed)
    let branch = builder.conv(activated, out: 6, kernel: 3, padding: 1)
    let sum = builder.add(branch, activated)
    let pooled = builder.maxPool(builder.relu(sum), kernel: 2)
    let widened = builder.conv(pooled, out: 8, kernel: 1)
    let averaged = builder.avgPool(widened, kernel: 2)
    let flat = builder.flatten(averaged)
    let hidden = builder.relu(builder.linear(flat, out: 12))
    builder.linear(hidden, out: classes)
    return builder.description
}

func fillBatch(_ model: Model, batch: Int, seed: UInt64) {
    var generator = SeededGenerator(seed: seed)
    for index in 0..<(batch * model.description.input.count) { model.input[index] = generator.uniform(-1, 1) }
    for sample in 0..<batch { model.labels[sample] = Int32(generator.below(model.description.classes)) }
}

func meanLoss(_ model: Model, batch: Int) -> Double {
    model.forward(batch: batch, training: true)
    model.loss(batch: batch, gradient: false)
    var sum = 0.0
    for sample in 0..<batch { sum += Double(model.losses[sample]) }
    return sum / Double(batch)
}

/// After `forwardBackward`: along a random direction d over the parameters in `ranges`,
/// the central difference (L(p + h d) - L(p - h d)) / 2h and the analytic <dL/dp, d>.
func directionalDerivatives(_ model: Model, batch: Int, over ranges: [(offset: Int, count: Int)]) -> (numeric: Double, analytic: Double) {
    var generator = SeededGenerator(seed: 99)
    var direction = [Float](repeating: 0, count: model.parameterCount)
    var analytic = 0.0
    for range in ranges {
        for index in range.offset..<(range.offset + range.count) {
            direction[index] = generator.uniform(-1, 1)
            analytic += Double(direction[index]) * Double(model.gradients[index])
        }
    }
    let original = Array(UnsafeBufferPointer(start: model.parameters, count: model.parameterCount))
    let step: Float = 1e-3
    for index in direction.indices { model.parameters[index] = original[index] + step * direction[index] }
    let plus = meanLoss(model, batch: batch)
    for index in direction.indices { model.parameters[index] = original[index] - step * direction[index] }
    let minus = meanLoss(model, batch: batch)
    for index in direction.indices { model.parameters[index] = original[index] }
    return ((plus - minus) / (2 * Double(step)), analytic)
}

@Suite(.serialized) struct ModelTests {
    @Test func descriptionErrorsNameTheLayer() {
        var builder = ModelBuilder(name: "broken", input: .spatial(1, 8, 8), classes: 3)
        builder.linear(ModelBuilder.input, out: 3)
        #expect(throws: ModelError.self) { _ = try builder.description.shapes() }
        do { _ = try builder.description.shapes() } catch {
            #expect(error.message.contains("fc0 needs flat input"), "\(error.message)")
        }
    }

    // The whole-model gradient test is TorchFixtureTests: every tensor's gradient against
    // PyTorch float64 at 1e-5 of its own scale. The directional derivative it replaced (2e-2
    // on one projection) passed with a head-bias gradient 0.01% off or a batch-norm beta 0.1%
    // off; it remains in `leitner selftest` (boards) and, for the partial-update paths, in
    // PartialUpdateTests.

    /// The shared activation layout (in-place ReLU and add, blocks reused across lifetimes,
    /// each gradient buffer written by its first writer or zeroed as it comes alive) gives
    /// bit-identical losses and parameter gradients to its naive twin where every tensor has its
    /// own memory and every gradient buffer is zeroed and added into, over two steps (so stale
    /// values left in reused memory would show), and needs less memory. The shared model's
    /// output gradient buffers are filled with NaN before each step: a first writer that left
    /// an element unwritten would show. And it zeroes fewer buffers than the twin.
    @Test(arguments: ["small", "mlp", "cnn-s", "resnet8"])
    func sharedActivationLayoutMatchesSeparateBuffers(name: String) throws {
        let context = try KernelContext(threads: 2)
        let batch = 5
        let description = name == "small" ? smallModel() : try ModelZoo.description(named: name)
        let shared = try Model(description, batch: batch, context: context)
        let separate = try Model(description, batch: batch, context: context, sharedActivations: false)
        #expect(shared.plan.activations < separate.plan.activations,
                "\(name): shared \(shared.plan.activations) bytes, separate \(separate.plan.activations)")
        for model in [shared, separate] { model.initialize(seed: 5) }
        let starts = shared.gradientBufferStarts, separateStarts = separate.gradientBufferStarts
        #expect(separateStarts.written == 0)
        #expect(starts.zeroed + starts.written <= separateStarts.zeroed, "\(name): \(starts), separate \(separateStarts)")
        if name != "mlp" { #expect(starts.written > 0, "\(name): no gradient buffer is written by its first writer") }
        for step in 0..<2 {
            for node in description.layers.indices {
                UnsafeMutablePointer(mutating: shared.outputGradient(ofNode: node)).update(repeating: .nan, count: batch * shared.shapes[node].count)
            }
            for model in [shared, separate] {
                fillBatch(model, batch: batch, seed: 40 + UInt64(step))
                model.forwardBackward(batch: batch)
            }
            for sample in 0..<batch {
                #expect(shared.losses[sample] == separate.losses[sample], "\(name) step \(step): loss of sample \(sample)")
            }
            var differing = 0
            var nonZero = 0
            for index in 0..<shared.parameterCount {
                if shared.gradients[index] != separate.gradients[index] { differing += 1 }
                if shared.gradients[index] != 0 { nonZero += 1 }
            }
            #expect(differing == 0, "\(name) step \(step): \(differing) of \(shared.parameterCount) gradients differ")
            #expect(nonZero > shared.parameterCount / 10, "\(name): the check is vacuous, only \(nonZero) gradients are non-zero")
            // A different batch next step, after an update so activations change too.
            for model in [shared, separate] {
                for index in 0..<model.parameterCount { model.parameters[index] -= 0.01 * model.gradients[index] }
            }
        }
    }

    /// The profiled step of `leitner bench layers` computes exactly the training step (same
    /// losses, same gradients bit for bit) and times every node of both passes.
    @Test(arguments: ["mlp", "resnet8"])
    func profiledStepEqualsTheTrainingStep(name: String) throws {
        let context = try KernelContext(threads: 2)
        let batch = 4
        let description = try ModelZoo.description(named: name)
        let plain = try Model(description, batch: batch, context: context)
        let profiled = try Model(description, batch: batch, context: context)
        for model in [plain, profiled] {
            model.initialize(seed: 3)
            fillBatch(model, batch: batch, seed: 9)
        }
        plain.forwardBackward(batch: batch)
        let nodes = description.layers.count
        var forward = [Double](repeating: 0, count: nodes), backward = [Double](repeating: 0, count: nodes)
        let other = forward.withUnsafeMutableBufferPointer { f in
            backward.withUnsafeMutableBufferPointer { b in
                profiled.profiledForwardBackward(batch: batch, forwardSeconds: f.baseAddress!, backwardSeconds: b.baseAddress!)
            }
        }
        for sample in 0..<batch { #expect(plain.losses[sample] == profiled.losses[sample]) }
        var differing = 0
        for index in 0..<plain.parameterCount where plain.gradients[index] != profiled.gradients[index] { differing += 1 }
        #expect(differing == 0, "\(name): \(differing) gradients differ")
        #expect(forward.allSatisfy { $0 > 0 } && backward.allSatisfy { $0 >= 0 } && other > 0, "\(forward) \(backward) \(other)")
    }

    /// The observed step of `leitner parity --dump-activations` computes exactly the training
    /// step (same losses and gradients bit for bit), and what its observers see of every node
    /// (the output right after its forward, the output gradient right before its backward) is
    /// bit for bit what the layout with separate buffers holds for that node after the step,
    /// although the shared layout has overwritten some of them by then (in-place activations).
    /// The observed step runs the ReLU fusions apart (`fused: false`), so this also checks the
    /// fused passes (a ReLU after a batch norm, or after a convolution with a bias) against the
    /// separate ones bit for bit.
    @Test(arguments: ["small", "resnet8", "backbone", "cnn-s"])
    func observedStepSeesEveryNodeAsComputed(name: String) throws {
        let backbone = """
        input 3x8x8
        classes 4
        conv 6 k3 p1 nobias as=stem
        bn as=stem_bn
        hardswish as=stem_act
        dwconv k3 s1 p1 nobias as=dw
        bn as=dw_bn
        relu6 as=dw_act
        avgpool 8 s8 p0 as=se_pool
        conv 3 k1 as=se_fc1
        relu as=se_relu
        conv 6 k1 as=se_fc2
        hardsigmoid as=se_gate
        mul se_gate from=dw_act as=se
        conv 6 k1 nobias as=project
        bn as=project_bn
        add stem_act as=residual
        relu as=residual_act
        avgpool 8 s8 p0 as=pool
        flatten as=flat
        linear 4 as=fc
        """
        let context = try KernelContext(threads: 2)
        let batch = 4
        let description = switch name {
        case "small": smallModel()
        case "backbone": try ModelDescription.parse(backbone, name: "backbone")
        default: try ModelZoo.description(named: name)
        }
        let plain = try Model(description, batch: batch, context: context)
        let observed = try Model(description, batch: batch, context: context)
        let separate = try Model(description, batch: batch, context: context, sharedActivations: false)
        for model in [plain, observed, separate] {
            model.initialize(seed: 3)
            fillBatch(model, batch: batch, seed: 9)
        }
        // every one has a ReLU fused: after a batch norm (small, resnet8) or a convolution with a bias
        #expect(!plain.fusedReLUs.isEmpty, "\(name): no ReLU fused into the node before")
        plain.forwardBackward(batch: batch)
        separate.forwardBackward(batch: batch)
        let nodes = description.layers.count
        var outputs = [[Float]](repeating: [], count: nodes), gradients = [[Float]](repeating: [], count: nodes)
        observed.observedForwardBackward(
            batch: batch,
            forwardDone: { node in
                outputs[node] = Array(UnsafeBufferPointer(start: observed.output(ofNode: node), count: batch * observed.shapes[node].count))
            },
            backwardReady: { node in
                gradients[node] = Array(UnsafeBufferPointer(start: observed.outputGradient(ofNode: node), count: batch * observed.shapes[node].count))
            })
        for sample in 0..<batch { #expect(plain.losses[sample] == observed.losses[sample]) }
        var differing = 0
        for index in 0..<plain.parameterCount where plain.gradients[index] != observed.gradients[index] { differing += 1 }
        #expect(differing == 0, "\(name): \(differing) gradients differ")
        var overwritten = 0
        for node in 0..<nodes {
            let count = batch * observed.shapes[node].count
            let expectedOutput = Array(UnsafeBufferPointer(start: separate.output(ofNode: node), count: count))
            let expectedGradient = Array(UnsafeBufferPointer(start: separate.outputGradient(ofNode: node), count: count))
            // Counts, not the arrays: a failure message stays short.
            let outputDiffers = zip(outputs[node], expectedOutput).filter { $0 != $1 }.count + abs(outputs[node].count - count)
            let gradientDiffers = zip(gradients[node], expectedGradient).filter { $0 != $1 }.count + abs(gradients[node].count - count)
            #expect(outputDiffers == 0, "\(name): \(outputDiffers) of \(count) output values of node \(node) (\(description.layers[node].name)) differ")
            #expect(gradientDiffers == 0, "\(name): \(gradientDiffers) of \(count) output gradient values of node \(node) (\(description.layers[node].name)) differ")
            #expect(gradients[node].contains { $0 != 0 }, "\(name): output gradient of node \(node) is all zero (vacuous)")
            if Array(UnsafeBufferPointer(start: observed.output(ofNode: node), count: count)) != outputs[node] { overwritten += 1 }
        }
        // The observers matter: after the step the shared layout no longer holds some outputs.
        #expect(overwritten > 0, "\(name): every output is still intact after the step; the check is weaker than meant")
    }

    /// A training step allocates nothing: zero calls to the allocator (malloc, free and the
    /// rest, counted by Tests/CAllocCounter on the caller and the pool's worker) over 100 steps
    /// (forward, per-sample loss, backward, SGD update) after warm-up; also for a partial
    /// update (frozen statistics, masked ReLUs, per-range optimizer steps); on one thread and on
    /// two (the kernels' pool runs handed to the worker allocate nothing either).
    @Test(arguments: ["all", "bn+bias"], [1, 2])
    func trainingStepPerformsNoHeapAllocation(update: String, threads: Int) throws {
        // Created first: the pool's worker, created by this thread below, is tracked too.
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let context = try KernelContext(threads: threads)
        let batch = 8
        let trainability = try Trainability(smallModel(), mode: UpdateMode(parsing: update)!)
        let model = try Model(smallModel(), batch: batch, context: context, trainability: trainability)
        model.initialize(seed: 5)
        fillBatch(model, batch: batch, seed: 6)
        let optimizer = try Optimizer(.sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), model: model)
        func step() {
            model.forwardBackward(batch: batch)
            optimizer.step(learningRate: 0.01)
        }
        for _ in 0..<3 { step() }
        let runsBefore = context.pool.parallelRuns
        let (_, calls) = tracker.counting { for _ in 0..<100 { step() } }
        let runs = context.pool.parallelRuns - runsBefore
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer")
        #expect(calls.isZero, "100 training steps (update \(update), \(threads) threads, \(runs) pool runs) made \(calls); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
        #expect(threads == 1 || update != "all" || runs > 0, "two threads but no kernel used the worker: the pool is not exercised")
        // The steps did real work: the loss is finite and the model learned the fixed batch.
        var sum: Float = 0
        for sample in 0..<batch { sum += model.losses[sample] }
        #expect(sum.isFinite && (update != "all" || sum / Float(batch) < 1.0), "mean loss after 103 steps on one batch: \(sum / Float(batch))")
    }
}
