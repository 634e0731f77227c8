import Kernels

extension Model {
    /// The conv shape of node `index` at the actual batch size.
    @inline(__always)
    func convShape(_ index: Int, batch: Int) -> Conv2DShape {
        var shape = conv[index]!
        shape.batch = batch
        return shape
    }

    /// The pooling shape of node `index` at the actual batch size.
    @inline(__always)
    func poolShape(_ index: Int, batch: Int) -> Pool2DShape {
        let layer = description.layers[index]
        let input = shapeAt(layer.inputs[0])
        return Pool2DShape(channels: input.channels, batch: batch, height: input.height, width: input.width,
                           kernel: layer.kernel, stride: layer.stride, padding: layer.padding)
    }

    /// Where element (n, c) of a channel-scale node's scale lives: flat [N, C] rows or a
    /// C x 1 x 1 tensor stored CNHW ([C, N]).
    @inline(__always)
    func scaleStrides(_ scale: Int, batch: Int) -> ChannelScale.Strides {
        let shape = shapeAt(scale)
        return shape.isFlat ? ChannelScale.Strides(sample: shape.channels, channel: 1) : ChannelScale.Strides(sample: 1, channel: batch)
    }

    /// Forward of one node. Activations are CNHW, so `batch * H * W` is a channel's run.
    /// The ReLU whose pass runs inside node `index`'s last pass, else -1: under fp32, a ReLU
    /// that writes in place over the node's output and keeps no bit mask, after a convolution
    /// with a bias (`Bias.addChannels(relu:)`) or a batch norm with its own statistics, not
    /// exchanged between ranks (`BatchNorm.forwardTraining(relu:)`, `forwardInference(relu:)`).
    /// The ReLU node's own forward then does nothing. The values are the same bits as the two
    /// passes; only `observedForwardBackward` runs them apart (its observer must see the node's
    /// output before the ReLU).
    @inline(__always)
    func fusedReLU(after index: Int) -> Int {
        guard precision == .fp32 else { return -1 }
        switch description.layers[index].kind {
        case .conv2d: if nodes[index].bias == nil { return -1 }
        case .batchNorm: if batchNormExchange != nil || trainability.frozenStatistics { return -1 }
        default: return -1
        }
        let relu = layout.inPlaceReLU[index]
        return relu >= 0 && nodes[relu].mask == nil ? relu : -1
    }

    /// Whether that fused ReLU's backward runs inside node `index`'s backward too (the ReLU's
    /// backward then does nothing): the node's gradient shares the ReLU's buffer, and for a
    /// convolution its bias is trained (`Bias.backwardChannels(reluOutput:)`, the mask and the
    /// bias sums in one pass); a batch norm reads its output gradient masked as the ReLU would
    /// (`BatchNorm.backward(reluBeta:)`, the mask recomputed from its input).
    @inline(__always)
    func fusesReLUGradient(after index: Int) -> Bool {
        let relu = fusedReLU(after: index)
        guard relu >= 0 && trainability.requiresGradient[index] && layout.gradientSharedWith[index] == relu else { return false }
        return description.layers[index].kind == .batchNorm || trainability.bias[index]
    }

    /// The ReLU nodes whose forward runs inside the pass of the node before (`fusedReLU(after:)`):
    /// `leitner bench layers` names them, tests check the fusion is taken.
    public var fusedReLUs: [Int] {
        description.layers.indices.compactMap { index in
            fusedReLU(after: index) >= 0 ? fusedReLU(after: index) : nil
        }
    }

