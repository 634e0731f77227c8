import Testing
import Kernels
import NN
import Platform

/// The optimizer room: steps equal the raw kernels called per trained range, state comes from
/// an arena the plan sizes, and checkpoint names stay those files already hold.
@Suite(.serialized) struct OptimizerTests {
    static let configs: [OptimizerConfig] = [
        .sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-3), .sgd(momentum: 0.9, nesterov: false, weightDecay: 0),
        .sgd(momentum: 0, nesterov: false, weightDecay: 5e-4), .adamw(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-2),
    ]

    /// Three steps of `Optimizer` against the kernels called by hand over `trainedRanges` with
    /// buffers of the test's own: parameters and state bit for bit; frozen parameters and the
    /// state of frozen ranges untouched.
    @Test(arguments: configs, [UpdateMode.all, .biasOnly])
    func stepsEqualTheKernelsOverTrainedRanges(config: OptimizerConfig, mode: UpdateMode) throws {
        let context = try KernelContext(threads: 1)
        let batch = 4
        let trainability = try Trainability(smallModel(), mode: mode)
        let model = try Model(smallModel(), batch: batch, context: context, trainability: trainability)
        model.initialize(seed: 11)
        let optimizer = try Optimizer(config, model: model)
        let count = model.parameterCount
        var weights = Array(UnsafeBufferPointer(start: model.parameters, count: count))
        let initial = weights
        var state = [Float](repeating: 0, count: count * config.statePerParameter)
        for step in 1...3 {
            fillBatch(model, batch: batch, seed: 40 + UInt64(step))
            model.forwardBackward(batch: batch)
            optimizer.step(learningRate: 0.05)
            for range in model.trainedRanges {
                weights.withUnsafeMutableBufferPointer { w in
                    state.withUnsafeMutableBufferPointer { s in
                        let gradients = UnsafePointer(model.gradients + range.offset)
                        switch config {
                        case let .sgd(momentum, nesterov, weightDecay):
                            SGD.step(weights: w.baseAddress! + range.offset, momentumBuffer: momentum == 0 ? nil : s.baseAddress! + range.offset,
                                     gradients: gradients, count: range.count, learningRate: 0.05, momentum: momentum,
                                     weightDecay: weightDecay, nesterov: nesterov, firstStep: step == 1)
                        case let .adamw(beta1, beta2, epsilon, weightDecay):
                            AdamW.step(weights: w.baseAddress! + range.offset, firstMoment: s.baseAddress! + range.offset,
                                       secondMoment: s.baseAddress! + count + range.offset, gradients: gradients, count: range.count,
                                       learningRate: 0.05, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, step: step)
                        }
                    }
                }
            }
            // The model trains on its own weights; the hand-run copy must follow them exactly.
            for index in 0..<count where weights[index].bitPattern != model.parameters[index].bitPattern {
                Issue.record("\(config.name) \(mode.name) step \(step): parameter \(index) is \(model.parameters[index]), kernels give \(weights[index])")
                return
            }
        }
        #expect(optimizer.steps == 3)
        for index in 0..<state.count {
            #expect(state[index].bitPattern == optimizer.state[index].bitPattern, "\(config.name) \(mode.name): state \(index)")
        }
        var trained = [Bool](repeating: false, count: count)
        for range in model.trainedRanges { for index in range.offset..<(range.offset + range.count) { trained[index] = true } }
        var changed = 0
        for index in 0..<count {
            if trained[index] {
                if weights[index] != initial[index] { changed += 1 }
            } else {
                #expect(weights[index].bitPattern == initial[index].bitPattern, "frozen parameter \(index) changed")
                for copy in 0..<config.statePerParameter {
                    #expect(optimizer.state[copy * count + index] == 0, "state of frozen parameter \(index) touched")
                }
            }
        }
        #expect(changed > trained.filter { $0 }.count / 2, "\(config.name) \(mode.name): only \(changed) trained parameters changed")
    }

    /// The state arena is the plan's `optimizerState` bytes, carved full; a plan too small for
    /// the state is an overflow naming needed and free bytes.
    @Test(arguments: configs)
    func stateIsCarvedFromAnArenaOfThePlansSize(config: OptimizerConfig) throws {
        let context = try KernelContext(threads: 1)
        let model = try Model(smallModel(), batch: 2, context: context)
        let plan = try Model.plan(smallModel(), batch: 2, threads: 1, optimizerStatePerParameter: config.statePerParameter)
        let optimizer = try Optimizer(config, model: model, plan: plan)
        #expect(optimizer.arena.capacityBytes == plan.optimizerState)
        #expect(optimizer.arena.usedBytes == plan.optimizerState)
        #expect(plan.optimizerState >= model.parameterCount * config.statePerParameter * 4)
        guard config.statePerParameter > 0 else { return }
        var small = plan
        small.optimizerState -= Arena.alignment
        #expect(throws: MemoryError.self) { _ = try Optimizer(config, model: model, plan: small) }
    }

    /// The checkpoint names are the ones files already hold: "optimizer.<tensor>.<state>" with
    /// PyTorch's state names, metadata "optimizer" the config's name; state saved from one
    /// optimizer loads into another bit for bit.
    @Test(arguments: configs)
    func checkpointNamesAndRoundTrip(config: OptimizerConfig) throws {
        let directory = checkpointTestDirectory("optimizer-names")
        defer { removeTestDirectory(directory) }
        let path = directory + "/checkpoint.safetensors"
        let context = try KernelContext(threads: 1)
        let source = try Model(smallModel(), batch: 2, context: context)
        source.initialize(seed: 3)
        let optimizer = try Optimizer(config, model: source)
        for step in 0..<2 {
            fillBatch(source, batch: 2, seed: 50 + UInt64(step))
            source.forwardBackward(batch: 2)
            optimizer.step(learningRate: 0.01)
        }
        let states: [String]
        switch config {
        case let .sgd(momentum, _, _): states = momentum == 0 ? [] : ["momentum_buffer"]
        case .adamw: states = ["exp_avg", "exp_avg_sq"]
        }
        #expect(optimizer.checkpointState.name == config.name)
        #expect(optimizer.checkpointState.buffers.map(\.state) == states)
        try Checkpoint.save(model: source, optimizer: optimizer.checkpointState, metadata: [("step", "\(optimizer.steps)")], path: path)
        let reader = try SafeTensorsReader(path: path)
        #expect(Checkpoint.value("optimizer", in: reader.metadata) == config.name)
        let trainable = source.tensors().filter(\.trainable)
        #expect(reader.entries.count == source.tensors().count + states.count * trainable.count)
        for state in states {
            let entry = reader.header.entry(named: "optimizer.fc1.weight." + state)
            #expect(entry?.shape == [5, 12], "optimizer.fc1.weight.\(state)")
        }

        let target = try Model(smallModel(), batch: 2, context: context)
        target.initialize(seed: 4)
        let restored = try Optimizer(config, model: target)
        try Checkpoint.load(path: path, into: target, optimizer: restored.checkpointState)
        #expect(parameterBits(target) == parameterBits(source))
        for index in 0..<(source.parameterCount * config.statePerParameter) {
            #expect(restored.state[index].bitPattern == optimizer.state[index].bitPattern, "state \(index)")
        }
    }
}
