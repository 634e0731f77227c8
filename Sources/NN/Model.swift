import Kernels
import Platform

/// Storage of one node: its output and output gradient (batch-sized), its parameters and
/// their gradients, and what forward saves for backward. All pointers are views into the
/// model's arenas.
struct NodeStorage {
    var output: UnsafeMutablePointer<Float>
    var dOutput: UnsafeMutablePointer<Float>
    var weight: UnsafeMutablePointer<Float>? = nil
    var bias: UnsafeMutablePointer<Float>? = nil
    var dWeight: UnsafeMutablePointer<Float>? = nil
    var dBias: UnsafeMutablePointer<Float>? = nil
    var weightCount = 0
    var biasCount = 0
    // Batch norm: running statistics (persistent, not trained) and the batch's saved statistics.
    var runningMean: UnsafeMutablePointer<Float>? = nil
    var runningVariance: UnsafeMutablePointer<Float>? = nil
    var savedMean: UnsafeMutablePointer<Float>? = nil
    var savedInverseStd: UnsafeMutablePointer<Float>? = nil
    // Max pool: the argmax of every output element.
    var indices: UnsafeMutablePointer<Int32>? = nil
    // ReLU in a partial update, dropout: the backward mask as bits.
    var mask: UnsafeMutablePointer<UInt32>? = nil
}

/// A model ready to run: a description, its memory plan, and arenas allocated once.
/// Parameters are one contiguous block (so an optimizer update is one kernel call over all of
/// them), gradients another of the same layout, batch-norm running statistics a third.
/// `trainStep` allocates nothing.
public final class Model {
    public let description: ModelDescription
    public let shapes: [TensorShape]
    public let maxBatch: Int
    public let context: KernelContext
    public let plan: MemoryPlan
    /// What is trained and what backward computes (plain training unless fine-tuning).
    public let trainability: Trainability
    /// Runs of trained tensors in `parameters` (offset, count), merged where adjacent: the
    /// optimizer steps only these, so frozen parameters stay bit-identical.
    public let trainedRanges: [(offset: Int, count: Int)]

    /// Trainable parameters, contiguous, in node order (weight then bias). Under fp16 these are
    /// the fp32 master weights that the optimizer updates and checkpoints hold.
    public let parameters: UnsafeMutablePointer<Float>
    /// The weights forward and backward compute with, laid out as `parameters`: the same memory
    /// under fp32; under fp16 a region of its own (`MemoryPlan.halfWeights`) holding
    /// round(parameters) to binary16, refreshed at the start of every forward.
    public let computeWeights: UnsafeMutablePointer<Float>
    /// The arithmetic of forward and backward (see `Precision`).
    public let precision: Precision
    /// The factor on the loss gradient (dynamic loss scaling under fp16, see `LossScaler`);
    /// the per-sample losses are never scaled. 1 under fp32.
    public var lossScale: Float = 1
    public let gradients: UnsafeMutablePointer<Float>
    public let parameterCount: Int
    /// Batch-norm running means and variances (not trained, not decayed).
    public let buffers: UnsafeMutablePointer<Float>
    public let bufferCount: Int

    /// The batch input, CNHW [C, N, H, W] for maxBatch samples, filled by the caller.
    public let input: UnsafeMutablePointer<Float>
    /// Labels of the batch.
    public let labels: UnsafeMutablePointer<Int32>
    /// Per-sample cross-entropy loss and correctness of the last forward: the unit every
    /// selection policy is built on.
    public let losses: UnsafeMutablePointer<Float>
    public let correct: UnsafeMutablePointer<UInt8>
    /// Optional per-sample loss weights (InfoBatch); 1 unless the caller writes them.
    public let sampleWeights: UnsafeMutablePointer<Float>
    /// The key of the next training forward's dropout masks (node i draws with
    /// `Model.dropoutKey(dropoutSeed, node: i)`). The trainer sets it before every step from its
    /// seed and the optimizer step, so a run with the same seed, and a resumed run, draw the
    /// same masks; nothing else changes it.
    public var dropoutSeed: UInt64 = 0
    /// The number of samples the training loss is a mean over; 0: the batch forwarded. A rank of
    /// a data-parallel run forwards its part of a global batch and sets the global batch here,
    /// so that the sum of the ranks' gradients is the gradient of the global batch mean (each
    /// rank's mean gradient weighted by its samples / global samples).
    public var lossMeanOver = 0
    /// Set by the trainer for `--sync-bn` on several ranks: training-mode batch norm then
    /// normalises with the statistics of the global batch (see `BatchNormExchange`); nil: with
    /// this rank's batch.
    public var batchNormExchange: BatchNormExchange? = nil

    var nodes: [NodeStorage]
    let scratch: UnsafeMutablePointer<Float>
    let scratchCount: Int
    let conv: [Conv2DShape?]
    /// Where outputs and gradients live, and which ops run in place (see `ActivationLayout`).
    let layout: ActivationLayout
    /// Parameters, gradients, activations, scratch: each made with its plan field's bytes.
    public let arenas: [Arena]