    func forwardNode(_ index: Int, batch: Int, training: Bool, fused: Bool = true) {
        let layer = description.layers[index]
        let node = nodes[index]
        let from = source(layer.inputs[0])
        let inShape = shapeAt(layer.inputs[0])
        let outShape = shapes[index]
        let outSpatial = batch * outShape.height * outShape.width
        switch layer.kind {
        case .conv2d:
            // Not Winograd under fp16: its transforms would change the products an fp16 kernel
            // computes (see `roundComputeOperands`).
            Conv2D.forward(out: node.output, input: from, weights: node.weight!, shape: convShape(index, batch: batch),
                           scratch: scratch, scratchCount: scratchCount, context: context, winograd: precision == .fp32)
            if let bias = node.bias {
                Bias.addChannels(values: node.output, bias: bias, channels: outShape.channels, spatial: outSpatial,
                                 relu: fused && fusedReLU(after: index) >= 0, context: context)
            }
        case .depthwiseConv2d:
            DepthwiseConv2D.forward(out: node.output, input: from, weights: node.weight!, shape: convShape(index, batch: batch), context: context)
            if let bias = node.bias {
                Bias.addChannels(values: node.output, bias: bias, channels: outShape.channels, spatial: outSpatial, relu: false, context: context)
            }
        case .batchNorm:
            if training && !trainability.frozenStatistics, let exchange = batchNormExchange {
                forwardExchangedBatchNorm(index, exchange: exchange, input: from, batch: batch)
            } else if training && !trainability.frozenStatistics {
                BatchNorm.forwardTraining(
                    output: node.output, savedMean: node.savedMean!, savedInvStd: node.savedInverseStd!,
                    runningMean: node.runningMean!, runningVariance: node.runningVariance!,
                    input: from, gamma: node.weight!, beta: node.bias!, channels: outShape.channels, spatial: outSpatial,
                    epsilon: Float(layer.epsilon), momentum: Float(layer.momentum),
                    relu: fused && fusedReLU(after: index) >= 0, context: context)
            } else {
                BatchNorm.forwardInference(
                    output: node.output, input: from, gamma: node.weight!, beta: node.bias!,
                    runningMean: node.runningMean!, runningVariance: node.runningVariance!,
                    channels: outShape.channels, spatial: outSpatial, epsilon: Float(layer.epsilon),
                    relu: fused && fusedReLU(after: index) >= 0, context: context)
            }
        case .relu:
            if fused && layer.inputs[0] >= 0 && fusedReLU(after: layer.inputs[0]) == index {
                break  // done by the convolution's bias pass or the batch norm's normalisation
            }
            if training, let mask = node.mask {
                context.forEachRange(batch * outShape.count, ElementwisePass.reluForwardMasked(output: node.output, mask: mask, input: from))
            } else {
                context.forEachRange(batch * outShape.count, ElementwisePass.reluForward(output: node.output, input: from))
            }
        case .relu6:
            context.forEachRange(batch * outShape.count, ElementwisePass.relu6Forward(output: node.output, input: from))
        case .hardSwish:
            context.forEachRange(batch * outShape.count, ElementwisePass.hardSwishForward(output: node.output, input: from))
        case .hardSigmoid:
            context.forEachRange(batch * outShape.count, ElementwisePass.hardSigmoidForward(output: node.output, input: from))
        case .dropout:
            if training {
                let drop = DropoutPass(output: node.output, mask: node.mask!, input: from, key: Model.dropoutKey(dropoutSeed, node: index),
                                       threshold: Dropout.threshold(probability: layer.probability),
                                       scale: Dropout.scale(probability: layer.probability))
                context.forEachRange(batch * outShape.count, drop)
            } else if node.output != from {
                Elementwise.copy(node.output, from, count: batch * outShape.count)
            }
        case .channelMul:
            let scale = layer.inputs[1]
            ChannelScale.forward(output: node.output, input: from, scale: source(scale), channels: outShape.channels, batch: batch,
                                 plane: outShape.height * outShape.width, strides: scaleStrides(scale, batch: batch), context: context)
        case .maxPool:
            MaxPool2D.forward(out: node.output, indices: node.indices!, input: from, shape: poolShape(index, batch: batch), context: context)
        case .avgPool:
            AvgPool2D.forward(out: node.output, input: from, shape: poolShape(index, batch: batch), context: context)
        case .globalAvgPool:
            GlobalAvgPool.forward(out: node.output, input: from, channels: inShape.channels, batch: batch,
                                  height: inShape.height, width: inShape.width, context: context)
        case .flatten:
            if inShape.isFlat {
                Elementwise.copy(node.output, from, count: batch * inShape.count)
            } else {
                Layout.cnhwToRows(rows: node.output, cnhw: from, channels: inShape.channels, batch: batch,
                                  height: inShape.height, width: inShape.width)
            }
        case .linear:
            // out[N, O] = in[N, I] * W[O, I]^T
            GEMM.simd(transA: .none, transB: .transposed, m: batch, n: outShape.count, k: inShape.count,
                      alpha: 1, a: from, lda: inShape.count, b: node.weight!, ldb: inShape.count,
                      beta: 0, c: node.output, ldc: outShape.count, context: context)
            if let bias = node.bias { Bias.addRows(values: node.output, bias: bias, rows: batch, features: outShape.count) }
        case .add:
            let count = batch * outShape.count
            let host = layout.outputInPlaceOf[index]
            if host >= 0 {
                // In place over one input's buffer: add the other.
                let other = source(host == layer.inputs[0] ? layer.inputs[1] : layer.inputs[0])
                context.forEachRange(count, ElementwisePass.add(target: node.output, source: other))
            } else {
                Elementwise.copy(node.output, from, count: count)
                Elementwise.add(node.output, source(layer.inputs[1]), count: count)
            }
        }
    }

