/// The per-sample shape of a node's output: spatial (C, H, W), stored CNHW across the batch,
/// or flat (F features), stored as rows [N, F].
public struct TensorShape: Equatable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var isFlat: Bool

    public static func spatial(_ channels: Int, _ height: Int, _ width: Int) -> TensorShape {
        TensorShape(channels: channels, height: height, width: width, isFlat: false)
    }
    public static func flat(_ features: Int) -> TensorShape {
        TensorShape(channels: features, height: 1, width: 1, isFlat: true)
    }

    /// Floats per sample.
    public var count: Int { channels * height * width }
}

/// Layer kinds. The raw values are stored in checkpoints: append only, never renumber.
public enum LayerKind: UInt8 {
    case conv2d = 1
    case depthwiseConv2d = 2
    case batchNorm = 3
    case relu = 4
    case maxPool = 5
    case avgPool = 6
    case globalAvgPool = 7
    case flatten = 8
    case linear = 9
    case add = 10
    case relu6 = 11
    case hardSwish = 12
    case hardSigmoid = 13
    /// Per-channel product: input 0 [N, C, H, W] times input 1 [N, C] (squeeze-excitation).
    case channelMul = 14
    case dropout = 15
}

/// One node of a model: a layer kind, its hyper-parameters and the nodes it reads.
/// Input index -1 is the model's input.
public struct LayerSpec {
    public var name: String
    public var kind: LayerKind
    public var inputs: [Int]
    public var outChannels = 0
    public var kernel = 1
    public var stride = 1
    public var padding = 0
    public var bias = false
    /// Dropout's probability of zeroing an element, in [0, 1).
    public var probability = 0.0
    /// Batch norm's epsilon and running-statistics momentum (PyTorch's defaults; torchvision's
    /// mobilenet_v3 uses 0.001 and 0.01).
    public var epsilon = 1e-5
    public var momentum = 0.1
}

/// A model as data: input shape, class count and a list of nodes in execution order, each
/// reading earlier nodes. Build one with `ModelBuilder`; the runtime (`Model`) plans memory
/// and runs it. The last node's output is the logits.
public struct ModelDescription {
    /// The largest model description file read (a large backbone is a few hundred lines).
    public static let maximumFileBytes = 1 << 20

    public var name: String
    public var input: TensorShape
    public var classes: Int
    public var layers: [LayerSpec]
}

/// Why a description is not a valid model.
public struct ModelError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// Builds a `ModelDescription` node by node; each call returns the new node's index.
public struct ModelBuilder {
    public private(set) var description: ModelDescription
    private var counts: [UInt8: Int] = [:]

    public init(name: String, input: TensorShape, classes: Int) {
        description = ModelDescription(name: name, input: input, classes: classes, layers: [])
    }

    mutating func renameLayer(_ index: Int, _ name: String) {
        description.layers[index].name = name
    }

    /// The model input's index.
    public static let input = -1

    /// Index of the most recently added node (or the input when none).
    public var last: Int { description.layers.count - 1 }

    private mutating func add(_ kind: LayerKind, _ prefix: String, _ inputs: [Int], configure: (inout LayerSpec) -> Void = { _ in }) -> Int {
        let number = counts[kind.rawValue, default: 0]
        counts[kind.rawValue] = number + 1
        var spec = LayerSpec(name: "\(prefix)\(number)", kind: kind, inputs: inputs)
        configure(&spec)
        description.layers.append(spec)
        return description.layers.count - 1
    }

    @discardableResult
    public mutating func conv(_ from: Int, out: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) -> Int {
        add(.conv2d, "conv", [from]) { $0.outChannels = out; $0.kernel = kernel; $0.stride = stride; $0.padding = padding; $0.bias = bias }
    }
    @discardableResult
    public mutating func depthwise(_ from: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true) -> Int {
        add(.depthwiseConv2d, "dwconv", [from]) { $0.kernel = kernel; $0.stride = stride; $0.padding = padding; $0.bias = bias }
    }
    @discardableResult
    public mutating func batchNorm(_ from: Int, epsilon: Double = 1e-5, momentum: Double = 0.1) -> Int {
        add(.batchNorm, "bn", [from]) {
            $0.epsilon = epsilon
            $0.momentum = momentum
        }
    }
    @discardableResult
    public mutating func relu(_ from: Int) -> Int { add(.relu, "relu", [from]) }
    @discardableResult
    public mutating func maxPool(_ from: Int, kernel: Int, stride: Int? = nil, padding: Int = 0) -> Int {
        add(.maxPool, "maxpool", [from]) { $0.kernel = kernel; $0.stride = stride ?? kernel; $0.padding = padding }
    }
    @discardableResult
    public mutating func avgPool(_ from: Int, kernel: Int, stride: Int? = nil, padding: Int = 0) -> Int {
        add(.avgPool, "avgpool", [from]) { $0.kernel = kernel; $0.stride = stride ?? kernel; $0.padding = padding }
    }
    @discardableResult
    public mutating func globalAvgPool(_ from: Int) -> Int { add(.globalAvgPool, "gap", [from]) }
    @discardableResult
    public mutating func flatten(_ from: Int) -> Int { add(.flatten, "flatten", [from]) }
    @discardableResult
    public mutating func linear(_ from: Int, out: Int, bias: Bool = true) -> Int {
        add(.linear, "fc", [from]) { $0.outChannels = out; $0.bias = bias }
    }
    @discardableResult
    public mutating func add(_ left: Int, _ right: Int) -> Int { add(.add, "add", [left, right]) }
    @discardableResult
    public mutating func relu6(_ from: Int) -> Int { add(.relu6, "relu6_", [from]) }
    @discardableResult
    public mutating func hardSwish(_ from: Int) -> Int { add(.hardSwish, "hardswish", [from]) }
    @discardableResult
    public mutating func hardSigmoid(_ from: Int) -> Int { add(.hardSigmoid, "hardsigmoid", [from]) }
    /// `values` [N, C, H, W] times `scale` [N, C] (flat C or spatial C x 1 x 1), per channel.
    @discardableResult
    public mutating func channelMul(_ values: Int, scale: Int) -> Int { add(.channelMul, "mul", [values, scale]) }
    @discardableResult
    public mutating func dropout(_ from: Int, probability: Double) -> Int {
        add(.dropout, "dropout", [from]) { $0.probability = probability }
    }
}

