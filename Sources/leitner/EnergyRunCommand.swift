import Data
import Energy
import NN
import Platform
import Select
import Train

/// `leitner energy-run`: an idle baseline, then a training run on the same meter; gross and
/// net (above idle) energy per epoch, written as CSV, JSONL and an SVG plot of power.
enum EnergyRunCommand {
    static let spec = CommandSpec(
        name: "energy-run",
        summary: """
        Measures the meter's idle power for --idle-seconds (keep the board otherwise idle),
        then trains as 'leitner train' does on the same meter. Per epoch: gross joules of the
        training loop, net joules (gross minus idle watts x seconds), mean watts and joules per
        trained sample. Writes OUT/energy.csv, OUT/energy.jsonl (one line for the idle baseline,
        one per epoch and source), OUT/power.csv (the sampled trace) and OUT/power.svg (power
        over time, epoch boundaries marked), besides the usual OUT/metrics.jsonl. With
        --external-log, an external meter's CSV (timestamp,watts) is read after the run,
        aligned by its timestamps, and reported as a second source.
        """,
        positionals: "",
        options: TrainCommand.spec.options.filter { $0.name != TrainOptions.resume.spec.name }
            + [idleSeconds.spec, externalLog.spec, externalLogOffset.spec])

    static let idleSeconds = Option<Double>("idle-seconds", "S", default: 10, range: 0.5...86_400, help: "length of the idle baseline")
    static let externalLog = Option<String?>("external-log", "FILE",
                                             help: "an external meter's CSV of timestamp (Unix seconds or UTC date-time), watts")
    static let externalLogOffset = Option<Double>("external-log-offset", "S", default: 0, range: -1e9...1e9,
                                                  help: "seconds to add to the external log's timestamps (its clock's error)")

    /// One epoch's figures from one source.
    struct Row {
        var epoch: Int
        var source: String
        var estimate: Bool
        var metrics: EpochMetrics
        var gross: Double
        var idleWatts: Double
        var net: Double { gross - idleWatts * metrics.wallSeconds }
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.isEmpty else {
            throw UsageError(message: "leitner energy-run: unexpected argument '\(options.positionals[0])' (see leitner energy-run --help)")
        }
        let config = try TrainCommand.config(options)
        guard config.energy.choice != .none else { throw UsageError(message: "leitner energy-run: needs a meter (--meter none was given)") }
        let idleSeconds = try options.value(Self.idleSeconds)
        let offset = try options.value(externalLogOffset)
        let externalLogPath = try options.value(externalLog)
        let policy = try options.value(PolicyOptions.policy)
        let settings = try PolicyOptions.settings(options)
        guard let data = DataOptions.load(options) else { return 1 }
        do throws(SystemError) { try FileSystem.makeDirectories(config.outputDirectory) } catch {
            Console.error("leitner energy-run: " + error.description)
            return 1
        }
        guard let recorder = EnergyMeasurement.startRecorder(config.energy) else {
            Console.error("leitner energy-run: no meter could be started")
            return 1
        }
        print(EnergyMeasurement.sourceLine(recorder.meter))
        print("idle baseline: \(Format.fixed(idleSeconds, 1)) s, keep the board otherwise idle")
        let idleStart = Clock.seconds()
        Thread.sleep(seconds: idleSeconds)
        let idleEnd = Clock.seconds()
        let idle = recorder.energy(from: idleStart, to: idleEnd)
        print("idle: \(Format.fixed(idle.joules, 2)) J over \(Format.fixed(idle.seconds, 2)) s = \(Format.fixed(idle.meanWatts, 3)) W")

        print("policy: \(policy.name)")
        let history: [EpochMetrics]
        do throws(TrainError) {
            history = try TrainCommand.runSession(config: config, policy: policy, settings: settings, train: data.train, test: data.test,
                                                  recorder: recorder)
            recorder.stop()
        } catch {
            recorder.stop()
            Console.error("leitner energy-run: " + error.message)
            return 1
        }
        let trace = recorder.trace()
        var rows = history.map {
            Row(epoch: $0.epoch, source: trace.label, estimate: trace.isEstimate, metrics: $0, gross: $0.energyJoules, idleWatts: idle.meanWatts)
        }
        var idleLines = [(trace.label, trace.isEstimate, idle)]
        var external: PowerTrace? = nil
        if let path = externalLogPath {
            do throws(EnergyError) {
                let log = try ExternalLog.load(path)
                let aligned = log.trace(wallMinusMonotonic: recorder.wallMinusMonotonic, offset: offset)
                let externalIdle = aligned.energy(from: idleStart, to: idleEnd, tolerance: 1)
                print("external log \(path): \(log.unixTimes.count) samples (\(log.skipped) lines skipped); idle \(Format.fixed(externalIdle.meanWatts, 3)) W")
                idleLines.append((aligned.label, false, externalIdle))
                for metrics in history {
                    let figures = aligned.energy(from: metrics.trainStarted, to: metrics.trainEnded, tolerance: 1)
                    rows.append(Row(epoch: metrics.epoch, source: aligned.label, estimate: false, metrics: metrics,
                                    gross: figures.joules, idleWatts: externalIdle.meanWatts))
                }
                if history.contains(where: { aligned.energy(from: $0.trainStarted, to: $0.trainEnded, tolerance: 1).joules.isNaN }) {
                    print("external log \(path): does not cover every epoch (check its clock, --external-log-offset)")
                }
                external = aligned
            } catch {
                Console.error("leitner energy-run: " + error.message)
            }
        }
        printTable(rows)
        print(recorder.overheadLine)
        write(rows: rows, idle: idleLines, idleSeconds: (idleStart, idleEnd), trace: trace, external: external,
              history: history, origin: recorder.startTime, directory: config.outputDirectory)
        return 0
    }

