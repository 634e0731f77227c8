import Select

/// The `--policy` option and each policy's options; the defaults are `PolicySettings`'.
enum PolicyOptions {
    static let standard = PolicySettings()
    static let paperSchedule: DIHCLOptions = {
        var options = DIHCLOptions()
        options.usePaperSchedule()
        return options
    }()

    static let policy = Choice<PolicyKind>(
        "policy", "NAME", names: PolicyKind.names, values: PolicyKind.allCases, default: .full,
        help: "sample selection: " + PolicyKind.names.joined(separator: ", "))
    static let removeFraction = Option<Double>("remove-fraction", "F", default: standard.removeFraction, range: 0...0.99,
                                               help: "random-remove: fraction dropped each epoch")
    static let iesOrder = Option<Int>("ies-order", "0-3", default: standard.iesOrder, range: 0...3,
                                      help: "ies: order of the loss difference")
    static let iesThreshold = Option<Double>("ies-threshold", "DELTA", default: standard.iesThreshold, range: 0...100,
                                             help: "ies: mastered when the windowed mean |difference| is below this (nats)")
    static let iesRescoreEvery = Option<Int>("ies-rescore-every", "M", default: standard.iesRescoreEvery, range: 1...100_000,
                                             help: "ies: losses looked at every M epochs: recorded in every M-th epoch (all samples trained or scored), exclusions decided after it (docs/selection.md)")
    static let fullDataLast = Option<Double>("full-data-last", "F", default: standard.fullDataLast, range: 0...1,
                                             help: "ies: train on all samples in the last fraction F of epochs")
    static let dihMetric = Choice<DIHCLOptions.Metric>(
        "dih-metric", "KIND", names: ["loss", "dloss", "flip"], values: [.loss, .lossChange, .flip],
        default: standard.dihcl.metric, help: "dihcl: loss | dloss | flip")
    static let dihUpdate = Choice<DIHCLOptions.Update>(
        "dih-update", "KIND", names: ["paper-ema", "episode-sum"], values: [.exponentialAverage, .episodeSum],
        default: standard.dihcl.update, help: "dihcl: paper-ema | episode-sum")
    static let dihSelect = Choice<DIHCLOptions.Selection>(
        "dih-select", "KIND", names: ["greedy", "rand", "exp3", "ucb", "beta"], values: [.greedy, .proportional, .exp3, .ucb, .thompson],
        default: standard.dihcl.selection, help: "dihcl: greedy | rand | exp3 | ucb | beta")
    /// true: the paper's schedule.
    static let dihDiversity = Choice<DIHCLOptions.Diversity>(
        "dih-diversity", "KIND", names: ["none", "centrality", "facility"], values: [DIHCLOptions.Diversity.none, .centrality, .facilityLocation],
        default: standard.dihcl.diversity,
        help: "dihcl: the paper's diversity step on penultimate features from the training forward: none | centrality | facility (facility location)")
    static let dihPreset = Choice<Bool>(
        "dih-preset", "NAME", names: ["code", "paper"], values: [false, true], default: false,
        help: "dihcl: code (the authors' released code: episode-sum, exp3, subset x\(standard.dihcl.subsetShrink) to \(standard.dihcl.subsetFloor) n, the run's --schedule) | paper (Algorithm 1, eq. 1-3: paper-ema, exp3, x\(paperSchedule.subsetShrink) to \(paperSchedule.subsetFloor) n, and --schedule episodes: a cosine per episode); options given after it override")
    static let dihShrink = Option<Double?>(
        "dih-shrink", "F", range: 0.01...1, shown: "\(standard.dihcl.subsetShrink) (code), \(paperSchedule.subsetShrink) (paper)",
        help: "dihcl: subset fraction x F per episode (overrides the schedule's)")
    static let dihFloor = Option<Double?>(
        "dih-floor", "F", range: 0.001...1, shown: "\(standard.dihcl.subsetFloor) (code), \(paperSchedule.subsetFloor) (paper)",
        help: "dihcl: smallest subset fraction (overrides the schedule's)")
    static let infoBatchRatio = Option<Double>("infobatch-ratio", "R", default: standard.infoBatchRatio, range: 0...0.99,
                                               help: "infobatch: prune ratio of well-learned samples")
    static let infoBatchAnneal = Option<Double>("infobatch-anneal", "F", default: standard.infoBatchAnneal, range: 0...1,
                                                help: "infobatch: full data in the last fraction F of epochs")
    static let selectiveBackpropBeta = Option<Double>("sb-beta", "B", default: standard.selectiveBackpropBeta, range: 0...100,
                                                      help: "selective-backprop: selection probability = percentile^B")
    static let patience = Option<Int>("patience", "N", default: standard.patience, range: 1...100_000,
                                      help: "early-stop: epochs without validation improvement")
    static let validationFraction = Option<Double>("validation-fraction", "F", default: standard.validationFraction, range: 0.01...0.5,
                                                   help: "early-stop: held-out share of the training set")

