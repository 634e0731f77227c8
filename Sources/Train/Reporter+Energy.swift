import Energy
import NN
import Platform

extension Reporter {
    /// The campaign's table and overhead line, then its files.
    func energyCampaignFinished(_ result: EnergyCampaign.Result, directory: String) {
        energyTable(result.rows)
        note(result.overheadLine)
        writeEnergyReports(result, directory: directory)
    }

    /// One table per source: seconds, trained samples, compute saved, gross and net joules,
    /// mean watts and net millijoules per trained sample of each epoch.
    func energyTable(_ rows: [EnergyCampaign.Row]) {
        var source = ""
        for row in rows {
            if row.source != source {
                source = row.source
                note("\nsource: \(source)" + (row.estimate ? " -- an ESTIMATE" : ""))
                note(Format.padRight("epoch", 6) + Format.pad("seconds", 9) + Format.pad("trained", 9)
                     + Format.pad("compute saved", 14) + Format.pad("gross J", 10) + Format.pad("net J", 10)
                     + Format.pad("mean W", 8) + Format.pad("net mJ/sample", 14))
            }
            note(Format.padRight("\(row.epoch)", 6) + Format.pad(Format.fixed(row.metrics.wallSeconds, 2), 9)
                 + Format.pad("\(row.metrics.samplesTrained)", 9)
                 + Format.pad(Format.fixed(100 * row.metrics.computeSaved, 1) + "%", 14)
                 + Format.pad(Format.fixed(row.gross, 2), 10) + Format.pad(Format.fixed(row.net, 2), 10)
                 + Format.pad(Format.fixed(row.gross / row.metrics.wallSeconds, 3), 8)
                 + Format.pad(Format.fixed(1000 * row.net / Double(max(row.metrics.samplesTrained, 1)), 3), 14))
        }
    }

    static func jsonString(_ text: String) -> String { JSON.text(.string(text)) }

