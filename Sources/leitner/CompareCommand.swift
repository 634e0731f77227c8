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
        """,
        positionals: "",
        options: TrainOptions.specs.filter { $0.name != TrainOptions.resume.spec.name } + DataOptions.selectionSpecs
            + PolicyOptions.settingSpecs + EnergyOptions.specs + [policies.spec, iesThresholds.spec, match.spec])

    static let policies = Option<[PolicyKind]>(
        "policies", "LIST", default: [.full, .ies, .dihcl, .infoBatch, .selectiveBackprop, .randomRemove],
        shown: "full,ies,dihcl,infobatch,selective-backprop,random-remove", help: "comma-separated policies",
        expected: "a comma-separated list of " + PolicyKind.names.joined(separator: ", ")) { text in
        var kinds: [PolicyKind] = []
        for name in text.split(separator: ",") {
            guard let kind = PolicyKind(name: String(name)) else { return nil }
            kinds.append(kind)
        }
        return kinds
    }
    static let iesThresholds = Option<[String]?>(
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

    struct Row {
        var label: String
        var history: [EpochMetrics]
        var seconds: Double
    }

    /// One run of the comparison: which policy, its row label, and for a sweep the ies
    /// threshold it uses (ies) or whose budget it matches (random-remove).
    struct Run {
        var label: String
        var policy: PolicyKind
        var threshold: String? = nil
    }

    /// The runs in order: the policies of --policies, ies expanded per --ies-thresholds, and
    /// random-remove moved after the ies runs (it needs their realised budget).
    static func plan(_ options: ParsedOptions) throws(UsageError) -> [Run] {
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
        let match = try options.value(Self.match)
        if let match {
            guard !thresholds.isEmpty, policies.contains(.randomRemove) else {
                throw UsageError(message: "leitner compare: --match needs --ies-thresholds and random-remove in --policies")
            }
            if match != "all" && matchingThreshold(match, in: thresholds) == nil {
                throw UsageError(message: "leitner compare: --match \(match) is not one of --ies-thresholds \(thresholds.joined(separator: ",")) (or all)")
            }
        }
        var runs: [Run] = []
        for policy in policies where policy != .randomRemove {
            if policy == .ies && !thresholds.isEmpty {
                for threshold in thresholds { runs.append(Run(label: "ies@" + threshold, policy: .ies, threshold: threshold)) }
            } else {
                runs.append(Run(label: policy.name, policy: policy))
            }
        }
        if policies.contains(.randomRemove) {
            if thresholds.isEmpty {
                runs.append(Run(label: "random-remove", policy: .randomRemove))
            } else if match == "all" {
                for threshold in thresholds { runs.append(Run(label: "random-remove@" + threshold, policy: .randomRemove, threshold: threshold)) }
            } else {
                let threshold = match.flatMap { matchingThreshold($0, in: thresholds) } ?? thresholds[0]
                runs.append(Run(label: "random-remove@" + threshold, policy: .randomRemove, threshold: threshold))
            }
        }
        return runs
    }

    /// The entry of `thresholds` equal to `text` as a number (so 1e-2 matches 0.01).
    static func matchingThreshold(_ text: String, in thresholds: [String]) -> String? {
        guard let value = Double(text) else { return nil }
        return thresholds.first { Double($0) == value }
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let runs = try plan(options)
        let base = try TrainCommand.config(options)
        let baseSettings = try PolicyOptions.settings(options)
        guard let data = DataOptions.load(options) else { return 1 }
        var rows: [Row] = []
        for run in runs {
            var config = base
            var settings = baseSettings
            var directoryName = ""
            for character in run.label { directoryName.append(character == "@" ? "-" : character) }
            config.outputDirectory = base.outputDirectory + "/" + directoryName
            if let dump = base.lossDumpDirectory { config.lossDumpDirectory = dump + "/" + directoryName }
            if run.policy == .ies, let threshold = run.threshold, let value = Double(threshold) { settings.iesThreshold = value }
            if run.policy == .randomRemove {
                let iesLabel = run.threshold.map { "ies@" + $0 } ?? "ies"
                if let ies = rows.first(where: { $0.label == iesLabel }) {
                    let saved = 1 - runAccounting(ies.history).trainedFraction
                    // To 6 decimals, as the budget has always been passed: integer / 1e6 is the
                    // double nearest that decimal, as parsing its text gave.
                    settings.removeFraction = (min(max(saved, 0), 0.99) * 1e6).rounded() / 1e6
                    print("random-remove at the budget \(iesLabel) realised: removing \(Format.fixed(100 * saved, 2))% of samples per epoch")
                }
            }
            print("== \(run.label)")
            let started = Clock.seconds()
            do throws(TrainError) {
                let history = try TrainCommand.runSession(config: config, policy: run.policy, settings: settings,
                                                          train: data.train, test: data.test)
                rows.append(Row(label: run.label, history: history, seconds: Clock.seconds() - started))
            } catch {
                Console.error("leitner compare: \(run.label): " + error.message)
                return 1
            }
        }
        report(rows, directory: base.outputDirectory)
        return 0
    }

    /// Mean test accuracy of the last `count` epochs (fewer when the run is shorter).
    static func meanOfLast(_ count: Int, _ history: [EpochMetrics]) -> Double {
        let tail = history.suffix(count)
        return tail.isEmpty ? .nan : tail.reduce(0) { $0 + $1.testAccuracy } / Double(tail.count)
    }

    /// The run's totals from its epochs' counts.
    static func runAccounting(_ history: [EpochMetrics]) -> RunAccounting {
        var totals = RunAccounting()
        for metrics in history {
            totals.add(EpochAccounting(epoch: metrics.epoch - 1, sampleCount: metrics.population, trained: metrics.samplesTrained,
                                       scored: metrics.samplesScored, skipped: metrics.samplesSkipped))
        }
        return totals
    }

    /// The run's training-loop joules (NaN when an epoch had none) and the meter's source.
    static func energyTotals(_ history: [EpochMetrics]) -> (joules: Double, source: String, estimate: Bool) {
        var joules = 0.0
        for metrics in history { joules += metrics.energyJoules }
        return (joules, history.first?.energySource ?? "", history.first?.energyEstimate ?? false)
    }

    /// The table on stdout, compare.csv and compare.svg in `directory`.
    static func report(_ rows: [Row], directory: String) {
        let header = Format.padRight("run", 22) + Format.pad("final acc", 10) + Format.pad("best acc", 10)
            + Format.pad("last-5 acc", 11) + Format.pad("backprop saved", 16) + Format.pad("compute saved", 15)
            + Format.pad("trained", 10) + Format.pad("wall s", 9) + Format.pad("wall/full", 10)
            + Format.pad("joules", 10) + Format.pad("mJ/sample", 11)
        print("")
        print(header)
        var csv = "policy,epochs,final_test_accuracy,best_test_accuracy,best_epoch,last5_test_accuracy,backprop_saved,compute_saved,samples_trained,samples_scored,wall_seconds,wall_vs_full,energy_joules,energy_joules_per_sample,energy_source,energy_estimate\n"
        var sources: [String] = []
        var series: [SVGChart.Series] = []
        let fullSeconds = rows.first { $0.label == "full" }?.seconds
        for row in rows {
            guard let last = row.history.last else { continue }
            let best = row.history.max { $0.testAccuracy < $1.testAccuracy }!
            let lastFive = meanOfLast(5, row.history)
            // Totals over the run, exactly as ALGORITHMS.md defines them.
            let totals = runAccounting(row.history)
            let trained = totals.trained, scored = totals.scored
            let backpropSaved = totals.backpropSaved, computeSaved = totals.computeSaved
            let energy = energyTotals(row.history)
            let wallRatio = fullSeconds.map { row.seconds / max($0, 1e-9) }
            print(Format.padRight(row.label, 22) + Format.pad(Format.fixed(100 * last.testAccuracy, 2) + "%", 10)
                  + Format.pad(Format.fixed(100 * best.testAccuracy, 2) + "%", 10)
                  + Format.pad(Format.fixed(100 * lastFive, 2) + "%", 11)
                  + Format.pad(Format.fixed(100 * backpropSaved, 1) + "%", 16)
                  + Format.pad(Format.fixed(100 * computeSaved, 1) + "%", 15) + Format.pad("\(trained)", 10)
                  + Format.pad(Format.fixed(row.seconds, 1), 9)
                  + Format.pad(wallRatio.map { Format.fixed($0, 2) + "x" } ?? "-", 10)
                  + Format.pad(Format.fixed(energy.joules, 1) + (energy.estimate ? "*" : ""), 10)
                  + Format.pad(Format.fixed(1000 * energy.joules / Double(max(trained, 1)), 3), 11))
            csv += "\(row.label),\(row.history.count),\(last.testAccuracy),\(best.testAccuracy),\(best.epoch),\(lastFive),\(backpropSaved),\(computeSaved),\(trained),\(scored),\(row.seconds),\(wallRatio.map { "\($0)" } ?? ""),"
                + "\(energy.joules),\(energy.joules / Double(max(trained, 1))),\"\(energy.source)\",\(energy.estimate)\n"
            if !energy.source.isEmpty && !sources.contains(energy.source) { sources.append(energy.source) }
            var cumulative = 0
            var points: [(x: Double, y: Double)] = []
            for metrics in row.history {
                cumulative += metrics.samplesTrained
                points.append((x: Double(cumulative), y: 100 * metrics.testAccuracy))
            }
            series.append(SVGChart.Series(name: row.label, points: points))
        }
        print("joules: training loops summed over epochs (* = estimate); energy: " + (sources.isEmpty ? "no meter" : sources.joined(separator: "; ")))
        let chart = SVGChart(title: "Test accuracy against trained samples", xLabel: "cumulative trained samples",
                             yLabel: "test accuracy (%)", series: series)
        for (name, text) in [("compare.csv", csv), ("compare.svg", chart.svg)] {
            let path = directory + "/" + name
            do throws(SystemError) {
                let file = try FileHandle.create(path)
                try file.write(text)
                try file.close()
                print("wrote \(path)")
            } catch {
                Console.error("leitner compare: " + error.description)
            }
        }
    }
}