    /// Sizes of every arena for `description` at batch `batch` with `threads` threads, with
    /// `optimizerStatePerParameter` floats of optimizer state per parameter (momentum: 1, Adam: 2).
    /// `wide`: the kernel width (a context's `wideKernels`; default this machine's).
    public static func plan(_ description: ModelDescription, batch: Int, threads: Int,
                            optimizerStatePerParameter: Int = 0, sharedActivations: Bool = true,
                            trainability: Trainability? = nil, precision: Precision = .fp32,
                            wide: Bool = SystemInfo.useAVX512()) throws(ModelError) -> MemoryPlan {
        let shapes = try description.shapes()
        var plan = MemoryPlan()
        let (parameterCount, bufferCount) = countParameters(description, shapes)
        plan.parameters = Arena.rounded(parameterCount * 4) + Arena.rounded(bufferCount * 4)
        plan.gradients = Arena.rounded(parameterCount * 4)
        plan.halfWeights = precision == .fp16 ? Arena.rounded(parameterCount * 4) : 0
        plan.optimizerState = MemoryPlan.optimizerStateBytes(parameterCount: parameterCount, statePerParameter: optimizerStatePerParameter)
        var activations = Arena.rounded(batch * description.input.count * 4)  // input
        activations += Arena.rounded(batch * 4) * 3 + Arena.rounded(batch)  // labels, losses, weights; correct (bytes)
        for (index, layer) in description.layers.enumerated() where layer.kind == .batchNorm {
            activations += 2 * Arena.rounded(shapes[index].channels * 4)
        }
        let layout = ActivationLayout(description, shapes: shapes, batch: batch, sharing: sharedActivations,
                                      trainability: trainability)
        activations += Arena.rounded(layout.floatElements * 4) + Arena.rounded(layout.indexElements * 4)
        plan.activations = activations
        plan.scratch = Arena.rounded(scratchFloats(description, shapes, batch: batch, threads: threads, wide: wide) * 4)
        return plan
    }

    /// Trained parameters and batch-norm buffers of `description` (whose shapes are `shapes`).
    public static func countParameters(_ description: ModelDescription, _ shapes: [TensorShape]) -> (parameters: Int, buffers: Int) {
        var parameters = 0
        var buffers = 0
        for (index, layer) in description.layers.enumerated() {
            let (weights, biases) = parameterCounts(layer, input: inputShape(description, shapes, layer), output: shapes[index])
            parameters += weights + biases
            if layer.kind == .batchNorm { buffers += 2 * shapes[index].channels }
        }
        return (parameters, buffers)
    }

    static func inputShape(_ description: ModelDescription, _ shapes: [TensorShape], _ layer: LayerSpec) -> TensorShape {
        layer.inputs[0] == -1 ? description.input : shapes[layer.inputs[0]]
    }

    static func parameterCounts(_ layer: LayerSpec, input: TensorShape, output: TensorShape) -> (Int, Int) {
        switch layer.kind {
        case .conv2d:
            return (output.channels * input.channels * layer.kernel * layer.kernel, layer.bias ? output.channels : 0)
        case .depthwiseConv2d:
            return (output.channels * layer.kernel * layer.kernel, layer.bias ? output.channels : 0)
        case .batchNorm:
            return (output.channels, output.channels)
        case .linear:
            return (output.count * input.count, layer.bias ? output.count : 0)
        default:
            return (0, 0)
        }
    }

    static func convShape(_ layer: LayerSpec, input: TensorShape, output: TensorShape, batch: Int) -> Conv2DShape? {
        guard layer.kind == .conv2d || layer.kind == .depthwiseConv2d else { return nil }
        return Conv2DShape(
            batch: batch, inChannels: input.channels, outChannels: output.channels,
            inHeight: input.height, inWidth: input.width, kernelHeight: layer.kernel, kernelWidth: layer.kernel,
            strideH: layer.stride, strideW: layer.stride, padH: layer.padding, padW: layer.padding)
    }

    static func scratchFloats(_ description: ModelDescription, _ shapes: [TensorShape], batch: Int, threads: Int, wide: Bool) -> Int {
        var floats = 0
        for (index, layer) in description.layers.enumerated() {
            if layer.kind == .conv2d, let shape = convShape(layer, input: inputShape(description, shapes, layer), output: shapes[index], batch: batch) {
                floats = max(floats, Conv2D.scratchFloats(shape: shape, threads: threads, wide: wide))
            }
            // Batch norm reading the model input writes its (unused) input gradient to scratch.
            if layer.kind == .batchNorm && layer.inputs[0] == -1 {
                floats = max(floats, batch * description.input.count)
            }
        }
        return floats
    }

