/// The arithmetic a model's steps are computed in (`--precision`).
public enum Precision: Equatable {
    /// Every value fp32.
    case fp32
    /// Mixed precision: the input batch, every node's output, every node's output gradient and
    /// the weights a step computes with are binary16 values (`Half.round`); products are
    /// accumulated in fp32 (what NEON FMLAL kernels do), and batch-norm statistics, the loss and
    /// its softmax, the weight gradients, the master weights and the optimizer stay fp32.
    /// The loss gradient is scaled by a `LossScaler`.
    case fp16

    /// The option's spelling: "fp32" or "fp16".
    public var name: String { self == .fp32 ? "fp32" : "fp16" }

    public init?(name: String) {
        switch name {
        case "fp32": self = .fp32
        case "fp16": self = .fp16
        default: return nil
        }
    }
}

/// Dynamic loss scaling, as PyTorch's `torch.amp.GradScaler`: the loss gradient is multiplied
/// by `scale` so that small activation gradients survive binary16 (whose smallest subnormal is
/// 2^-24), the weight gradients are divided by it again in fp32 before the optimizer. A step
/// whose gradients hold an infinity or NaN is skipped and the scale halved; after
/// `growthInterval` finite steps in a row the scale doubles.
public struct LossScaler: Equatable {
    /// PyTorch's defaults: initial scale 2^16, backoff x0.5, growth x2 every 2000 steps.
    public static let initialScale: Float = 65536
    public static let defaultGrowthInterval = 2000

    /// The factor on the loss gradient (a power of two, so scaling changes no significand bit).
    public var scale: Float = LossScaler.initialScale
    /// Finite steps since the last change of `scale`.
    public var goodSteps = 0
    /// Finite steps in a row after which `scale` doubles (tests make it small).
    public var growthInterval = LossScaler.defaultGrowthInterval
    /// Steps skipped for a non-finite gradient since the start of the run (in checkpoints).
    public var skippedSteps = 0

    public init(growthInterval: Int = LossScaler.defaultGrowthInterval) {
        self.growthInterval = growthInterval
    }

    /// Records one step's outcome: `finite` false halves the scale (the caller skips the
    /// update), true counts toward the next doubling.
    public mutating func update(finite: Bool) {
        if finite {
            goodSteps += 1
            if goodSteps >= growthInterval {
                scale *= 2
                goodSteps = 0
            }
        } else {
            scale *= 0.5
            goodSteps = 0
            skippedSteps += 1
        }
    }
}
