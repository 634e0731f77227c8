import Kernels
import Platform

extension Model {
    /// PyTorch's default initialisation: conv and linear weights and biases uniform in
    /// +/- 1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)); batch norm gamma 1, beta 0,
    /// running mean 0, running variance 1.
    public func initialize(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for (index, layer) in description.layers.enumerated() {
            let node = nodes[index]
            let input = Model.inputShape(description, shapes, layer)
            switch layer.kind {
            case .conv2d, .depthwiseConv2d, .linear:
                let fanIn: Int
                switch layer.kind {
                case .conv2d: fanIn = input.channels * layer.kernel * layer.kernel
                case .depthwiseConv2d: fanIn = layer.kernel * layer.kernel
                default: fanIn = input.count
                }
                let bound = 1 / Float(fanIn).squareRoot()
                let weight = master(node.weight!)
                for offset in 0..<node.weightCount { weight[offset] = generator.uniform(-bound, bound) }
                if let bias = node.bias.map(master) {
                    for offset in 0..<node.biasCount { bias[offset] = generator.uniform(-bound, bound) }
                }
            case .batchNorm:
                let weight = master(node.weight!)
                let bias = master(node.bias!)
                for channel in 0..<node.weightCount {
                    weight[channel] = 1
                    bias[channel] = 0
                    node.runningMean![channel] = 0
                    node.runningVariance![channel] = 1
                }
            default:
                break
            }
        }
    }