extension ModelDescription {
    /// Output shape of every node, validating kinds, inputs and sizes.
    public func shapes() throws(ModelError) -> [TensorShape] {
        var result: [TensorShape] = []
        func shapeOf(_ index: Int, for layer: String) throws(ModelError) -> TensorShape {
            if index == -1 { return input }
            guard index >= 0 && index < result.count else {
                throw ModelError(message: "model \(name): layer \(layer) reads node \(index), which is not an earlier node")
            }
            return result[index]
        }
        for layer in layers {
            guard let first = layer.inputs.first else { throw ModelError(message: "model \(name): layer \(layer.name) has no input") }
            let source = try shapeOf(first, for: layer.name)
            func spatialOut(channels: Int) throws(ModelError) -> TensorShape {
                guard !source.isFlat else { throw ModelError(message: "model \(name): \(layer.name) needs a spatial input, got \(source.count) flat features") }
                guard layer.kernel >= 1, layer.stride >= 1, layer.padding >= 0, layer.padding * 2 < layer.kernel + 1 else {
                    throw ModelError(message: "model \(name): \(layer.name) has kernel \(layer.kernel), stride \(layer.stride), padding \(layer.padding)")
                }
                let height = (source.height + 2 * layer.padding - layer.kernel) / layer.stride + 1
                let width = (source.width + 2 * layer.padding - layer.kernel) / layer.stride + 1
                guard height >= 1, width >= 1, source.height + 2 * layer.padding >= layer.kernel, source.width + 2 * layer.padding >= layer.kernel else {
                    throw ModelError(message: "model \(name): \(layer.name) kernel \(layer.kernel) does not fit its \(source.height)x\(source.width) input")
                }
                return .spatial(channels, height, width)
            }
            switch layer.kind {
            case .conv2d:
                guard layer.outChannels >= 1 else { throw ModelError(message: "model \(name): \(layer.name) needs at least one output channel") }
                result.append(try spatialOut(channels: layer.outChannels))
            case .depthwiseConv2d, .maxPool, .avgPool:
                result.append(try spatialOut(channels: source.channels))
            case .batchNorm:
                guard layer.epsilon > 0 && layer.epsilon < 1 && layer.momentum > 0 && layer.momentum <= 1 else {
                    throw ModelError(message: "model \(name): \(layer.name) needs 0 < eps < 1 and 0 < momentum <= 1, got eps \(layer.epsilon), momentum \(layer.momentum)")
                }
                result.append(source)
            case .relu, .relu6, .hardSwish, .hardSigmoid:
                result.append(source)
            case .dropout:
                guard layer.probability >= 0 && layer.probability < 1 else {
                    throw ModelError(message: "model \(name): \(layer.name) has dropout probability \(layer.probability), outside [0, 1)")
                }
                result.append(source)
            case .channelMul:
                guard layer.inputs.count == 2 else { throw ModelError(message: "model \(name): \(layer.name) multiplies exactly two nodes") }
                let scale = try shapeOf(layer.inputs[1], for: layer.name)
                guard !source.isFlat else {
                    throw ModelError(message: "model \(name): \(layer.name) scales a spatial CxHxW node, got \(source.count) flat features")
                }
                guard scale.channels == source.channels && scale.height == 1 && scale.width == 1 else {
                    throw ModelError(message: "model \(name): \(layer.name) needs a scale of \(source.channels) channels (flat or \(source.channels)x1x1), got \(scale.isFlat ? "\(scale.count) flat" : "\(scale.channels)x\(scale.height)x\(scale.width)")")
                }
                result.append(source)
            case .globalAvgPool:
                guard !source.isFlat else { throw ModelError(message: "model \(name): \(layer.name) needs a spatial input") }
                result.append(.flat(source.channels))
            case .flatten:
                result.append(.flat(source.count))
            case .linear:
                guard source.isFlat else { throw ModelError(message: "model \(name): \(layer.name) needs flat input; add a flatten first") }
                guard layer.outChannels >= 1 else { throw ModelError(message: "model \(name): \(layer.name) needs at least one output") }
                result.append(.flat(layer.outChannels))
            case .add:
                guard layer.inputs.count == 2 else { throw ModelError(message: "model \(name): \(layer.name) adds exactly two nodes") }
                let other = try shapeOf(layer.inputs[1], for: layer.name)
                guard other == source else { throw ModelError(message: "model \(name): \(layer.name) adds different shapes") }
                result.append(source)
            }
        }
        guard let logits = result.last, logits.isFlat, logits.count == classes else {
            throw ModelError(message: "model \(name): the last layer must give \(classes) flat logits")
        }
        return result
    }
}
