import Platform
import Select

extension Reporter {
    /// The comparison's table on standard output, compare.csv and compare.svg in `directory`
    /// (test accuracy against cumulative trained samples, one line per run).
    func comparisonFinished(_ rows: [Comparison.Row], directory: String) {
        let header = Format.padRight("run", 22) + Format.pad("final acc", 10) + Format.pad("best acc", 10)
            + Format.pad("last-5 acc", 11) + Format.pad("backprop saved", 16) + Format.pad("compute saved", 15)
            + Format.pad("trained", 10) + Format.pad("wall s", 9) + Format.pad("wall/full", 10)
            + Format.pad("joules", 10) + Format.pad("mJ/sample", 11)
        note("")
        note(header)
        var csv = "policy,epochs,final_test_accuracy,best_test_accuracy,best_epoch,last5_test_accuracy,backprop_saved,compute_saved,samples_trained,samples_scored,wall_seconds,wall_vs_full,energy_joules,energy_joules_per_sample,energy_source,energy_estimate\n"
        var sources: [String] = []
        var series: [SVGChart.Series] = []
        let fullRow = rows.first { $0.label == "full" }
        for row in rows {
            guard let last = row.history.last else { continue }
            let best = row.history.max { $0.testAccuracy < $1.testAccuracy }!
            let lastFive = row.meanTestAccuracy(last: 5)
            let totals = row.accounting
            let trained = totals.trained, scored = totals.scored
            let backpropSaved = totals.backpropSaved, computeSaved = totals.computeSaved
            let energy = row.energy
            let wallRatio = fullRow.map { row.wallRatio(to: $0) }
            note(Format.padRight(row.label, 22) + Format.pad(Format.fixed(100 * last.testAccuracy, 2) + "%", 10)
                 + Format.pad(Format.fixed(100 * best.testAccuracy, 2) + "%", 10)
                 + Format.pad(Format.fixed(100 * lastFive, 2) + "%", 11)
                 + Format.pad(Format.fixed(100 * backpropSaved, 1) + "%", 16)
                 + Format.pad(Format.fixed(100 * computeSaved, 1) + "%", 15) + Format.pad("\(trained)", 10)
                 + Format.pad(Format.fixed(row.shownSeconds, 1) + (row.resumed ? "r" : ""), 9)
                 + Format.pad(wallRatio.map { Format.fixed($0, 2) + "x" } ?? "-", 10)
                 + Format.pad(Format.fixed(energy.joules, 1) + (energy.estimate ? "*" : ""), 10)
                 + Format.pad(Format.fixed(1000 * energy.joules / Double(max(trained, 1)), 3), 11))
            csv += "\(row.label),\(row.history.count),\(last.testAccuracy),\(best.testAccuracy),\(best.epoch),\(lastFive),\(backpropSaved),\(computeSaved),\(trained),\(scored),\(row.shownSeconds),\(wallRatio.map { "\($0)" } ?? ""),"
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
        if rows.contains(where: { $0.resumed }) {
            note("r: resumed (--resume): wall s is its training loops' seconds summed over its epochs, and wall/full compares training loops")
        }
        note("joules: training loops summed over epochs (* = estimate); energy: " + (sources.isEmpty ? "no meter" : sources.joined(separator: "; ")))
        let chart = SVGChart(title: "Test accuracy against trained samples", xLabel: "cumulative trained samples",
                             yLabel: "test accuracy (%)", series: series)
        writeReport(csv, directory: directory, name: "compare.csv", command: "compare")
        writeReport(chart.svg, directory: directory, name: "compare.svg", command: "compare")
    }
}

/// Mean, sample standard deviation and the standard error of the mean of a few values.
public struct SeedStatistics {
    public let count: Int
    public let mean: Double
    /// Sample standard deviation (n - 1); NaN for one value.
    public let deviation: Double
    /// deviation / sqrt(n); NaN for one value.
    public var standardError: Double { deviation / FloatMath.sqrt(Double(count)) }

    public init(_ values: [Double]) {
        count = values.count
        mean = values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
        if values.count < 2 {
            deviation = .nan
        } else {
            var sum = 0.0
            for value in values { sum += (value - mean) * (value - mean) }
            deviation = FloatMath.sqrt(sum / Double(values.count - 1))
        }
    }