    /// Backward of one node: accumulates into its trained parameters' gradients and into the
    /// output gradients of the nodes it read that require one (never the model input). A node
    /// that requires no gradient (all frozen before the first trained layer) does nothing.
    func backwardNode(_ index: Int, batch: Int, fused: Bool = true) {
        let trainable = trainability
        guard trainable.requiresGradient[index] else { return }
        let layer = description.layers[index]
        let node = nodes[index]
        let fromIndex = layer.inputs[0]
        let from = source(fromIndex)
        let dFrom: UnsafeMutablePointer<Float>? = fromIndex == -1 || !trainable.requiresGradient[fromIndex] ? nil : nodes[fromIndex].dOutput
        let dWeight = trainable.weight[index] ? node.dWeight : nil
        let dBias = trainable.bias[index] ? node.dBias : nil
        let inShape = shapeAt(fromIndex)
        let outShape = shapes[index]
        let outSpatial = batch * outShape.height * outShape.width
        // The inputs whose gradient this backward writes first: written, not added into (they
        // were not zeroed; see `ActivationLayout.overwriteBeforeBackward`).
        let overwrites = layout.overwriteBeforeBackward[index]
        let accumulate = !overwrites.contains(fromIndex)
        switch layer.kind {
        case .conv2d:
            let shape = convShape(index, batch: batch)
            if let dBias, !(fused && fusesReLUGradient(after: index)) {
                Bias.backwardChannels(dBias: dBias, dOutput: node.dOutput, channels: outShape.channels, spatial: outSpatial,
                                      reluOutput: nil, context: context)
            }
            if let dWeight {
                Conv2D.backwardWeights(dWeights: dWeight, dOut: node.dOutput, input: from, shape: shape,
                                       scratch: scratch, scratchCount: scratchCount, context: context)
            }
            if let dFrom {
                Conv2D.backwardData(dInput: dFrom, dOut: node.dOutput, weights: node.weight!, shape: shape,
                                    scratch: scratch, scratchCount: scratchCount, context: context,
                                    winograd: precision == .fp32, accumulate: accumulate)
            }
        case .depthwiseConv2d:
            let shape = convShape(index, batch: batch)
            if let dBias {
                Bias.backwardChannels(dBias: dBias, dOutput: node.dOutput, channels: outShape.channels, spatial: outSpatial,
                                      reluOutput: nil, context: context)
            }
            if let dWeight { DepthwiseConv2D.backwardWeights(dWeights: dWeight, dOut: node.dOutput, input: from, shape: shape, context: context) }
            if let dFrom { DepthwiseConv2D.backwardData(dInput: dFrom, dOut: node.dOutput, weights: node.weight!, shape: shape, context: context) }
        case .batchNorm:
            if let dFrom, !accumulate && (trainable.frozenStatistics || batchNormExchange != nil) {
                // (these two add into dInput)
                context.forEachRange(batch * inShape.count, ElementwisePass.zero(target: dFrom))
            }
            if trainable.frozenStatistics {
                BatchNorm.backwardFrozen(
                    dInput: dFrom, dGamma: dWeight, dBeta: dBias, dOutput: node.dOutput, input: dWeight == nil ? nil : from,
                    gamma: node.weight!, runningMean: node.runningMean!, runningVariance: node.runningVariance!,
                    channels: outShape.channels, spatial: outSpatial, epsilon: Float(layer.epsilon), context: context)
                break
            }
            // Batch norm's dInput is needed even for the model input's consumer chain; when the
            // input is the model input it is computed into a discarded gradient (none here).
            if let exchange = batchNormExchange {
                backwardExchangedBatchNorm(index, exchange: exchange, dInput: dFrom ?? scratch, batch: batch)
            } else {
                // the fused ReLU's mask, recomputed from the input with beta (see `reluBeta`)
                let reluBeta = fused && fusesReLUGradient(after: index) ? UnsafePointer(node.bias!) : nil
                BatchNorm.backward(
                    dInput: dFrom ?? scratch, dGamma: node.dWeight!, dBeta: node.dBias!, dOutput: node.dOutput,
                    savedMean: node.savedMean!, savedInvStd: node.savedInverseStd!, input: from, gamma: node.weight!,
                    channels: outShape.channels, spatial: outSpatial, reluBeta: reluBeta, accumulate: accumulate,
                    context: context)
            }
        case .relu:
            if fused && fromIndex >= 0 && fusesReLUGradient(after: fromIndex) {
                // A batch norm reads its gradient masked; for a convolution the mask and its bias
                // gradient in one pass over the shared buffer
                if description.layers[fromIndex].kind == .conv2d {
                    Bias.backwardChannels(dBias: nodes[fromIndex].dBias!, dOutput: node.dOutput, channels: outShape.channels,
                                          spatial: outSpatial, reluOutput: node.output, context: context)
                }
                break
            }
            if let dFrom, let mask = node.mask {
                if layout.gradientSharedWith[fromIndex] == index {
                    context.forEachRange(batch * outShape.count, ElementwisePass.reluBackwardMaskedInPlace(gradient: node.dOutput, mask: mask))
                } else {
                    context.forEachRange(batch * outShape.count, ElementwisePass.reluBackwardMasked(dInput: dFrom, dOutput: node.dOutput, mask: mask))
                }
            } else if let dFrom {
                if layout.gradientSharedWith[fromIndex] == index {
                    context.forEachRange(batch * outShape.count, ElementwisePass.reluBackwardInPlace(gradient: node.dOutput, output: node.output))
                } else {
                    context.forEachRange(batch * outShape.count, ElementwisePass.reluBackward(dInput: dFrom, dOutput: node.dOutput, output: node.output))
                }
            }
        case .relu6:
            if let dFrom {
                if layout.gradientSharedWith[fromIndex] == index {
                    context.forEachRange(batch * outShape.count, ElementwisePass.relu6BackwardInPlace(gradient: node.dOutput, output: node.output))
                } else {
                    context.forEachRange(batch * outShape.count, ElementwisePass.relu6Backward(dInput: dFrom, dOutput: node.dOutput, output: node.output))
                }
            }
        case .hardSwish:
            if let dFrom {
                if layout.gradientSharedWith[fromIndex] == index {
                    context.forEachRange(batch * outShape.count, ElementwisePass.hardSwishBackwardInPlace(gradient: node.dOutput, input: from))
                } else {
                    context.forEachRange(batch * outShape.count, ElementwisePass.hardSwishBackward(dInput: dFrom, dOutput: node.dOutput, input: from))
                }
            }
        case .hardSigmoid:
            if let dFrom {
                if layout.gradientSharedWith[fromIndex] == index {
                    context.forEachRange(batch * outShape.count, ElementwisePass.hardSigmoidBackwardInPlace(gradient: node.dOutput, input: from))
                } else {
                    context.forEachRange(batch * outShape.count, ElementwisePass.hardSigmoidBackward(dInput: dFrom, dOutput: node.dOutput, input: from))
                }
            }
        case .dropout:
            if let dFrom {
                let scale = Dropout.scale(probability: layer.probability)
                if layout.gradientSharedWith[fromIndex] == index {
                    context.forEachRange(batch * outShape.count, ElementwisePass.dropoutBackwardInPlace(gradient: node.dOutput, mask: node.mask!, scale: scale))
                } else {
                    context.forEachRange(batch * outShape.count, ElementwisePass.dropoutBackward(dInput: dFrom, dOutput: node.dOutput, mask: node.mask!, scale: scale))
                }
            }
        case .channelMul:
            let scale = layer.inputs[1]
            let dScale: UnsafeMutablePointer<Float>? = scale == -1 || !trainable.requiresGradient[scale] ? nil : nodes[scale].dOutput
            if dFrom != nil || dScale != nil {
                ChannelScale.backward(dInput: dFrom, dScale: dScale, dOutput: node.dOutput, input: from, scale: source(scale),
                                      channels: outShape.channels, batch: batch, plane: outShape.height * outShape.width,
                                      strides: scaleStrides(scale, batch: batch), context: context)
            }
        case .maxPool:
            if let dFrom {
                MaxPool2D.backward(dInput: dFrom, dOut: node.dOutput, indices: node.indices!, shape: poolShape(index, batch: batch),
                                   accumulate: accumulate, context: context)
            }
        case .avgPool:
            if let dFrom {
                AvgPool2D.backward(dInput: dFrom, dOut: node.dOutput, shape: poolShape(index, batch: batch), accumulate: accumulate,
                                   context: context)
            }
        case .globalAvgPool:
            if let dFrom {
                GlobalAvgPool.backward(dInput: dFrom, dOut: node.dOutput, channels: inShape.channels, batch: batch,
                                       height: inShape.height, width: inShape.width, accumulate: accumulate, context: context)
            }
        case .flatten:
            if let dFrom {
                switch (inShape.isFlat, accumulate) {
                case (true, true): Elementwise.add(dFrom, node.dOutput, count: batch * inShape.count)
                case (true, false): Elementwise.copy(dFrom, node.dOutput, count: batch * inShape.count)
                case (false, true):
                    Layout.rowsToCNHWAccumulate(cnhw: dFrom, rows: node.dOutput, channels: inShape.channels, batch: batch,
                                                height: inShape.height, width: inShape.width)
                case (false, false):
                    Layout.rowsToCNHW(cnhw: dFrom, rows: node.dOutput, channels: inShape.channels, batch: batch,
                                      height: inShape.height, width: inShape.width)
                }
            }
        case .linear:
            // dW[O, I] += dOut[N, O]^T * in[N, I]
            if let dWeight {
                GEMM.simd(transA: .transposed, transB: .none, m: outShape.count, n: inShape.count, k: batch,
                          alpha: 1, a: node.dOutput, lda: outShape.count, b: from, ldb: inShape.count,
                          beta: 1, c: dWeight, ldc: inShape.count, context: context)
            }
            if let dBias { Bias.backwardRows(dBias: dBias, dOutput: node.dOutput, rows: batch, features: outShape.count) }
            // dIn[N, I] += dOut[N, O] * W[O, I]
            if let dFrom {
                GEMM.simd(transA: .none, transB: .none, m: batch, n: inShape.count, k: outShape.count,
                          alpha: 1, a: node.dOutput, lda: outShape.count, b: node.weight!, ldb: inShape.count,
                          beta: accumulate ? 1 : 0, c: dFrom, ldc: inShape.count, context: context)
            }
        case .add:
            // An input sharing this gradient buffer receives it without work.
            let count = batch * outShape.count
            for input in layer.inputs where input != -1 && trainable.requiresGradient[input] && layout.gradientSharedWith[input] != index {
                let target = nodes[input].dOutput
                if overwrites.contains(input) {
                    context.forEachRange(count, ElementwisePass.copy(target: target, source: node.dOutput))
                } else {
                    context.forEachRange(count, ElementwisePass.add(target: target, source: node.dOutput))
                }
            }
        }
    }
}

