/// The built-in policies, one case each: the name `--policy` takes is the raw value, `id` is
/// the number stored in state files and loss dumps. `AnyPolicy(kind, ...)` builds one;
/// SelectTests checks that every `PolicyID` has exactly one kind and every kind builds a
/// policy with its id.
public enum PolicyKind: String, CaseIterable {
    case full = "full"
    case randomRemove = "random-remove"
    case ies = "ies"
    case dihcl = "dihcl"
    case infoBatch = "infobatch"
    case selectiveBackprop = "selective-backprop"
    case earlyStop = "early-stop"

    /// The name on the command line and in reports.
    public var name: String { rawValue }

    /// The kind `name` spells, or nil.
    public init?(name: String) { self.init(rawValue: name) }

    /// Every kind's name, in declaration order.
    public static var names: [String] { allCases.map { $0.name } }

    public var id: PolicyID {
        switch self {
        case .full: return .full
        case .randomRemove: return .randomRemove
        case .ies: return .ies
        case .dihcl: return .dihcl
        case .infoBatch: return .infoBatch
        case .selectiveBackprop: return .selectiveBackprop
        case .earlyStop: return .earlyStop
        }
    }
}

/// Every policy's options with the defaults ALGORITHMS.md gives, each written once here (the
/// command line shows these as its defaults). Only the fields of the chosen kind are read.
public struct PolicySettings {
    /// random-remove: fraction of the samples dropped each epoch.
    public var removeFraction = 0.3
    /// random-remove: when set, the number of samples dropped in each epoch (index = epoch), in
    /// place of the fraction; epochs past its end drop `removeFraction` (`leitner compare`'s
    /// count-matched control replays a selective run's own per-epoch counts).
    public var removeCounts: [Int]? = nil
    /// ies: order of the loss difference (0-3).
    public var iesOrder = 2
    /// ies: a sample is mastered when its windowed mean |difference| is below this (nats).
    public var iesThreshold = 1e-3
    /// ies: score excluded samples every this many epochs.
    public var iesRescoreEvery = 1
    /// ies: train on every sample in this last fraction of the epochs.
    public var fullDataLast = 0.0
    /// dihcl: every option, defaults from the authors' released code.
    public var dihcl = DIHCLOptions()
    /// infobatch: prune ratio of the well-learned samples.
    public var infoBatchRatio = 0.5
    /// infobatch: full data in this last fraction of the epochs.
    public var infoBatchAnneal = 0.125
    /// selective-backprop: selection probability = percentile^beta.
    public var selectiveBackpropBeta = 3.0
    /// early-stop: epochs without validation improvement.
    public var patience = 5
    /// early-stop: held-out share of the training set.
    public var validationFraction = 0.1

    public init() {}
}