    /// The key of node `node`'s dropout draws for a forward under `seed` (SplitMix64's
    /// finaliser of the pair, so neighbouring seeds and nodes give unrelated masks).
    public static func dropoutKey(_ seed: UInt64, node: Int) -> UInt64 {
        var z = seed &+ (UInt64(node) &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Node `index`'s output of the last forward (CNHW or [N, F] rows). Only the last node's
    /// stays valid under the shared layout, where later nodes reuse memory; with
    /// `sharedActivations` false every node's does (tests).
    public func output(ofNode index: Int) -> UnsafePointer<Float> { UnsafePointer(nodes[index].output) }

    /// Node `index`'s output gradient of the last backward (same layout as its output). Valid
    /// for every node only with `sharedActivations` false (tests); under the shared layout
    /// gradients reuse memory and in-place backwards overwrite them (see
    /// `observedForwardBackward` for a view of each while it is intact).
    public func outputGradient(ofNode index: Int) -> UnsafePointer<Float> { UnsafePointer(nodes[index].dOutput) }

    /// The output-gradient buffers of one backward: how many are zeroed as they come alive, and
    /// how many their first writer writes instead (`ActivationLayout.overwriteBeforeBackward`).
    public var gradientBufferStarts: (zeroed: Int, written: Int) {
        (layout.zeroBeforeBackward.joined().count + layout.zeroBeforeLoss.count, layout.overwriteBeforeBackward.joined().count)
    }

    /// The logits of the last forward, [N, classes].
    public var logits: UnsafePointer<Float> { UnsafePointer(nodes[nodes.count - 1].output) }

    @inline(__always)
    func source(_ index: Int) -> UnsafeMutablePointer<Float> {
        index == -1 ? input : nodes[index].output
    }

    @inline(__always)
    func shapeAt(_ index: Int) -> TensorShape {
        index == -1 ? description.input : shapes[index]
    }

    /// The master (fp32) copy of a parameter pointer into `computeWeights` (the same pointer
    /// under fp32).
    @inline(__always)
    func master(_ pointer: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        parameters + (pointer - computeWeights)
    }

    /// Under fp16, before a forward: the compute weights become round(master) and the input
    /// batch is rounded in place. Nothing under fp32.
    ///
    /// Why this is the numerics of an fp16 kernel: every operand a GEMM or convolution reads
    /// (weights, input, earlier outputs, output gradients) is a binary16 value, and the product
    /// of two binary16 values is exact in fp32 (11 + 11 significand bits <= 24). So the fp32
    /// kernels here sum exactly the products an fp16 x fp16 -> fp32 kernel (NEON FMLAL/FMLAL2)
    /// sums, in fp32 as it does; with the same summation order the results are bit-identical.
    /// A kernel that accumulated in fp16 (FMLA .8h) would round more and is not what this is.
    @inline(__always)
    func roundForward(batch: Int) {
        guard precision == .fp16 else { return }
        Half.round(output: computeWeights, input: parameters, count: parameterCount)
        Half.round(input, count: batch * description.input.count)
    }

    /// Under fp16: node `index`'s forward output rounded to binary16 (in place). Nothing under fp32.
    @inline(__always)
    func roundOutput(_ index: Int, batch: Int) {
        guard precision == .fp16 else { return }
        Half.round(nodes[index].output, count: batch * shapes[index].count)
    }

    /// Under fp16: node `index`'s complete output gradient rounded to binary16, right before
    /// its backward reads it. Nothing under fp32.
    @inline(__always)
    func roundOutputGradient(_ index: Int, batch: Int) {
        guard precision == .fp16 && trainability.requiresGradient[index] else { return }
        Half.round(nodes[index].dOutput, count: batch * shapes[index].count)
    }

    /// Under fp16: divides the (loss-scaled) weight gradients by `lossScale` in fp32 and tells
    /// whether they are all finite (false: the step must be skipped, see `LossScaler`).
    /// Under fp32 (scale 1) only the check.
    public func unscaleGradients() -> Bool {
        Half.scaleCheckingFinite(gradients, count: parameterCount, by: 1 / lossScale)
    }

    /// Runs the model on the first `batch` samples of `input`. In training mode batch norm
    /// uses batch statistics (and updates its running statistics) and max pool saves argmax.
    /// Under fp16 the input and every node's output are rounded to binary16 (evaluation too).
    public func forward(batch: Int, training: Bool) {
        precondition(batch >= 1 && batch <= maxBatch, "batch \(batch) outside 1...\(maxBatch)")
        roundForward(batch: batch)
        for index in 0..<description.layers.count {
            forwardNode(index, batch: batch, training: training)
            roundOutput(index, batch: batch)
        }
    }

    /// Per-sample loss and correctness of the last forward into `losses` and `correct`;
    /// with `gradient`, also dLogits for the weighted batch mean (weights from `sampleWeights`).
    public func loss(batch: Int, gradient: Bool) {
        let last = nodes[nodes.count - 1]
        if gradient {
            // The logits' gradient comes alive here (the loss accumulates into it).
            for index in layout.zeroBeforeLoss { context.forEachRange(batch * shapes[index].count, ElementwisePass.zero(target: nodes[index].dOutput)) }
            SoftmaxCrossEntropy.forwardBackward(
                losses: losses, correct: correct, dLogits: last.dOutput, logits: last.output, labels: labels,
                weights: sampleWeights, batch: batch, classes: description.classes, scale: lossScale / Float(lossMeanOver > 0 ? lossMeanOver : batch),
                context: context)
        } else {
            SoftmaxCrossEntropy.forward(
                losses: losses, correct: correct, logits: last.output, labels: labels,
                batch: batch, classes: description.classes, context: context)
        }
    }

    /// Zeroes the parameter gradients (backward accumulates). Output gradients share memory
    /// and are zeroed as each comes alive during backward (see `ActivationLayout`).
    public func zeroGradients(batch: Int) {
        Elementwise.zero(gradients, count: parameterCount)
    }

    /// Back-propagates the dLogits written by `loss(batch:gradient: true)` through every node.
    public func backward(batch: Int) {
        var index = nodes.count - 1
        while index >= 0 {
            for input in layout.zeroBeforeBackward[index] {
                context.forEachRange(batch * shapes[input].count, ElementwisePass.zero(target: nodes[input].dOutput))
            }
            roundOutputGradient(index, batch: batch)
            backwardNode(index, batch: batch)
            index -= 1
        }
    }

    /// zero gradients, forward, per-sample loss, backward: the training step without the update.
    public func forwardBackward(batch: Int) {
        forwardBackward(batch: batch, afterLoss: {})
    }

    /// The training step with `afterLoss` run between the loss and the backward, while every
    /// activation of the forward is intact (DIHCL's diversity reads the head's input there).
    public func forwardBackward(batch: Int, afterLoss: () -> Void) {
        zeroGradients(batch: batch)
        forward(batch: batch, training: true)
        loss(batch: batch, gradient: true)
        afterLoss()
        backward(batch: batch)
    }
}

extension Model {
    /// `forwardBackward` with two observers: `forwardDone(i)` runs right after node i's forward,
    /// while its output is as computed (a later in-place node, a ReLU over a batch norm, has not
    /// overwritten it yet), and `backwardReady(i)` right before node i's backward, when its
    /// output gradient is complete (before an in-place backward turns it into its input's); nodes
    /// that require no gradient (frozen before the first trained layer) get no `backwardReady`.
    /// For `leitner parity --dump-activations`; training never calls it: the calls are the only
    /// difference (a test checks losses and gradients bit for bit).
    public func observedForwardBackward(batch: Int, forwardDone: (Int) -> Void, backwardReady: (Int) -> Void) {
        precondition(batch >= 1 && batch <= maxBatch, "batch \(batch) outside 1...\(maxBatch)")
        zeroGradients(batch: batch)
        roundForward(batch: batch)
        for index in 0..<description.layers.count {
            forwardNode(index, batch: batch, training: true, fused: false)
            roundOutput(index, batch: batch)
            forwardDone(index)
        }
        loss(batch: batch, gradient: true)
        var index = nodes.count - 1
        while index >= 0 {
            roundOutputGradient(index, batch: batch)
            if trainability.requiresGradient[index] { backwardReady(index) }
            for input in layout.zeroBeforeBackward[index] {
                context.forEachRange(batch * shapes[input].count, ElementwisePass.zero(target: nodes[input].dOutput))
            }
            backwardNode(index, batch: batch, fused: false)
            index -= 1
        }
    }

    /// `forwardBackward` with each node's forward and backward timed: adds the seconds of node
    /// i's forward to `forwardSeconds[i]` and of its backward (with the zeroing of the output
    /// gradients that come alive there) to `backwardSeconds[i]`; returns the seconds of zeroing
    /// the parameter gradients plus the loss. For `leitner bench layers` (per-layer profiles);
    /// training never calls it: the clock reads are the only difference.
    public func profiledForwardBackward(batch: Int, forwardSeconds: UnsafeMutablePointer<Double>,
                                        backwardSeconds: UnsafeMutablePointer<Double>) -> Double {
        precondition(batch >= 1 && batch <= maxBatch, "batch \(batch) outside 1...\(maxBatch)")
        var start = Clock.seconds()
        zeroGradients(batch: batch)
        roundForward(batch: batch)
        var other = Clock.seconds() - start
        for index in 0..<description.layers.count {
            start = Clock.seconds()
            forwardNode(index, batch: batch, training: true)
            roundOutput(index, batch: batch)
            forwardSeconds[index] += Clock.seconds() - start
        }
        start = Clock.seconds()
        loss(batch: batch, gradient: true)
        other += Clock.seconds() - start
        var index = nodes.count - 1
        while index >= 0 {
            start = Clock.seconds()
            for input in layout.zeroBeforeBackward[index] {
                context.forEachRange(batch * shapes[input].count, ElementwisePass.zero(target: nodes[input].dOutput))
            }
            roundOutputGradient(index, batch: batch)
            backwardNode(index, batch: batch)
            backwardSeconds[index] += Clock.seconds() - start
            index -= 1
        }
        return other
    }
}
