/// The optimizer's per-parameter state to save and restore beside the model: named buffers,
/// each laid out like `Model.parameters` (parameterCount floats), so a parameter tensor's
/// `offset` locates its state. State names follow PyTorch's optimizer state_dict.
public struct OptimizerState {
    /// The optimizer's name, stored as metadata "optimizer" ("none", "sgd", "adamw").
    public let name: String
    /// State name ("momentum_buffer", "exp_avg", ...) and its buffer of parameterCount floats.
    public let buffers: [(state: String, pointer: UnsafeMutablePointer<Float>)]

    public init(name: String, buffers: [(state: String, pointer: UnsafeMutablePointer<Float>)]) {
        self.name = name
        self.buffers = buffers
    }

    /// No optimizer state (plain SGD without momentum, or a model-only checkpoint).
    public static var none: OptimizerState { OptimizerState(name: "none", buffers: []) }

    /// SGD: "momentum_buffer" when momentum is used (pass nil when momentum is 0).
    public static func sgd(momentumBuffer: UnsafeMutablePointer<Float>?) -> OptimizerState {
        guard let momentumBuffer else { return OptimizerState(name: "sgd", buffers: []) }
        return OptimizerState(name: "sgd", buffers: [(state: "momentum_buffer", pointer: momentumBuffer)])
    }

    /// AdamW: first moment "exp_avg" (m) and second moment "exp_avg_sq" (v). The step count
    /// t belongs in the metadata.
    public static func adamW(firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>) -> OptimizerState {
        OptimizerState(name: "adamw", buffers: [(state: "exp_avg", pointer: firstMoment),
                                                (state: "exp_avg_sq", pointer: secondMoment)])
    }

    /// Every optimizer tensor name in a checkpoint starts so.
    public static let tensorPrefix = "optimizer."

    /// The checkpoint name of `state` of parameter tensor `parameter`:
    /// "optimizer.conv0.weight.exp_avg".
    public static func tensorName(_ parameter: String, state: String) -> String {
        tensorPrefix + parameter + "." + state
    }
}

extension Optimizer {
    /// The state under its checkpoint names (metadata "optimizer" = `config.name`); SGD
    /// without momentum has none. The step count is the caller's metadata "step".
    public var checkpointState: OptimizerState {
        switch config {
        case let .sgd(momentum, _, _):
            return .sgd(momentumBuffer: momentum == 0 ? nil : state)
        case .adamw:
            return .adamW(firstMoment: state, secondMoment: state + model.parameterCount)
        }
    }
}
