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
        options: TrainCommand.spec.options.filter { $0.name != TrainOptions.resume.spec.name && $0.name != TrainOptions.replaceWeights.spec.name }
            + [idleSeconds.spec, externalLog.spec, externalLogOffset.spec])

    static let idleSeconds = Option<Double>("idle-seconds", "S", default: 10, range: 0.5...86_400, help: "length of the idle baseline")
    static let externalLog = Option<String?>("external-log", "FILE",
                                             help: "an external meter's CSV of timestamp (Unix seconds or UTC date-time), watts")
    static let externalLogOffset = Option<Double>("external-log-offset", "S", default: 0, range: -1e9...1e9,
                                                  help: "seconds to add to the external log's timestamps (its clock's error)")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.isEmpty else {
            throw UsageError(message: "leitner energy-run: unexpected argument '\(options.positionals[0])' (see leitner energy-run --help)")
        }
        let config = try TrainCommand.config(options)
        guard config.energy.choice != .none else { throw UsageError(message: "leitner energy-run: needs a meter (--meter none was given)") }
        var campaign = EnergyCampaign.Settings()
        campaign.idleSeconds = try options.value(idleSeconds)
        campaign.externalLogOffset = try options.value(externalLogOffset)
        campaign.externalLog = try options.value(externalLog)
        // An external log that is there already must be readable now, not after the run; one
        // that an external meter has not created yet is read (and checked) after the run.
        if let log = campaign.externalLog, FileSystem.exists(log), ((try? FileSystem.size(of: log)) ?? 1) > 0 {
            do throws(EnergyError) { _ = try ExternalLog.load(log) }
            catch { throw UsageError(message: "leitner energy-run: --external-log: " + error.message) }
        }
        let policy = try options.value(PolicyOptions.policy)
        let settings = try PolicyOptions.settings(options)
        try PolicyOptions.checkRead(options, by: [policy], command: "energy-run")
        let reporter = Reporter()
        guard let data = try DataOptions.load(options, reporter: reporter) else { return 1 }
        do throws(TrainError) {
            _ = try EnergyCampaign.run(config, policy: policy, settings: settings, campaign: campaign, train: data.train, test: data.test,
                                       reporter: reporter)
            if !reporter.failedOutputs.isEmpty {
                Console.error("leitner energy-run: not written: " + reporter.failedOutputs.joined(separator: ", "))
                return 1
            }
            return 0
        } catch {
            Console.error("leitner energy-run: " + error.message)
            return 1
        }
    }
}
