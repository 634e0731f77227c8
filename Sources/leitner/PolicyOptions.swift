import Select
import Train

/// The `--policy` option and each policy's options, with ALGORITHMS.md's defaults.
enum PolicyOptions {
    static let names = ["full", "random-remove", "ies", "dihcl", "infobatch", "selective-backprop", "early-stop"]

    static let specs: [OptionSpec] = [
        OptionSpec("policy", value: "NAME", help: "sample selection: " + names.joined(separator: ", "), default: "full"),
        OptionSpec("remove-fraction", value: "F", help: "random-remove: fraction dropped each epoch", default: "0.3"),
        OptionSpec("ies-order", value: "0-3", help: "ies: order of the loss difference", default: "2"),
        OptionSpec("ies-threshold", value: "DELTA", help: "ies: mastered when the windowed mean |difference| is below this (nats)", default: "1e-3"),
        OptionSpec("ies-rescore-every", value: "M", help: "ies: score excluded samples every M epochs", default: "1"),
        OptionSpec("full-data-last", value: "F", help: "ies: train on all samples in the last fraction F of epochs", default: "0"),
        OptionSpec("dih-metric", value: "KIND", help: "dihcl: loss | dloss | flip", default: "dloss"),
        OptionSpec("dih-update", value: "KIND", help: "dihcl: paper-ema | episode-sum", default: "episode-sum"),
        OptionSpec("dih-select", value: "KIND", help: "dihcl: greedy | rand | exp3 | ucb | beta", default: "exp3"),
        OptionSpec("dih-diversity", value: "KIND", help: "dihcl: none | centrality | facility", default: "none"),
        OptionSpec("dih-schedule", value: "KIND", help: "dihcl: subset per episode: code (x0.9 to a floor of 0.3 n) | paper (x0.85 to 0.2 n)", default: "code"),
        OptionSpec("dih-shrink", value: "F", help: "dihcl: subset fraction x F per episode (overrides the schedule's)", default: "0.9 (code), 0.85 (paper)"),
        OptionSpec("dih-floor", value: "F", help: "dihcl: smallest subset fraction (overrides the schedule's)", default: "0.3 (code), 0.2 (paper)"),
        OptionSpec("infobatch-ratio", value: "R", help: "infobatch: prune ratio of well-learned samples", default: "0.5"),
        OptionSpec("infobatch-anneal", value: "F", help: "infobatch: full data in the last fraction F of epochs", default: "0.125"),
        OptionSpec("sb-beta", value: "B", help: "selective-backprop: selection probability = percentile^B", default: "3"),
        OptionSpec("patience", value: "N", help: "early-stop: epochs without validation improvement", default: "5"),
        OptionSpec("validation-fraction", value: "F", help: "early-stop: held-out share of the training set", default: "0.1"),
    ]

    /// Runs `runner` with the policy the options name, wrapped in `AnyPolicy` (no existentials
    /// in Embedded Swift; one specialization of the runner and the training loop for all).
    static func withPolicy<Runner: PolicyRunner>(
        _ options: ParsedOptions, name: String, sampleCount: Int, epochs: Int, runner: Runner
    ) throws(UsageError) -> Swift.Result<Runner.Output, TrainError> {
        func call(_ policy: AnyPolicy) -> Swift.Result<Runner.Output, TrainError> {
            var policy = policy
            do throws(TrainError) { return .success(try runner.run(&policy)) } catch { return .failure(error) }
        }
        switch name {
        case "full":
            return call(.full(FullPolicy(sampleCount: sampleCount)))
        case "random-remove":
            let fraction = try options.double("remove-fraction", default: 0.3, range: 0...0.99)
            return call(.randomRemove(RandomRemovePolicy(fraction: fraction, sampleCount: sampleCount)))
        case "ies":
            let policy = IESPolicy(
                sampleCount: sampleCount, order: try options.int("ies-order", default: 2, range: 0...3),
                threshold: try options.double("ies-threshold", default: 1e-3, range: 0...100),
                rescoreEvery: try options.int("ies-rescore-every", default: 1, range: 1...100_000),
                fullDataLast: try options.double("full-data-last", default: 0, range: 0...1))
            return call(.ies(policy))
        case "dihcl":
            var dih = DIHCLOptions()
            switch options.string("dih-metric", default: "dloss") {
            case "loss": dih.metric = .loss
            case "dloss": dih.metric = .lossChange
            case "flip": dih.metric = .flip
            case let other: throw UsageError(message: "leitner: --dih-metric must be loss, dloss or flip, got '\(other)'")
            }
            switch options.string("dih-update", default: "episode-sum") {
            case "paper-ema": dih.update = .exponentialAverage
            case "episode-sum": dih.update = .episodeSum
            case let other: throw UsageError(message: "leitner: --dih-update must be paper-ema or episode-sum, got '\(other)'")
            }
            switch options.string("dih-select", default: "exp3") {
            case "greedy": dih.selection = .greedy
            case "rand": dih.selection = .proportional
            case "exp3": dih.selection = .exp3
            case "ucb": dih.selection = .ucb
            case "beta": dih.selection = .thompson
            case let other: throw UsageError(message: "leitner: --dih-select must be greedy, rand, exp3, ucb or beta, got '\(other)'")
            }
            switch options.string("dih-diversity", default: "none") {
            case "none": dih.diversity = .none
            case "centrality": dih.diversity = .centrality
            case "facility": dih.diversity = .facilityLocation
            case let other: throw UsageError(message: "leitner: --dih-diversity must be none, centrality or facility, got '\(other)'")
            }
            switch options.string("dih-schedule", default: "code") {
            case "code": break
            case "paper": dih.usePaperSchedule()
            case let other: throw UsageError(message: "leitner: --dih-schedule must be code or paper, got '\(other)'")
            }
            dih.subsetShrink = Float(try options.double("dih-shrink", default: Double(dih.subsetShrink), range: 0.01...1))
            dih.subsetFloor = Float(try options.double("dih-floor", default: Double(dih.subsetFloor), range: 0.001...1))
            return call(.dihcl(DIHCLPolicy(sampleCount: sampleCount, epochs: epochs, options: dih)))
        case "infobatch":
            let policy = InfoBatchPolicy(sampleCount: sampleCount,
                                         ratio: try options.double("infobatch-ratio", default: 0.5, range: 0...0.99),
                                         annealFraction: try options.double("infobatch-anneal", default: 0.125, range: 0...1))
            return call(.infoBatch(policy))
        case "selective-backprop":
            let policy = SelectiveBackpropPolicy(sampleCount: sampleCount, beta: try options.double("sb-beta", default: 3, range: 0...100))
            return call(.selectiveBackprop(policy))
        case "early-stop":
            let policy = EarlyStopPolicy(sampleCount: sampleCount, patience: try options.int("patience", default: 5, range: 1...100_000),
                                         validationFraction: try options.double("validation-fraction", default: 0.1, range: 0.01...0.5))
            return call(.earlyStop(policy))
        default:
            throw UsageError(message: "leitner: unknown --policy '\(name)' (known: \(names.joined(separator: ", ")))")
        }
    }
}

/// Something to do with whichever policy `--policy` names (train one run, or one of compare's).
protocol PolicyRunner {
    associatedtype Output
    func run<P: SelectionPolicy>(_ policy: inout P) throws(TrainError) -> Output
}