    /// True when the mean is more than two standard errors from 0 (a paired difference that
    /// counts); false within them or when there is one value.
    public var isSignificant: Bool { count > 1 && abs(mean) > 2 * standardError }
}

extension Reporter {
    /// The table over seeds: per run, mean and standard deviation of last-5 test accuracy,
    /// compute saved, backprop saved and wall time over full's; the paired difference (same
    /// seed) of last-5 accuracy to full's and, for a control row, of its selective run to it,
    /// each with its standard error and "n.s." when within two standard errors. Also
    /// compare-seeds.csv in `directory`.
    func seedsFinished(_ rowsBySeed: [[Comparison.Row]], seeds: [UInt64], directory: String) {
        guard let first = rowsBySeed.first else { return }
        func percent(_ statistics: SeedStatistics, _ decimals: Int = 2) -> String {
            Format.fixed(100 * statistics.mean, decimals) + " ± " + Format.fixed(100 * statistics.deviation, decimals)
        }
        func difference(_ statistics: SeedStatistics) -> String {
            (statistics.mean >= 0 ? "+" : "") + Format.fixed(100 * statistics.mean, 2) + " ± " + Format.fixed(100 * statistics.standardError, 2)
                + (statistics.isSignificant ? "" : " n.s.")
        }
        note("")
        note("over \(seeds.count) seeds (" + seeds.map { "\($0)" }.joined(separator: ",") + "): mean ± standard deviation; "
             + "differences are paired by seed, ± one standard error, n.s. = within two standard errors")
        note(Format.padRight("run", 26) + Format.pad("last-5 acc %", 16) + Format.pad("vs full (points)", 20)
             + Format.pad("vs its run (points)", 22) + Format.pad("compute saved %", 17) + Format.pad("backprop saved %", 18)
             + Format.pad("wall/full", 14))
        var csv = "policy,seeds,last5_mean,last5_sd,vs_full_mean,vs_full_se,vs_full_significant,vs_run,vs_run_mean,vs_run_se,vs_run_significant,compute_saved_mean,compute_saved_sd,backprop_saved_mean,backprop_saved_sd,wall_vs_full_mean,wall_vs_full_sd\n"
        for reference in first {
            let label = reference.label
            var accuracy: [Double] = [], computeSaved: [Double] = [], backpropSaved: [Double] = [], wall: [Double] = []
            var versusFull: [Double] = [], versusRun: [Double] = []
            // A control row's selective run: the label before ".ctl-".
            var matchedRun: String? = nil
            for suffix in [".ctl-compute", ".ctl-counts"] where label.hasSuffix(suffix) {
                matchedRun = String(label.dropLast(suffix.count))
            }
            for rows in rowsBySeed {
                guard let row = rows.first(where: { $0.label == label }) else { continue }
                let lastFive = row.meanTestAccuracy(last: 5)
                accuracy.append(lastFive)
                let totals = row.accounting
                computeSaved.append(totals.computeSaved)
                backpropSaved.append(totals.backpropSaved)
                if let full = rows.first(where: { $0.label == "full" }) {
                    wall.append(row.wallRatio(to: full))
                    if label != "full" { versusFull.append(lastFive - full.meanTestAccuracy(last: 5)) }
                }
                if let matchedRun, let selective = rows.first(where: { $0.label == matchedRun }) {
                    versusRun.append(selective.meanTestAccuracy(last: 5) - lastFive)
                }
            }
            let a = SeedStatistics(accuracy), c = SeedStatistics(computeSaved), b = SeedStatistics(backpropSaved), w = SeedStatistics(wall)
            let f = SeedStatistics(versusFull), r = SeedStatistics(versusRun)
            note(Format.padRight(label, 26) + Format.pad(percent(a), 16)
                 + Format.pad(versusFull.isEmpty ? "-" : difference(f), 20)
                 + Format.pad(versusRun.isEmpty ? "-" : difference(r), 22)
                 + Format.pad(percent(c, 1), 17) + Format.pad(percent(b, 1), 18)
                 + Format.pad(wall.isEmpty ? "-" : Format.fixed(w.mean, 2) + " ± " + Format.fixed(w.deviation, 2), 14))
            csv += "\(label),\(a.count),\(a.mean),\(a.deviation),"
                + (versusFull.isEmpty ? ",,," : "\(f.mean),\(f.standardError),\(f.isSignificant),")
                + (versusRun.isEmpty ? ",,,," : "\(matchedRun ?? ""),\(r.mean),\(r.standardError),\(r.isSignificant),")
                + "\(c.mean),\(c.deviation),\(b.mean),\(b.deviation),"
                + (wall.isEmpty ? ",\n" : "\(w.mean),\(w.deviation)\n")
        }
        note("vs its run: the selective run's last-5 accuracy minus its control's (positive: the criterion beats random removal at that budget)")
        writeReport(csv, directory: directory, name: "compare-seeds.csv", command: "compare")
    }
}
