/// A named view of one of the model's tensors, for checkpoints and interop.
public struct NamedTensor {
    /// PyTorch-style name: "<layer>.weight", "<layer>.bias", "<layer>.running_mean", "<layer>.running_var".
    public let name: String
    /// PyTorch shape: conv [O, I, KH, KW], depthwise [C, 1, KH, KW], linear [O, I], others [C].
    public let shape: [Int]
    public let pointer: UnsafeMutablePointer<Float>
    /// True for trained parameters (false for batch-norm running statistics).
    public let trainable: Bool
    /// Offset of the tensor within `Model.parameters` (trainable) or `Model.buffers` (statistics),
    /// so optimizer state laid out like the parameters can be named the same way.
    public let offset: Int

    public var count: Int { shape.reduce(1, *) }
}

extension Model {
    /// Every parameter and running statistic in node order, named like a PyTorch state_dict
    /// whose modules carry the layer names.
    public func tensors() -> [NamedTensor] {
        var result: [NamedTensor] = []
        for (index, layer) in description.layers.enumerated() {
            let node = nodes[index]
            let input = Model.inputShape(description, shapes, layer)
            let output = shapes[index]
            let weightShape: [Int]
            switch layer.kind {
            case .conv2d: weightShape = [output.channels, input.channels, layer.kernel, layer.kernel]
            case .depthwiseConv2d: weightShape = [output.channels, 1, layer.kernel, layer.kernel]
            case .linear: weightShape = [output.count, input.count]
            case .batchNorm: weightShape = [output.channels]
            default: weightShape = []
            }
            // The fp32 master weights (the compute copy under fp16 is derived from them).
            if let weight = node.weight {
                result.append(NamedTensor(name: layer.name + ".weight", shape: weightShape, pointer: master(weight),
                                          trainable: true, offset: weight - computeWeights))
            }
            if let bias = node.bias {
                result.append(NamedTensor(name: layer.name + ".bias", shape: [node.biasCount], pointer: master(bias),
                                          trainable: true, offset: bias - computeWeights))
            }
            if let mean = node.runningMean, let variance = node.runningVariance {
                result.append(NamedTensor(name: layer.name + ".running_mean", shape: [output.channels], pointer: mean,
                                          trainable: false, offset: mean - buffers))
                result.append(NamedTensor(name: layer.name + ".running_var", shape: [output.channels], pointer: variance,
                                          trainable: false, offset: variance - buffers))
            }
        }
        return result
    }
}
