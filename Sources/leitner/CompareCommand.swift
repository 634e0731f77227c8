import Data
import Platform
import Select
import Train

/// `leitner compare`: the same run under several policies, a table and an SVG chart.
enum CompareCommand {
    static let spec = CommandSpec(
        name: "compare",
        summary: """
        Trains once per policy with the identical seed, model, data and schedule, then prints a
        table (final, best and last-5-epoch mean test accuracy, backprop saved, compute saved,
        wall time and its ratio to full's) and writes OUT/compare.svg (test accuracy against
        cumulative trained samples, one line per run) and OUT/compare.csv. Each run's log and
        checkpoint go to OUT/RUN/. random-remove is run at the budget IES realised when ies is
        in the list (and after it). --ies-thresholds runs ies once per threshold (rows
        ies@DELTA); random-remove then matches the run --match names. Takes every option of
        'leitner train'.
        Beside every selective run (ies, dihcl, infobatch, selective-backprop) two controls run
        by default: RUN.ctl-compute removes a random fixed fraction per epoch equal to RUN's
        compute saved; RUN.ctl-counts removes random samples in exactly RUN's own per-epoch
        numbers (same epochs, same counts), which isolates RUN's criterion from its timing.
        --seeds 1,2,3 runs the whole list once per seed (OUT/seed-S/RUN) and ends with a table
        over seeds: mean and standard deviation of last-5 accuracy, compute saved and wall
        time, and paired differences (to full, and of each run to its controls) with their
        standard errors, "n.s." when within two of them (OUT/compare-seeds.csv).
        """,
        positionals: "",
        options: TrainOptions.specs.filter { $0.name != TrainOptions.resume.spec.name && $0.name != TrainOptions.replaceWeights.spec.name } + DataOptions.selectionSpecs
            + PolicyOptions.settingSpecs + EnergyOptions.specs + [policies.spec, iesThresholds.spec, match.spec, controls.spec, seeds.spec])

    static let defaultPolicies: [PolicyKind] = [.full, .ies, .dihcl, .infoBatch, .selectiveBackprop, .randomRemove]
    static let policies = Parsed<[PolicyKind]>(
        "policies", "LIST", default: defaultPolicies,
        shown: defaultPolicies.map { $0.name }.joined(separator: ","), help: "comma-separated policies",
        expected: "a comma-separated list of " + PolicyKind.names.joined(separator: ", ")) { text in
        var kinds: [PolicyKind] = []
        for name in text.split(separator: ",") {
            guard let kind = PolicyKind(name: String(name)) else { return nil }
            kinds.append(kind)
        }
        return kinds
    }
    static let iesThresholds = Parsed<[String]?>(
        "ies-thresholds", "LIST", default: nil, shown: "--ies-threshold",
        help: "ies: one run per threshold in place of ies, e.g. 1e-3,3e-3,1e-2,3e-2,1e-1",
        expected: "comma-separated numbers in 0...100") { text in
        let thresholds = text.split(separator: ",").map(String.init)
        for threshold in thresholds {
            guard let value = Double(threshold), value.isFinite, value >= 0, value <= 100 else { return nil }
        }
        return thresholds.isEmpty ? nil : .some(thresholds)
    }
    static let match = Option<String?>(
        "match", "DELTA|all", shown: "the first threshold",
        help: "random-remove: at the budget of the ies run with this threshold, or one random-remove run per ies run")

    static let controls = Parsed<Comparison.Controls>(
        "controls", "LIST", default: .both, shown: "compute,counts",
        help: "random-removal controls beside each selective run: compute, counts, both or none",
        expected: "compute, counts, compute,counts, both or none") { text in
        switch text {
        case "none": return Comparison.Controls.none
        case "both", "compute,counts", "counts,compute": return Comparison.Controls.both
        case "compute": return Comparison.Controls(compute: true, counts: false)
        case "counts": return Comparison.Controls(compute: false, counts: true)
        default: return nil
        }
    }
    static let seeds = Parsed<[UInt64]?>(
        "seeds", "LIST", default: nil, shown: "--seed",
        help: "run everything once per seed, e.g. 1,2,3, and report mean and standard deviation",
        expected: "comma-separated distinct whole numbers") { text in
        var values: [UInt64] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = UInt64(part), !values.contains(value) else { return nil }
            values.append(value)
        }
        return values.isEmpty ? nil : .some(values)
    }

    /// The runs --policies, --ies-thresholds and --match ask for.
    static func plan(_ options: ParsedOptions) throws(UsageError) -> [Comparison.Run] {
        let policies = try options.value(Self.policies)
        var thresholds: [String] = []
        if let list = try options.value(iesThresholds) {
            if options.isGiven(PolicyOptions.iesThreshold) {
                throw UsageError(message: "leitner compare: give --ies-threshold or --ies-thresholds, not both")
            }
            thresholds = list
            guard policies.contains(.ies) else {
                throw UsageError(message: "leitner compare: --ies-thresholds needs ies in --policies and at least one threshold")
            }
        }
        var match = Comparison.Match.first
        if let text = try options.value(Self.match) {
            guard !thresholds.isEmpty, policies.contains(.randomRemove) else {
                throw UsageError(message: "leitner compare: --match needs --ies-thresholds and random-remove in --policies")
            }
            if text == "all" {
                match = .all
            } else if let threshold = Comparison.matchingThreshold(text, in: thresholds) {
                match = .threshold(threshold)
            } else {
                throw UsageError(message: "leitner compare: --match \(text) is not one of --ies-thresholds \(thresholds.joined(separator: ",")) (or all)")
            }
        }
        return Comparison.withControls(Comparison.plan(policies: policies, thresholds: thresholds, match: match),
                                       try options.value(controls))
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let runs = try plan(options)
        let config = try TrainCommand.config(options)
        var seedList = [config.seed]
        if let list = try options.value(seeds) {
            if options.isGiven(TrainOptions.seed) {
                throw UsageError(message: "leitner compare: give --seed or --seeds, not both")
            }
            seedList = list
        }
        let settings = try PolicyOptions.settings(options)
        try PolicyOptions.checkRead(options, by: try options.value(Self.policies), command: "compare")
        let reporter = Reporter()
        guard let data = try DataOptions.load(options, reporter: reporter) else { return 1 }
        do throws(TrainError) {
            _ = try Comparison.run(runs, seeds: seedList, config: config, settings: settings, train: data.train, test: data.test, reporter: reporter)
            if !reporter.failedOutputs.isEmpty {
                Console.error("leitner compare: not written: " + reporter.failedOutputs.joined(separator: ", "))
                return 1
            }
            return 0
        } catch {
            Console.error("leitner compare: " + error.message)
            return 1
        }
    }
}