    /// energy.csv and energy.jsonl (one line for each source's idle baseline, one per epoch and
    /// source), power.csv (the sampled trace) and power.svg (power over time, the idle baseline
    /// and the epochs marked) in `directory`.
    func writeEnergyReports(_ result: EnergyCampaign.Result, directory: String) {
        let rows = result.rows, trace = result.trace, external = result.external, history = result.history, origin = result.origin
        let idleSeconds = (result.idleStart, result.idleEnd)
        var csv = "source,estimate,epoch,start_seconds,end_seconds,seconds,samples_trained,compute_saved,gross_joules,net_joules,mean_watts,idle_watts,gross_joules_per_sample,net_joules_per_sample\n"
        var jsonl = ""
        for idle in result.idle {
            let source = idle.source, estimate = idle.estimate, figures = idle.figures
            csv += "\"\(source)\",\(estimate),0,\(idleSeconds.0 - origin),\(idleSeconds.1 - origin),\(figures.seconds),0,0,\(figures.joules),0,\(figures.meanWatts),\(figures.meanWatts),,\n"
            jsonl += "{\"kind\":\"idle\",\"source\":\(Reporter.jsonString(source)),\"estimate\":\(estimate),\"start_seconds\":\(JSONNumber.format(idleSeconds.0 - origin)),"
                + "\"end_seconds\":\(JSONNumber.format(idleSeconds.1 - origin)),\"seconds\":\(JSONNumber.format(figures.seconds)),"
                + "\"joules\":\(JSONNumber.format(figures.joules)),\"watts\":\(JSONNumber.format(figures.meanWatts))}\n"
        }
        for row in rows {
            let metrics = row.metrics
            let trained = Double(max(metrics.samplesTrained, 1))
            csv += "\"\(row.source)\",\(row.estimate),\(row.epoch),\(metrics.trainStarted - origin),\(metrics.trainEnded - origin),\(metrics.wallSeconds),"
                + "\(metrics.samplesTrained),\(metrics.computeSaved),\(row.gross),\(row.net),\(row.gross / metrics.wallSeconds),\(row.idleWatts),"
                + "\(row.gross / trained),\(row.net / trained)\n"
            jsonl += "{\"kind\":\"epoch\",\"epoch\":\(row.epoch),\"source\":\(Reporter.jsonString(row.source)),\"estimate\":\(row.estimate),"
                + "\"start_seconds\":\(JSONNumber.format(metrics.trainStarted - origin)),\"end_seconds\":\(JSONNumber.format(metrics.trainEnded - origin)),"
                + "\"start_unix\":\(JSONNumber.format(metrics.trainStartUnix)),\"end_unix\":\(JSONNumber.format(metrics.trainEndUnix)),"
                + "\"seconds\":\(JSONNumber.format(metrics.wallSeconds)),\"samples_trained\":\(metrics.samplesTrained),"
                + "\"samples_scored\":\(metrics.samplesScored),\"compute_saved\":\(JSONNumber.format(metrics.computeSaved)),"
                + "\"gross_joules\":\(JSONNumber.format(row.gross)),\"net_joules\":\(JSONNumber.format(row.net)),"
                + "\"mean_watts\":\(JSONNumber.format(row.gross / metrics.wallSeconds)),\"idle_watts\":\(JSONNumber.format(row.idleWatts)),"
                + "\"gross_joules_per_sample\":\(JSONNumber.format(row.gross / trained)),\"net_joules_per_sample\":\(JSONNumber.format(row.net / trained)),"
                + "\"eval_joules\":\(JSONNumber.format(row.source == trace.label ? metrics.evalEnergyJoules : .nan))}\n"
        }
        var powerCSV = "seconds,watts,joules\n"
        for index in trace.times.indices {
            powerCSV += "\(trace.times[index] - origin),\(JSONNumber.format(trace.watts[index])),\(trace.joules[index])\n"
        }
        var series = [SVGChart.Series(name: Reporter.shortName(trace), points: Reporter.plotPoints(trace, origin: origin))]
        if let external { series.append(SVGChart.Series(name: "external log", points: Reporter.plotPoints(external, origin: origin))) }
        if let first = result.idle.first, first.figures.meanWatts.isFinite, let last = trace.times.last {
            series.append(SVGChart.Series(name: "idle baseline", points: [(x: 0, y: first.figures.meanWatts), (x: last - origin, y: first.figures.meanWatts)]))
        }
        var chart = SVGChart(title: "Power over time" + (trace.isEstimate ? " (model ESTIMATE)" : ""), xLabel: "seconds since the meter started",
                             yLabel: "watts", series: series)
        chart.markers.append((x: idleSeconds.1 - origin, label: "train"))
        for metrics in history {
            chart.markers.append((x: metrics.trainStarted - origin, label: "e\(metrics.epoch)"))
            chart.markers.append((x: metrics.trainEnded - origin, label: ""))
        }
        for (name, text) in [("energy.csv", csv), ("energy.jsonl", jsonl), ("power.csv", powerCSV), ("power.svg", chart.svg)] {
            writeReport(text, directory: directory, name: name, command: "energy-run")
        }
    }

    /// At most about 2000 points: averages of equal runs of samples (power from joules, so no
    /// energy is lost in the picture).
    static func plotPoints(_ trace: PowerTrace, origin: Double) -> [(x: Double, y: Double)] {
        let count = trace.times.count
        guard count >= 2 else { return [] }
        let step = max(1, count / 2000)
        var points: [(x: Double, y: Double)] = []
        var index = 0
        while index + step < count || index == 0 {
            let next = min(index + step, count - 1)
            let seconds = trace.times[next] - trace.times[index]
            if seconds > 0 {
                points.append((x: (trace.times[index] + trace.times[next]) / 2 - origin,
                               y: (trace.joules[next] - trace.joules[index]) / seconds))
            }
            if next == count - 1 { break }
            index = next
        }
        return points
    }

    static func shortName(_ trace: PowerTrace) -> String {
        let label = trace.label
        if let space = label.firstIndex(of: " ") { return String(label[..<space]) + (trace.isEstimate ? " (estimate)" : "") }
        return label
    }
}