    static func printTable(_ rows: [Row]) {
        var source = ""
        for row in rows {
            if row.source != source {
                source = row.source
                print("\nsource: \(source)" + (row.estimate ? " -- an ESTIMATE" : ""))
                print(Format.padRight("epoch", 6) + Format.pad("seconds", 9) + Format.pad("trained", 9)
                      + Format.pad("compute saved", 14) + Format.pad("gross J", 10) + Format.pad("net J", 10)
                      + Format.pad("mean W", 8) + Format.pad("net mJ/sample", 14))
            }
            print(Format.padRight("\(row.epoch)", 6) + Format.pad(Format.fixed(row.metrics.wallSeconds, 2), 9)
                  + Format.pad("\(row.metrics.samplesTrained)", 9)
                  + Format.pad(Format.fixed(100 * row.metrics.computeSaved, 1) + "%", 14)
                  + Format.pad(Format.fixed(row.gross, 2), 10) + Format.pad(Format.fixed(row.net, 2), 10)
                  + Format.pad(Format.fixed(row.gross / row.metrics.wallSeconds, 3), 8)
                  + Format.pad(Format.fixed(1000 * row.net / Double(max(row.metrics.samplesTrained, 1)), 3), 14))
        }
    }

    static func jsonString(_ text: String) -> String { JSON.text(.string(text)) }

    static func write(rows: [Row], idle: [(String, Bool, EnergyFigures)], idleSeconds: (Double, Double), trace: PowerTrace,
                      external: PowerTrace?, history: [EpochMetrics], origin: Double, directory: String) {
        var csv = "source,estimate,epoch,start_seconds,end_seconds,seconds,samples_trained,compute_saved,gross_joules,net_joules,mean_watts,idle_watts,gross_joules_per_sample,net_joules_per_sample\n"
        var jsonl = ""
        for (source, estimate, figures) in idle {
            csv += "\"\(source)\",\(estimate),0,\(idleSeconds.0 - origin),\(idleSeconds.1 - origin),\(figures.seconds),0,0,\(figures.joules),0,\(figures.meanWatts),\(figures.meanWatts),,\n"
            jsonl += "{\"kind\":\"idle\",\"source\":\(jsonString(source)),\"estimate\":\(estimate),\"start_seconds\":\(JSONNumber.format(idleSeconds.0 - origin)),"
                + "\"end_seconds\":\(JSONNumber.format(idleSeconds.1 - origin)),\"seconds\":\(JSONNumber.format(figures.seconds)),"
                + "\"joules\":\(JSONNumber.format(figures.joules)),\"watts\":\(JSONNumber.format(figures.meanWatts))}\n"
        }
        for row in rows {
            let metrics = row.metrics
            let trained = Double(max(metrics.samplesTrained, 1))
            csv += "\"\(row.source)\",\(row.estimate),\(row.epoch),\(metrics.trainStarted - origin),\(metrics.trainEnded - origin),\(metrics.wallSeconds),"
                + "\(metrics.samplesTrained),\(metrics.computeSaved),\(row.gross),\(row.net),\(row.gross / metrics.wallSeconds),\(row.idleWatts),"
                + "\(row.gross / trained),\(row.net / trained)\n"
            jsonl += "{\"kind\":\"epoch\",\"epoch\":\(row.epoch),\"source\":\(jsonString(row.source)),\"estimate\":\(row.estimate),"
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
        var series = [SVGChart.Series(name: shortName(trace), points: plotPoints(trace, origin: origin))]
        if let external { series.append(SVGChart.Series(name: "external log", points: plotPoints(external, origin: origin))) }
        if let first = idle.first, first.2.meanWatts.isFinite, let last = trace.times.last {
            series.append(SVGChart.Series(name: "idle baseline", points: [(x: 0, y: first.2.meanWatts), (x: last - origin, y: first.2.meanWatts)]))
        }
        var chart = SVGChart(title: "Power over time" + (trace.isEstimate ? " (model ESTIMATE)" : ""), xLabel: "seconds since the meter started",
                             yLabel: "watts", series: series)
        chart.markers.append((x: idleSeconds.1 - origin, label: "train"))
        for metrics in history {
            chart.markers.append((x: metrics.trainStarted - origin, label: "e\(metrics.epoch)"))
            chart.markers.append((x: metrics.trainEnded - origin, label: ""))
        }
        for (name, text) in [("energy.csv", csv), ("energy.jsonl", jsonl), ("power.csv", powerCSV), ("power.svg", chart.svg)] {
            let path = directory + "/" + name
            do throws(SystemError) {
                let file = try FileHandle.create(path)
                try file.write(text)
                try file.close()
                print("wrote \(path)")
            } catch {
                Console.error("leitner energy-run: " + error.description)
            }
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
