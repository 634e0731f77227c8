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
        A variant LABEL=POLICY[OPTIONS] in --policies runs POLICY under its own policy
        options, --schedule or --controls, in row and directory LABEL (default: POLICY), e.g.
        ies-m2=ies[--ies-threshold=3e-2 --ies-rescore-every=2] or
        dihcl-paper=dihcl[--dih-preset=paper --schedule=episodes] (variants run after the
        plain policies, before random-remove). --resume continues an interrupted comparison
        in OUT: a finished run is read back from its log, an interrupted one continues from
        its last checkpoint, the others train.
        """,
        positionals: "",
        options: TrainOptions.specs.filter { $0.name != TrainOptions.resume.spec.name && $0.name != TrainOptions.replaceWeights.spec.name } + DataOptions.selectionSpecs
            + PolicyOptions.settingSpecs + EnergyOptions.specs + [policies.spec, iesThresholds.spec, match.spec, controls.spec, seeds.spec, resume.spec])

    static let defaultPolicies: [PolicyKind] = [.full, .ies, .dihcl, .infoBatch, .selectiveBackprop, .randomRemove]
    static let policies = Option<String?>(
        "policies", "LIST", shown: defaultPolicies.map { $0.name }.joined(separator: ","),
        help: "comma-separated policies (" + PolicyKind.names.joined(separator: ", ") + "), or variants LABEL=POLICY[--option=value ...] (above)")
    static let resume = Flag("resume", help: "continue the comparison in OUT: finished runs are read back, an interrupted one resumes from its checkpoint")

    /// The options a variant may set: its policy's settings, the schedule (DIHCL's paper
    /// preset brings its own) and its controls. Model, data, epochs and the rest stay the
    /// comparison's, so the rows remain comparable.
    static let variantOptions = PolicyOptions.settingSpecs.map { $0.name } + [TrainOptions.schedule.spec.name, controls.spec.name]

    /// One item of --policies: a policy, or a variant with its label and options.
    struct PolicyItem {
        var kind: PolicyKind
        var label: String? = nil
        var arguments: [String] = []
    }

    /// --policies split into items (commas inside [...] belong to the item).
    static func policyItems(_ options: ParsedOptions) throws(UsageError) -> [PolicyItem] {
        guard let text = try options.value(policies) else { return defaultPolicies.map { PolicyItem(kind: $0) } }
        var pieces: [String] = [], current = "", depth = 0
        for character in text {
            if character == "[" { depth += 1 } else if character == "]" { depth -= 1 }
            if character == "," && depth == 0 { pieces.append(current); current = "" } else { current.append(character) }
        }
        pieces.append(current)
        var items: [PolicyItem] = []
        for piece in pieces {
            func refuse(_ why: String) -> UsageError {
                UsageError(message: "leitner compare: --policies item '\(piece)': " + why)
            }
            var body = Substring(piece)
            var label: String? = nil
            var arguments: [String] = []
            if let equals = body.firstIndex(of: "="), body.firstIndex(of: "[").map({ equals < $0 }) ?? true {
                label = String(body[..<equals])
                body = body[body.index(after: equals)...]
            }
            if let open = body.firstIndex(of: "[") {
                guard body.hasSuffix("]"), body.filter({ $0 == "[" }).count == 1, body.filter({ $0 == "]" }).count == 1 else {
                    throw refuse("a variant is LABEL=POLICY[--option=value ...], with one pair of brackets at its end")
                }
                arguments = body[body.index(after: open)..<body.index(before: body.endIndex)].split(separator: " ").map(String.init)
                body = body[..<open]
            }
            guard let kind = PolicyKind(name: String(body)) else {
                throw refuse("'\(body)' is not a policy (" + PolicyKind.names.joined(separator: ", ") + ")")
            }
            if let name = label {
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) else {
                    throw refuse("a label is letters, digits, '-', '_' and '.'")
                }
                guard !arguments.isEmpty else { throw refuse("a labelled variant needs its options in [...]") }
                guard kind != .randomRemove else { throw refuse("random-remove runs at another run's budget; give it --remove-fraction in a plain compare") }
            } else if !arguments.isEmpty {
                // Unlabelled: the policy's own name (refused below if a plain item has it too).
                label = kind.name
                guard kind != .randomRemove else { throw refuse("random-remove runs at another run's budget; give it --remove-fraction in a plain compare") }
            }
            // The options: --name=value or --name value, only those a variant may set.
            var given: [String] = []
            var expectsValue = false
            for argument in arguments {
                if argument.hasPrefix("--") {
                    var name = String(argument.dropFirst(2))
                    if let equals = name.firstIndex(of: "=") { name = String(name[..<equals]) }
                    guard variantOptions.contains(name) else {
                        throw refuse("--\(name) cannot differ between the rows of one comparison (a variant sets " + variantOptions.map { "--" + $0 }.joined(separator: ", ") + ")")
                    }
                    if let (_, reader) = PolicyOptions.reader.first(where: { $0.option == name }), reader != kind {
                        throw refuse("--\(name) is a \(reader.name) option and does nothing for \(kind.name)")
                    }
                    given.append(name)
                    expectsValue = !argument.contains("=")
                } else {
                    guard expectsValue else { throw refuse("'\(argument)' is not an --option") }
                    expectsValue = false
                }
            }
            items.append(PolicyItem(kind: kind, label: label, arguments: arguments))
        }
        return items
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

    /// The runs --policies, --ies-thresholds and --match ask for. A variant is parsed as the
    /// comparison's `arguments` followed by its own options (its own win).
    static func plan(_ options: ParsedOptions, arguments: ArraySlice<String>) throws(UsageError) -> [Comparison.Run] {
        let items = try policyItems(options)
        let policies = items.filter { $0.label == nil }.map { $0.kind }
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
        var runs = Comparison.plan(policies: policies, thresholds: thresholds, match: match)
        let firstRemoval = runs.firstIndex { $0.policy == .randomRemove } ?? runs.endIndex
        var variants: [Comparison.Run] = []
        for item in items {
            guard let label = item.label else { continue }
            let merged = try ParsedOptions(arguments + item.arguments[...], spec: spec)
            var run = Comparison.Run(label: label, policy: item.kind)
            run.config = try TrainCommand.config(merged)
            run.settings = try PolicyOptions.settings(merged)
            if item.arguments.contains(where: { $0.hasPrefix("--" + controls.spec.name) }) { run.controls = try merged.value(controls) }
            variants.append(run)
        }
        runs.insert(contentsOf: variants, at: firstRemoval)
        runs = Comparison.withControls(runs, try options.value(controls))
        for (index, run) in runs.enumerated() where runs[..<index].contains(where: { $0.label == run.label }) {
            throw UsageError(message: "leitner compare: two runs are labelled \(run.label)")
        }
        return runs
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let runs = try plan(options, arguments: arguments)
        let config = try TrainCommand.config(options)
        var seedList = [config.seed]
        if let list = try options.value(seeds) {
            if options.isGiven(TrainOptions.seed) {
                throw UsageError(message: "leitner compare: give --seed or --seeds, not both")
            }
            seedList = list
        }
        let settings = try PolicyOptions.settings(options)
        try PolicyOptions.checkRead(options, by: try policyItems(options).map { $0.kind }, command: "compare")
        let reporter = Reporter()
        guard let data = try DataOptions.load(options, reporter: reporter) else { return 1 }
        do throws(TrainError) {
            _ = try Comparison.run(runs, seeds: seedList, config: config, settings: settings, resume: options.isSet(resume),
                                   train: data.train, test: data.test, reporter: reporter)
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