    /// Plans, checks the budget, allocates the arenas once and carves every view.
    /// `sharedActivations` false gives every output and gradient its own memory and runs
    /// nothing in place (the test oracle for the shared layout; it needs far more memory).
    /// `trainability` nil trains everything (see `Trainability` for partial updates).
    public init(_ description: ModelDescription, batch: Int, context: KernelContext, budgetBytes: Int? = nil,
                sharedActivations: Bool = true, trainability: Trainability? = nil, precision: Precision = .fp32) throws(ModelError) {
        self.description = description
        self.maxBatch = batch
        self.context = context
        self.precision = precision
        shapes = try description.shapes()
        let trainable = trainability ?? Trainability.all(description)
        self.trainability = trainable
        plan = try Model.plan(description, batch: batch, threads: context.threads, sharedActivations: sharedActivations,
                              trainability: trainable, precision: precision, wide: context.wideKernels)
        do {
            try plan.check(budgetBytes: budgetBytes)
        } catch {
            throw ModelError(message: error.description)
        }
        let (parameterCount, bufferCount) = Model.countParameters(description, shapes)
        self.parameterCount = parameterCount
        self.bufferCount = bufferCount
        do {
            let parameterArena = try Arena(name: "parameters", capacityBytes: plan.parameters)
            let gradientArena = try Arena(name: "gradients", capacityBytes: plan.gradients)
            let activationArena = try Arena(name: "activations", capacityBytes: plan.activations)
            let scratchArena = try Arena(name: "scratch", capacityBytes: plan.scratch)
            parameters = try parameterArena.floats(parameterCount, label: "parameters")
            if precision == .fp16 {
                let halfArena = try Arena(name: "fp16 compute weights", capacityBytes: plan.halfWeights)
                computeWeights = try halfArena.floats(parameterCount, label: "fp16 compute weights")
                arenas = [parameterArena, gradientArena, activationArena, scratchArena, halfArena]
            } else {
                computeWeights = parameters
                arenas = [parameterArena, gradientArena, activationArena, scratchArena]
            }
            buffers = try parameterArena.floats(bufferCount, label: "batch-norm running statistics")
            gradients = try gradientArena.floats(parameterCount, label: "gradients")
            input = try activationArena.floats(batch * description.input.count, label: "input")
            labels = try activationArena.carve(Int32.self, count: batch, label: "labels")
            losses = try activationArena.floats(batch, label: "losses")
            correct = try activationArena.carve(UInt8.self, count: batch, label: "correct")
            sampleWeights = try activationArena.floats(batch, label: "sample weights")
            scratchCount = Model.scratchFloats(description, shapes, batch: batch, threads: context.threads, wide: context.wideKernels)
            scratch = try scratchArena.floats(scratchCount, label: "scratch")

            let layout = ActivationLayout(description, shapes: shapes, batch: batch, sharing: sharedActivations,
                                          trainability: trainable)
            self.layout = layout
            let tensorRegion = try activationArena.floats(layout.floatElements, label: "outputs and gradients")
            let indexRegion = try activationArena.carve(Int32.self, count: layout.indexElements, label: "max-pool argmax")
            var parameterOffset = 0
            var bufferOffset = 0
            var nodes: [NodeStorage] = []
            var conv: [Conv2DShape?] = []
            var ranges: [(offset: Int, count: Int)] = []
            func addTrained(_ offset: Int, _ count: Int) {
                if let last = ranges.last, last.offset + last.count == offset {
                    ranges[ranges.count - 1].count += count
                } else {
                    ranges.append((offset, count))
                }
            }
            for (index, layer) in description.layers.enumerated() {
                let shape = shapes[index]
                let inputShape = Model.inputShape(description, shapes, layer)
                var node = NodeStorage(output: tensorRegion + layout.output[index], dOutput: tensorRegion + layout.gradient[index])
                let (weights, biases) = Model.parameterCounts(layer, input: inputShape, output: shape)
                if weights > 0 {
                    node.weight = computeWeights + parameterOffset
                    node.dWeight = gradients + parameterOffset
                    node.weightCount = weights
                    if trainable.weight[index] { addTrained(parameterOffset, weights) }
                    parameterOffset += weights
                }
                if biases > 0 {
                    node.bias = computeWeights + parameterOffset
                    node.dBias = gradients + parameterOffset
                    node.biasCount = biases
                    if trainable.bias[index] { addTrained(parameterOffset, biases) }
                    parameterOffset += biases
                }
                switch layer.kind {
                case .batchNorm:
                    node.runningMean = buffers + bufferOffset
                    node.runningVariance = buffers + bufferOffset + shape.channels
                    bufferOffset += 2 * shape.channels
                    node.savedMean = try activationArena.floats(shape.channels, label: "\(layer.name) batch mean")
                    node.savedInverseStd = try activationArena.floats(shape.channels, label: "\(layer.name) batch inverse std")
                case .maxPool:
                    node.indices = indexRegion + layout.indices[index]
                case .relu where layout.bitMask[index] >= 0, .dropout:
                    // Int32 and UInt32 may alias (signed and unsigned variants of one width).
                    node.mask = UnsafeMutableRawPointer(indexRegion + layout.bitMask[index]).assumingMemoryBound(to: UInt32.self)
                default:
                    break
                }
                nodes.append(node)
                conv.append(Model.convShape(layer, input: inputShape, output: shape, batch: batch))
            }
            self.nodes = nodes
            self.conv = conv
            trainedRanges = ranges
        } catch {
            throw ModelError(message: error.description)
        }
        for index in 0..<batch { sampleWeights[index] = 1 }
    }
}
