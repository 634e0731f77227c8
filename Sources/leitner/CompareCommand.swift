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
        table (final and best test accuracy, backprop saved, compute saved, wall time) and
        writes OUT/compare.svg (test accuracy against cumulative trained samples, one line per
        policy) and OUT/compare.csv. Each run's log and checkpoint go to OUT/POLICY/.
        random-remove is run at the budget IES realised when ies is in the list (and after it).
        Takes every option of 'leitner train'.
        """,
        positionals: "",
        options: TrainCommand.spec.options.filter { $0.name != "policy" && $0.name != "resume" }
            + [OptionSpec("policies", value: "LIST", help: "comma-separated policies", default: "full,ies,dihcl,infobatch,selective-backprop,random-remove")])

    struct Row {
        var policy: String
        var history: [EpochMetrics]
        var seconds: Double
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        var options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        var policies = options.string("policies", default: "full,ies,dihcl,infobatch,selective-backprop,random-remove")
            .split(separator: ",").map(String.init)
        for policy in policies where !PolicyOptions.names.contains(policy) {
            throw UsageError(message: "leitner compare: unknown policy '\(policy)' (known: \(PolicyOptions.names.joined(separator: ", ")))")
        }
        // random-remove needs IES's realised budget: run it after ies.
        if let ies = policies.firstIndex(of: "ies"), let random = policies.firstIndex(of: "random-remove"), random < ies {
            policies.remove(at: random)
            policies.append("random-remove")
        }
        let base = try TrainCommand.config(options)
        guard let data = TrainCommand.loadData(options) else { return 1 }
        let sampleCount = base.trainLimit > 0 ? min(base.trainLimit, data.train.count) : data.train.count
        var rows: [Row] = []
        for policy in policies {
            var config = base
            config.outputDirectory = base.outputDirectory + "/" + policy
            if policy == "random-remove", let ies = rows.first(where: { $0.policy == "ies" }) {
                let saved = 1 - runAccounting(ies.history).trainedFraction
                options.set("remove-fraction", Format.fixed(min(max(saved, 0), 0.99), 6))
                print("random-remove at the budget IES realised: removing \(Format.fixed(100 * saved, 2))% of samples per epoch")
            }
            print("== \(policy)")
            let started = Clock.seconds()
            let outcome = try PolicyOptions.withPolicy(
                options, name: policy, sampleCount: sampleCount, epochs: config.epochs,
                runner: SessionRunner(config: config, train: data.train, test: data.test))
            switch outcome {
            case .success(let history): rows.append(Row(policy: policy, history: history, seconds: Clock.seconds() - started))
            case .failure(let error):
                Console.error("leitner compare: \(policy): " + error.message)
                return 1
            }
        }
        report(rows, directory: base.outputDirectory)
        return 0
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
        let header = BenchSupport.padRight("policy", 20) + BenchSupport.pad("final acc", 10) + BenchSupport.pad("best acc", 10)
            + BenchSupport.pad("backprop saved", 16) + BenchSupport.pad("compute saved", 15) + BenchSupport.pad("trained", 10)
            + BenchSupport.pad("wall s", 9) + BenchSupport.pad("joules", 10) + BenchSupport.pad("mJ/sample", 11)
        print("")
        print(header)
        var csv = "policy,epochs,final_test_accuracy,best_test_accuracy,best_epoch,backprop_saved,compute_saved,samples_trained,samples_scored,wall_seconds,energy_joules,energy_joules_per_sample,energy_source,energy_estimate\n"
        var sources: [String] = []
        var series: [SVGChart.Series] = []
        for row in rows {
            guard let last = row.history.last else { continue }
            let best = row.history.max { $0.testAccuracy < $1.testAccuracy }!
            // Totals over the run, exactly as ALGORITHMS.md defines them.
            let totals = runAccounting(row.history)
            let trained = totals.trained, scored = totals.scored
            let backpropSaved = totals.backpropSaved, computeSaved = totals.computeSaved
            let energy = energyTotals(row.history)
            print(BenchSupport.padRight(row.policy, 20) + BenchSupport.pad(Format.fixed(100 * last.testAccuracy, 2) + "%", 10)
                  + BenchSupport.pad(Format.fixed(100 * best.testAccuracy, 2) + "%", 10)
                  + BenchSupport.pad(Format.fixed(100 * backpropSaved, 1) + "%", 16)
                  + BenchSupport.pad(Format.fixed(100 * computeSaved, 1) + "%", 15) + BenchSupport.pad("\(trained)", 10)
                  + BenchSupport.pad(Format.fixed(row.seconds, 1), 9)
                  + BenchSupport.pad(Format.fixed(energy.joules, 1) + (energy.estimate ? "*" : ""), 10)
                  + BenchSupport.pad(Format.fixed(1000 * energy.joules / Double(max(trained, 1)), 3), 11))
            csv += "\(row.policy),\(row.history.count),\(last.testAccuracy),\(best.testAccuracy),\(best.epoch),\(backpropSaved),\(computeSaved),\(trained),\(scored),\(row.seconds),"
                + "\(energy.joules),\(energy.joules / Double(max(trained, 1))),\"\(energy.source)\",\(energy.estimate)\n"
            if !energy.source.isEmpty && !sources.contains(energy.source) { sources.append(energy.source) }
            var cumulative = 0
            var points: [(x: Double, y: Double)] = []
            for metrics in row.history {
                cumulative += metrics.samplesTrained
                points.append((x: Double(cumulative), y: 100 * metrics.testAccuracy))
            }
            series.append(SVGChart.Series(name: row.policy, points: points))
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
