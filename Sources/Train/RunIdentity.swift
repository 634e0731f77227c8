import NN
import Select

/// What decides a run's numbers, as (option, value) pairs named after the options that set
/// them. Every checkpoint stores them as metadata "run.OPTION"; `--resume` compares them with
/// the options it was given and refuses a changed one by name (threads, output, meters,
/// progress and loss dumps are not among them: they move no number; nor is `--epochs`, so that
/// a finished run can be extended, its schedule then spanning the new total).
public struct RunIdentity {
    public var facts: [(String, String)] = []

    public init() {}

    public mutating func add(_ name: String, _ value: String) { facts.append((name, value)) }

    /// The training settings of `config` (model and seed are checked on their own).
    public init(config: TrainConfig) {
        add("batch", "\(config.batch)")
        add("lr", "\(config.learningRate)")
        switch config.optimizer {
        case let .sgd(momentum, nesterov, weightDecay):
            add("optimizer", "sgd")
            add("momentum", "\(momentum)")
            add("nesterov", nesterov ? "yes" : "no")
            add("weight-decay", "\(weightDecay)")
        case let .adamw(beta1, beta2, epsilon, weightDecay):
            add("optimizer", "adamw \(beta1) \(beta2) \(epsilon)")
            add("weight-decay", "\(weightDecay)")
        }
        switch config.schedule {
        case .constant: add("schedule", "constant")
        case let .step(every, gamma): add("schedule", "step:\(every):\(gamma)")
        case let .exponential(gamma): add("schedule", "exp:\(gamma)")
        case let .cosine(minimum): add("schedule", "cosine:\(minimum)")
        case let .cyclicCosine(period, minimum): add("schedule", "cyclic-cosine:\(period):\(minimum)")
        case let .perEpisode(boundaries, minimum):
            var text = "episodes:\(minimum):"
            for (index, boundary) in boundaries.enumerated() { text += (index > 0 ? "," : "") + "\(boundary)" }
            add("schedule", text)
        }
        add("warmup", "\(config.warmupEpochs)")
        add("augment", "crop \(config.augment.cropPadding) flip \(config.augment.flip ? "yes" : "no")")
        add("train-subset", config.trainLimit > 0 ? "\(config.trainLimit)" : "all")
        add("update", config.update.name)
        add("from", config.pretrained ?? "none")
        add("precision", config.precision.name)
    }

    /// The policy and the settings it reads.
    public mutating func add(policy kind: PolicyKind, settings: PolicySettings) {
        add("policy", kind.name)
        switch kind {
        case .full: break
        case .randomRemove:
            add("remove-fraction", "\(settings.removeFraction)")
            if let counts = settings.removeCounts {
                var text = ""
                for (index, count) in counts.enumerated() { text += (index > 0 ? "," : "") + "\(count)" }
                add("remove-counts", text)
            }
        case .ies:
            add("ies-order", "\(settings.iesOrder)")
            add("ies-threshold", "\(settings.iesThreshold)")
            add("ies-rescore-every", "\(settings.iesRescoreEvery)")
            add("full-data-last", "\(settings.fullDataLast)")
        case .dihcl:
            let d = settings.dihcl
            add("dih-metric", "\(d.metric.rawValue)")
            add("dih-update", "\(d.update.rawValue)")
            add("dih-select", "\(d.selection.rawValue)")
            add("dih-diversity", "\(d.diversity.rawValue)")
            add("dih-shrink", "\(d.subsetShrink)")
            add("dih-floor", "\(d.subsetFloor)")
            add("dih-warm-start", "\(d.warmStartEpochs)")
        case .infoBatch:
            add("infobatch-ratio", "\(settings.infoBatchRatio)")
            add("infobatch-anneal", "\(settings.infoBatchAnneal)")
        case .selectiveBackprop: add("sb-beta", "\(settings.selectiveBackpropBeta)")
        case .earlyStop:
            add("patience", "\(settings.patience)")
            add("validation-fraction", "\(settings.validationFraction)")
        }
    }

    static let prefix = "run."

    /// The checkpoint metadata entries.
    var metadata: [(String, String)] { facts.map { (Self.prefix + $0.0, $0.1) } }

    /// The settings that differ from a checkpoint's (a checkpoint written before a setting was
    /// recorded has no entry for it and is not compared on it), as "--NAME OLD (now NEW)".
    func changes(from metadata: [(String, String)]) -> [String] {
        var changed: [String] = []
        for (name, value) in facts {
            guard let old = Checkpoint.value(Self.prefix + name, in: metadata), old != value else { continue }
            changed.append("--\(name) \(old) (now \(value))")
        }
        return changed
    }
}