    /// Every policy option but `--policy` (compare takes `--policies` instead).
    static let settingSpecs = [
        removeFraction.spec, iesOrder.spec, iesThreshold.spec, iesRescoreEvery.spec, fullDataLast.spec, dihMetric.spec,
        dihUpdate.spec, dihSelect.spec, dihDiversity.spec, dihPreset.spec, dihShrink.spec, dihFloor.spec,
        infoBatchRatio.spec, infoBatchAnneal.spec, selectiveBackpropBeta.spec, patience.spec, validationFraction.spec,
    ]
    static let specs = [policy.spec] + settingSpecs

    /// The policy that reads each policy option.
    static let reader: [(option: String, kind: PolicyKind)] = [
        (removeFraction.spec.name, .randomRemove), (iesOrder.spec.name, .ies), (iesThreshold.spec.name, .ies),
        (iesRescoreEvery.spec.name, .ies), (fullDataLast.spec.name, .ies), (dihMetric.spec.name, .dihcl),
        (dihUpdate.spec.name, .dihcl), (dihSelect.spec.name, .dihcl), (dihDiversity.spec.name, .dihcl),
        (dihPreset.spec.name, .dihcl), (dihShrink.spec.name, .dihcl), (dihFloor.spec.name, .dihcl),
        (infoBatchRatio.spec.name, .infoBatch), (infoBatchAnneal.spec.name, .infoBatch),
        (selectiveBackpropBeta.spec.name, .selectiveBackprop), (patience.spec.name, .earlyStop),
        (validationFraction.spec.name, .earlyStop),
    ]

    /// Refuses a policy option that none of `running` reads: it would do nothing.
    static func checkRead(_ options: ParsedOptions, by running: [PolicyKind], command: String) throws(UsageError) {
        for (option, kind) in reader where options.givenNames.contains(option) && !running.contains(kind) {
            throw UsageError(message: "leitner \(command): --\(option) is a \(kind.name) option and does nothing with --policy \(running.map { $0.name }.joined(separator: ","))")
        }
    }

    /// Every policy's settings from the options (each checked whether or not its policy runs).
    static func settings(_ options: ParsedOptions) throws(UsageError) -> PolicySettings {
        var settings = PolicySettings()
        settings.removeFraction = try options.value(removeFraction)
        settings.iesOrder = try options.value(iesOrder)
        settings.iesThreshold = try options.value(iesThreshold)
        settings.iesRescoreEvery = try options.value(iesRescoreEvery)
        settings.fullDataLast = try options.value(fullDataLast)
        if try options.value(dihPreset) { settings.dihcl.usePaperPreset() }
        settings.dihcl.metric = try options.value(dihMetric)
        if options.isGiven(dihUpdate) { settings.dihcl.update = try options.value(dihUpdate) }
        if options.isGiven(dihSelect) { settings.dihcl.selection = try options.value(dihSelect) }
        settings.dihcl.diversity = try options.value(dihDiversity)
        if let shrink = try options.value(dihShrink) { settings.dihcl.subsetShrink = Float(shrink) }
        if let floor = try options.value(dihFloor) { settings.dihcl.subsetFloor = Float(floor) }
        settings.infoBatchRatio = try options.value(infoBatchRatio)
        settings.infoBatchAnneal = try options.value(infoBatchAnneal)
        settings.selectiveBackpropBeta = try options.value(selectiveBackpropBeta)
        settings.patience = try options.value(patience)
        settings.validationFraction = try options.value(validationFraction)
        return settings
    }
}
