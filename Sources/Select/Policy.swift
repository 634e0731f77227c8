import Platform

/// What the epoch plan says about one sample.
public enum SampleAction: UInt8 {
    /// Forward with gradients and backward (a training sample).
    case train = 0
    /// Forward only, eval mode, no activations kept: the policy wants its loss (IES re-entry).
    case score = 1
    /// Not touched this epoch.
    case skip = 2
}

/// Policy ids stored in the per-sample state file. Append only; never renumber.
public enum PolicyID: UInt16 {
    case full = 1
    case randomRemove = 2
    case ies = 3
    case dihcl = 4
    case infoBatch = 5
    case selectiveBackprop = 6
    case earlyStop = 7
}

/// One epoch's decision for every sample, filled by a policy before the epoch.
/// Buffers are allocated once (sample count) and reused every epoch.
public final class EpochPlan {
    public let sampleCount: Int
    /// actions[i] is a `SampleAction` raw value.
    public let actions: UnsafeMutablePointer<UInt8>
    /// Loss weight of each trained sample (1 unless a policy rescales, e.g. InfoBatch's 1/(1-r)).
    public let weights: UnsafeMutablePointer<Float>
    /// The buffers were allocated here (not the caller's).
    private let ownsBuffers: Bool

    public init(sampleCount: Int) {
        self.sampleCount = sampleCount
        actions = .allocate(capacity: max(sampleCount, 1))
        weights = .allocate(capacity: max(sampleCount, 1))
        ownsBuffers = true
        setAll(.train)
    }

    /// A plan over the caller's buffers of `sampleCount` elements each (a trainer carves them
    /// from an arena its memory plan counts); they must outlive the plan.
    public init(sampleCount: Int, actions: UnsafeMutablePointer<UInt8>, weights: UnsafeMutablePointer<Float>) {
        self.sampleCount = sampleCount
        self.actions = actions
        self.weights = weights
        ownsBuffers = false
        setAll(.train)
    }

    deinit {
        if ownsBuffers {
            actions.deallocate()
            weights.deallocate()
        }
    }

    /// Every sample gets `action` and weight 1.
    public func setAll(_ action: SampleAction) {
        for index in 0..<sampleCount {
            actions[index] = action.rawValue
            weights[index] = 1
        }
    }

    @inline(__always)
    public func action(_ index: Int) -> SampleAction { SampleAction(rawValue: actions[index])! }

    /// Counts of (train, score, skip).
    public func counts() -> (train: Int, score: Int, skip: Int) {
        var train = 0, score = 0, skip = 0
        for index in 0..<sampleCount {
            switch actions[index] {
            case SampleAction.train.rawValue: train += 1
            case SampleAction.score.rawValue: score += 1
            default: skip += 1
            }
        }
        return (train, score, skip)
    }
}

/// The facts a policy may use when planning an epoch.
public struct EpochContext {
    /// The epoch about to run, counting from 0.
    public var epoch: Int
    /// Epochs in the whole run.
    public var epochs: Int
    /// Learning rate at the start of the epoch.
    public var learningRate: Double
    public init(epoch: Int, epochs: Int, learningRate: Double) {
        self.epoch = epoch
        self.epochs = epochs
        self.learningRate = learningRate
    }
}

/// A sample-selection policy. The training loop calls, per epoch:
///   1. `planEpoch` — fill the plan (train / score / skip per sample, loss weights);
///   2. `observeTrained` — after each trained batch's forward (train mode, before the update),
///      with each trained sample's loss and correctness, and the step's learning rate;
///   3. `observeScored` — after the epoch's training, for the samples planned `score`
///      (eval mode, no gradients, same augmentation as training);
///   4. `endEpoch` — with the epoch's validation accuracy when the policy asked for a split.
/// Policies see sample indices and losses only: no layers, no data.
/// Per-sample state is at most 32 bytes (`stateStride`) and is persisted through `StateStore`.
public protocol SelectionPolicy: SelectionPolicyExtras {
    var id: PolicyID { get }
    /// Bytes of per-sample state in the state file (0 for stateless policies), at most 32.
    var stateStride: Int { get }

    mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator)
    mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                 correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double)
    mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                correct: UnsafePointer<UInt8>, epoch: Int)
    /// Returns true when training should stop now (early stopping).
    mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool

    /// Writes sample `index`'s state into `record` (`stateStride` bytes).
    func encodeState(index: Int, into record: UnsafeMutableRawPointer)
    /// Restores sample `index`'s state from `record`.
    mutating func decodeState(index: Int, from record: UnsafeRawPointer)
}

/// Capabilities most policies do not use, with their defaults.
public protocol SelectionPolicyExtras {
    /// Selective Backprop: the plan marks samples `score`; the loop forwards each batch without
    /// gradients, asks `selectWithinBatch` which to train, and gathers those into compact
    /// training batches. False for every other policy.
    var selectsWithinBatches: Bool { get }
    mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                    selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator)
    /// Fraction of the training set held out for validation (early stopping); 0 = none.
    var validationFraction: Double { get }
    /// Samples that re-entered training in the last planned epoch (IES); -1 when not applicable.
    var lastEpochReentries: Int { get }
    /// DIHCL's diversity step: true when the policy wants the penultimate features (the head's
    /// input) of the samples it trains. False for every other policy.
    var wantsFeatures: Bool { get }
    /// Called once before training (not in a step) with the width of the penultimate features.
    mutating func prepareFeatures(dimension: Int)
    /// After a trained batch's forward (train mode, before the update): `rows` holds
    /// indices.count rows of `dimension` Floats, row j for sample indices[j].
    mutating func observeFeatures(indices: UnsafeBufferPointer<Int32>, rows: UnsafePointer<Float>, dimension: Int)
}

extension SelectionPolicy {
    public var selectsWithinBatches: Bool { false }
    public mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                           selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        for slot in 0..<indices.count { selected[slot] = 1 }
    }
    public var validationFraction: Double { 0 }
    public var lastEpochReentries: Int { -1 }
    public var wantsFeatures: Bool { false }
    public mutating func prepareFeatures(dimension: Int) {}
    public mutating func observeFeatures(indices: UnsafeBufferPointer<Int32>, rows: UnsafePointer<Float>, dimension: Int) {}
    public mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool { false }
    public mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                       correct: UnsafePointer<UInt8>, epoch: Int) {}
}
