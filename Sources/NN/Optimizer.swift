import Kernels

/// The optimizer and its hyper-parameters (PyTorch semantics).
public enum OptimizerConfig: Equatable {
    case sgd(momentum: Double, nesterov: Bool, weightDecay: Double)
    case adamw(beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double)

    /// Floats of optimizer state per parameter (momentum buffer; or two Adam moments).
    public var statePerParameter: Int {
        switch self {
        case let .sgd(momentum, _, _): return momentum == 0 ? 0 : 1
        case .adamw: return 2
        }
    }

    public var name: String {
        switch self {
        case .sgd: return "sgd"
        case .adamw: return "adamw"
        }
    }
}

/// The optimizer of one model: its configuration, its state in an arena of the memory plan's
/// `optimizerState` bytes, and the steps taken. A step runs the raw-buffer kernels (`SGD`,
/// `AdamW`) over the model's trained ranges only: frozen parameters, their gradients and their
/// state are never touched.
public final class Optimizer {
    public let config: OptimizerConfig
    public let model: Model
    /// State laid out like `model.parameters`: SGD's momentum buffer, or AdamW's first then
    /// second moments (parameterCount floats each); nothing for SGD without momentum.
    public let state: UnsafeMutablePointer<Float>
    /// Steps taken (restored from a checkpoint's "step"); SGD's first step fills the momentum
    /// buffer, AdamW's bias corrections use t = steps.
    public var steps = 0
    /// Holds `state`; sized by the memory plan, so it is exactly full.
    public let arena: Arena

    /// Carves the state from an arena of `plan.optimizerState` bytes (nil: the size
    /// `MemoryPlan.optimizerStateBytes` gives for `model`); zeroed, as PyTorch starts.
    public init(_ config: OptimizerConfig, model: Model, plan: MemoryPlan? = nil) throws(MemoryError) {
        self.config = config
        self.model = model
        let floats = model.parameterCount * config.statePerParameter
        let bytes = plan?.optimizerState
            ?? MemoryPlan.optimizerStateBytes(parameterCount: model.parameterCount, statePerParameter: config.statePerParameter)
        arena = try Arena(name: "optimizer", capacityBytes: bytes)
        state = try arena.floats(floats, label: "optimizer state")
    }

    /// One update of the trained parameters from `model.gradients` with `learningRate`.
    public func step(learningRate: Double) {
        steps += 1
        switch config {
        // One kernel call per run of trained tensors (one run in plain training).
        case let .sgd(momentum, nesterov, weightDecay):
            for range in model.trainedRanges {
                SGD.step(weights: model.parameters + range.offset, momentumBuffer: momentum == 0 ? nil : state + range.offset,
                         gradients: model.gradients + range.offset, count: range.count, learningRate: learningRate,
                         momentum: momentum, dampening: 0, weightDecay: weightDecay, nesterov: nesterov, firstStep: steps == 1)
            }
        case let .adamw(beta1, beta2, epsilon, weightDecay):
            for range in model.trainedRanges {
                AdamW.step(weights: model.parameters + range.offset, firstMoment: state + range.offset,
                           secondMoment: state + model.parameterCount + range.offset,
                           gradients: model.gradients + range.offset, count: range.count, learningRate: learningRate,
                           beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, step: steps)
            }
        }
    }
}