/// The per-element passes of ReLU and add nodes, run by `KernelContext.forEachRange` on one
/// range of elements each (the pointers are the whole tensors; a mask holds 32 elements a word).
enum ElementwisePass: RangeTask {
    case reluForward(output: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case reluForwardMasked(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>, input: UnsafeMutablePointer<Float>)
    case reluBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>)
    case reluBackwardInPlace(gradient: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>)
    case reluBackwardMasked(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>)
    case reluBackwardMaskedInPlace(gradient: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>)
    /// target += source.
    case add(target: UnsafeMutablePointer<Float>, source: UnsafeMutablePointer<Float>)
    /// target = source.
    case copy(target: UnsafeMutablePointer<Float>, source: UnsafeMutablePointer<Float>)
    case zero(target: UnsafeMutablePointer<Float>)
    case relu6Forward(output: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case relu6Backward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>)
    case relu6BackwardInPlace(gradient: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>)
    case hardSwishForward(output: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case hardSwishBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case hardSwishBackwardInPlace(gradient: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case hardSigmoidForward(output: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case hardSigmoidBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case hardSigmoidBackwardInPlace(gradient: UnsafeMutablePointer<Float>, input: UnsafeMutablePointer<Float>)
    case dropoutBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>, scale: Float)
    case dropoutBackwardInPlace(gradient: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>, scale: Float)

    func run(start: Int, count: Int) {
        switch self {
        case let .reluForward(output, input):
            ReLU.forward(output: output + start, input: input + start, count: count)
        case let .reluForwardMasked(output, mask, input):
            ReLU.forwardMasked(output: output + start, mask: mask + start / 32, input: input + start, count: count)
        case let .reluBackward(dInput, dOutput, output):
            ReLU.backward(dInput: dInput + start, dOutput: dOutput + start, output: output + start, count: count)
        case let .reluBackwardInPlace(gradient, output):
            ReLU.backwardInPlace(gradient: gradient + start, output: output + start, count: count)
        case let .reluBackwardMasked(dInput, dOutput, mask):
            ReLU.backwardMasked(dInput: dInput + start, dOutput: dOutput + start, mask: mask + start / 32, count: count)
        case let .reluBackwardMaskedInPlace(gradient, mask):
            ReLU.backwardMaskedInPlace(gradient: gradient + start, mask: mask + start / 32, count: count)
        case let .add(target, source):
            Elementwise.add(target + start, source + start, count: count)
        case let .copy(target, source):
            Elementwise.copy(target + start, source + start, count: count)
        case let .zero(target):
            Elementwise.zero(target + start, count: count)
        case let .relu6Forward(output, input):
            ReLU6.forward(output: output + start, input: input + start, count: count)
        case let .relu6Backward(dInput, dOutput, output):
            ReLU6.backward(dInput: dInput + start, dOutput: dOutput + start, output: output + start, count: count)
        case let .relu6BackwardInPlace(gradient, output):
            ReLU6.backwardInPlace(gradient: gradient + start, output: output + start, count: count)
        case let .hardSwishForward(output, input):
            HardSwish.forward(output: output + start, input: input + start, count: count)
        case let .hardSwishBackward(dInput, dOutput, input):
            HardSwish.backward(dInput: dInput + start, dOutput: dOutput + start, input: input + start, count: count)
        case let .hardSwishBackwardInPlace(gradient, input):
            HardSwish.backwardInPlace(gradient: gradient + start, input: input + start, count: count)
        case let .hardSigmoidForward(output, input):
            HardSigmoid.forward(output: output + start, input: input + start, count: count)
        case let .hardSigmoidBackward(dInput, dOutput, input):
            HardSigmoid.backward(dInput: dInput + start, dOutput: dOutput + start, input: input + start, count: count)
        case let .hardSigmoidBackwardInPlace(gradient, input):
            HardSigmoid.backwardInPlace(gradient: gradient + start, input: input + start, count: count)
        case let .dropoutBackward(dInput, dOutput, mask, scale):
            Dropout.backward(dInput: dInput + start, dOutput: dOutput + start, mask: mask + start / 32, count: count, scale: scale)
        case let .dropoutBackwardInPlace(gradient, mask, scale):
            Dropout.backwardInPlace(gradient: gradient + start, mask: mask + start / 32, count: count, scale: scale)
        }
    }
}

/// Dropout's training forward over one range of elements (the range's first element index
/// feeds the counter-based draws, so the mask does not depend on the split).
struct DropoutPass: RangeTask {
    let output: UnsafeMutablePointer<Float>
    let mask: UnsafeMutablePointer<UInt32>
    let input: UnsafeMutablePointer<Float>
    let key: UInt64
    let threshold: UInt32
    let scale: Float

    func run(start: Int, count: Int) {
        Dropout.forward(output: output + start, mask: mask + start / 32, input: input + start, count: count, first: start,
                        key: key, threshold: threshold, scale: scale)
    }
}
