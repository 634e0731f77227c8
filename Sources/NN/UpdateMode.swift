/// Which parameters a run trains: all of them, or a part (fine-tuning, TinyTL).
/// Layers "with parameters" are conv, depthwise conv, batch norm and linear layers.
public enum UpdateMode: Equatable {
    /// Every parameter; batch norm normalises with batch statistics.
    case all
    /// The last K layers with parameters (weights and biases).
    case last(Int)
    /// The last linear layer (the classifier head).
    case head
    /// Every bias: conv, depthwise and linear biases and batch norm's beta.
    case biasOnly
    /// Batch norm's gamma and beta and every bias.
    case batchNormAndBias

    /// "all | last:K | head | bias-only | bn+bias".
    public static let syntax = "all | last:K | head | bias-only | bn+bias"

    public init?(parsing text: String) {
        switch text {
        case "all": self = .all
        case "head": self = .head
        case "bias-only": self = .biasOnly
        case "bn+bias": self = .batchNormAndBias
        default:
            guard text.hasPrefix("last:"), let count = Int(text.dropFirst(5)), count >= 1 else { return nil }
            self = .last(count)
        }
    }

    public var name: String {
        switch self {
        case .all: return "all"
        case .last(let count): return "last:\(count)"
        case .head: return "head"
        case .biasOnly: return "bias-only"
        case .batchNormAndBias: return "bn+bias"
        }
    }
}

/// What a run trains, node by node, and what backward must therefore compute:
/// `requiresGradient[i]` is true when node i has a trained tensor or reads a node that
/// requires a gradient (PyTorch's requires_grad), so backward stops at the first node with
/// trained parameters and frozen weights get neither dW nor the activations dW reads.
///
/// Batch norm in a partial mode normalises with its pretrained running statistics and does
/// not update them (TinyTL): the layer is then an affine map whose backward needs no saved
/// input for dx and dBeta (only dGamma reads it).
public struct Trainability: Equatable {
    public let mode: UpdateMode
    /// Per node: its weight (BN: gamma) is trained; its bias (BN: beta) is trained.
    public let weight: [Bool]
    public let bias: [Bool]
    public let requiresGradient: [Bool]
    /// Batch norm uses running statistics while training (frozen, not updated).
    public let frozenStatistics: Bool

    /// `trainHead` also trains the last linear layer whatever the mode (a replaced head must
    /// learn). `frozenStatistics` nil: frozen in every mode except `.all`.
    public init(_ description: ModelDescription, mode: UpdateMode, trainHead: Bool = false,
                frozenStatistics: Bool? = nil) throws(ModelError) {
        let layers = description.layers
        var weight = [Bool](repeating: false, count: layers.count)
        var bias = [Bool](repeating: false, count: layers.count)
        let withParameters = layers.indices.filter { Trainability.hasParameters(layers[$0]) }
        let head = layers.indices.last { layers[$0].kind == .linear }
        switch mode {
        case .all:
            for index in withParameters { weight[index] = true; bias[index] = true }
        case .last(let count):
            // More layers than the model has would silently mean "all" (with frozen statistics).
            guard count <= withParameters.count else {
                throw ModelError(message: "--update last:\(count): model \(description.name) has \(withParameters.count) layers with parameters (use --update all to train them all)")
            }
            for index in withParameters.suffix(count) { weight[index] = true; bias[index] = true }
        case .head:
            guard let head else { throw ModelError(message: "--update head: model \(description.name) has no linear layer") }
            weight[head] = true; bias[head] = true
        case .biasOnly, .batchNormAndBias:
            for index in withParameters {
                bias[index] = layers[index].kind == .batchNorm || layers[index].bias
                if mode == .batchNormAndBias && layers[index].kind == .batchNorm { weight[index] = true }
            }
        }
        if trainHead, let head { weight[head] = true; bias[head] = true }
        for index in layers.indices where !(layers[index].bias || layers[index].kind == .batchNorm) { bias[index] = false }
        var requires = [Bool](repeating: false, count: layers.count)
        for (index, layer) in layers.enumerated() {
            requires[index] = weight[index] || bias[index] || layer.inputs.contains { $0 >= 0 && requires[$0] }
        }
        guard requires.last == true else {
            throw ModelError(message: "--update \(mode.name) trains no parameter of model \(description.name)")
        }
        self.mode = mode
        self.weight = weight
        self.bias = bias
        requiresGradient = requires
        self.frozenStatistics = frozenStatistics ?? (mode != .all)
    }

    /// Every parameter trained, batch statistics: plain training.
    public static func all(_ description: ModelDescription) -> Trainability {
        // `.all` trains every layer with parameters, so the last node always requires a gradient
        // unless the model has no parameter at all; then nothing is trained either way.
        (try? Trainability(description, mode: .all)) ?? Trainability(uncheckedAll: description)
    }

    private init(uncheckedAll description: ModelDescription) {
        let count = description.layers.count
        mode = .all
        weight = [Bool](repeating: true, count: count)
        bias = [Bool](repeating: true, count: count)
        requiresGradient = [Bool](repeating: true, count: count)
        frozenStatistics = false
    }

    static func hasParameters(_ layer: LayerSpec) -> Bool {
        switch layer.kind {
        case .conv2d, .depthwiseConv2d, .batchNorm, .linear: return true
        default: return false
        }
    }

    /// Whether node `index`'s backward reads its input's forward output.
    func backwardReadsInput(_ index: Int, _ kind: LayerKind) -> Bool {
        guard requiresGradient[index] else { return false }
        switch kind {
        case .conv2d, .depthwiseConv2d, .linear: return weight[index]
        case .batchNorm: return frozenStatistics ? weight[index] : true
        case .hardSwish, .hardSigmoid, .channelMul: return true
        default: return false
        }
    }

    /// True when some tensor or the statistics are frozen (anything but plain training).
    public var isPartial: Bool { mode != .all || frozenStatistics }
}
