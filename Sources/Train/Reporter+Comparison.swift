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
        let fullSeconds = rows.first { $0.label == "full" }?.seconds
        for row in rows {
            guard let last = row.history.last else { continue }
            let best = row.history.max { $0.testAccuracy < $1.testAccuracy }!
            let lastFive = row.meanTestAccuracy(last: 5)
            let totals = row.accounting
            let trained = totals.trained, scored = totals.scored
            let backpropSaved = totals.backpropSaved, computeSaved = totals.computeSaved
            let energy = row.energy
            let wallRatio = fullSeconds.map { row.seconds / max($0, 1e-9) }
            note(Format.padRight(row.label, 22) + Format.pad(Format.fixed(100 * last.testAccuracy, 2) + "%", 10)
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
        note("joules: training loops summed over epochs (* = estimate); energy: " + (sources.isEmpty ? "no meter" : sources.joined(separator: "; ")))
        let chart = SVGChart(title: "Test accuracy against trained samples", xLabel: "cumulative trained samples",
                             yLabel: "test accuracy (%)", series: series)
        writeReport(csv, directory: directory, name: "compare.csv", command: "compare")
        writeReport(chart.svg, directory: directory, name: "compare.svg", command: "compare")
    }
}
