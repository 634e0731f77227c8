import Data
import Platform
import Select

/// The same run under several policies (`leitner compare`): identical seed, model, data and
/// schedule, each run in OUT/RUN/; random-remove at the budget an IES run realised. The table,
/// compare.csv and compare.svg are the reporter's.
public enum Comparison {
    /// Which IES run random-remove matches in a threshold sweep.
    public enum Match {
        /// The first threshold's.
        case first
        /// This threshold's.
        case threshold(String)
        /// One random-remove run per IES run.
        case all
    }

    /// The random-removal controls run beside each selective run (ies, dihcl, infobatch,
    /// selective-backprop).
    public struct Controls: Equatable {
        /// Random removal of a fixed fraction per epoch equal to the run's compute saved
        /// (row `RUN.ctl-compute`).
        public var compute: Bool
        /// Random removal of exactly the run's own per-epoch counts (row `RUN.ctl-counts`):
        /// same epochs, same numbers, random samples: it isolates the criterion.
        public var counts: Bool
        public init(compute: Bool, counts: Bool) {
            self.compute = compute
            self.counts = counts
        }
        public static let none = Controls(compute: false, counts: false)
        public static let both = Controls(compute: true, counts: true)
    }

    /// What a control run matches.
    public enum Control: Equatable {
        /// Compute saved of the run with this label.
        case compute(String)
        /// Per-epoch trained counts of the run with this label.
        case counts(String)
    }

    /// One run: its row label, its policy, and for a sweep the IES threshold it uses (ies) or
    /// whose run's budget it matches (random-remove), as given (the label keeps its spelling);
    /// for a control, the run it matches.
    public struct Run {
        public var label: String
        public var policy: PolicyKind
        public var threshold: String? = nil
        public var control: Control? = nil
        /// A variant's own training options and policy settings (its seed, output and dump
        /// directories still come from the comparison); nil: the comparison's.
        public var config: TrainConfig? = nil
        public var settings: PolicySettings? = nil
        /// A variant's own controls; nil: the comparison's.
        public var controls: Controls? = nil
        public init(label: String, policy: PolicyKind, threshold: String? = nil, control: Control? = nil) {
            self.label = label
            self.policy = policy
            self.threshold = threshold
            self.control = control
        }
    }

    /// The policies that choose samples by their own criterion (and so get controls).
    public static func isSelective(_ policy: PolicyKind) -> Bool {
        policy == .ies || policy == .dihcl || policy == .infoBatch || policy == .selectiveBackprop
    }

    /// `runs` with the controls `controls` asks for inserted right after each selective run.
    public static func withControls(_ runs: [Run], _ controls: Controls) -> [Run] {
        var result: [Run] = []
        for run in runs {
            result.append(run)
            guard isSelective(run.policy) && run.control == nil else { continue }
            let controls = run.controls ?? controls
            // A control trains with its run's options (a variant's schedule included).
            var compute = Run(label: run.label + ".ctl-compute", policy: .randomRemove, control: .compute(run.label))
            var counts = Run(label: run.label + ".ctl-counts", policy: .randomRemove, control: .counts(run.label))
            compute.config = run.config
            counts.config = run.config
            compute.settings = run.settings
            counts.settings = run.settings
            if controls.compute { result.append(compute) }
            if controls.counts { result.append(counts) }
        }
        return result
    }

    /// A finished run: its epochs and wall time.
    public struct Row {
        public var label: String
        public var history: [EpochMetrics]
        /// Wall time of the whole run (training, evaluation, checkpoints) in this process.
        public var seconds: Double
        /// Some or all of its epochs ran in an earlier process (`compare --resume`): `seconds`
        /// does not cover them, so its wall figures are its training loops' (`loopSeconds`).
        public var resumed = false
        public init(label: String, history: [EpochMetrics], seconds: Double, resumed: Bool = false) {
            self.label = label
            self.history = history
            self.seconds = seconds
            self.resumed = resumed
        }
    }

    /// The runs in order: `policies`, ies once per threshold when there are thresholds, and
    /// random-remove after the ies runs (it needs their realised budget).
    public static func plan(policies: [PolicyKind], thresholds: [String], match: Match) -> [Run] {
        var runs: [Run] = []
        for policy in policies where policy != .randomRemove {
            if policy == .ies && !thresholds.isEmpty {
                for threshold in thresholds { runs.append(Run(label: "ies@" + threshold, policy: .ies, threshold: threshold)) }
            } else {
                runs.append(Run(label: policy.name, policy: policy))
            }
        }
        guard policies.contains(.randomRemove) else { return runs }
        if thresholds.isEmpty {
            runs.append(Run(label: PolicyKind.randomRemove.name, policy: .randomRemove))
            return runs
        }
        let matched: [String]
        switch match {
        case .all: matched = thresholds
        case .threshold(let threshold): matched = [threshold]
        case .first: matched = [thresholds[0]]
        }
        for threshold in matched {
            runs.append(Run(label: "random-remove@" + threshold, policy: .randomRemove, threshold: threshold))
        }
        return runs
    }

    /// The entry of `thresholds` equal to `text` as a number (so 1e-2 matches 0.01).
    public static func matchingThreshold(_ text: String, in thresholds: [String]) -> String? {
        guard let value = Double(text) else { return nil }
        return thresholds.first { Double($0) == value }
    }

    /// Trains every run of `runs` from `config` (each in its own subdirectory of
    /// `config.outputDirectory`) with `settings`, the ies runs at their threshold and
    /// random-remove at its ies run's realised budget; reports the rows when all are done.
    /// `run` once per seed, each seed's runs in `config.outputDirectory`/seed-S with its own
    /// table; then the table over seeds (mean and standard deviation per row). One seed is
    /// `run` as it always was, in `config.outputDirectory` itself.
    /// With `resume`, a run whose directory already holds a run continues it (`train
    /// --resume`: a finished one is only read back), so an interrupted comparison loses at
    /// most the epoch in progress.
    public static func run(_ runs: [Run], seeds: [UInt64], config base: TrainConfig, settings: PolicySettings, resume: Bool = false,
                           train: Dataset, test: Dataset, reporter: Reporter) throws(TrainError) -> [[Row]] {
        guard seeds.count > 1 else {
            var config = base
            if let seed = seeds.first { config.seed = seed }
            return [try run(runs, config: config, settings: settings, resume: resume, train: train, test: test, reporter: reporter)]
        }
        var all: [[Row]] = []
        for seed in seeds {
            var config = base
            config.seed = seed
            config.outputDirectory = base.outputDirectory + "/seed-\(seed)"
            if let dump = base.lossDumpDirectory { config.lossDumpDirectory = dump + "/seed-\(seed)" }
            reporter.note("=== seed \(seed)")
            all.append(try run(runs, config: config, settings: settings, resume: resume, train: train, test: test, reporter: reporter))
        }
        reporter.seedsFinished(all, seeds: seeds, directory: base.outputDirectory)
        return all
    }

    public static func run(_ runs: [Run], config base: TrainConfig, settings baseSettings: PolicySettings, resume: Bool = false,
                           train: Dataset, test: Dataset, reporter: Reporter) throws(TrainError) -> [Row] {
        var rows: [Row] = []
        for run in runs {
            var config = run.config ?? base
            config.seed = base.seed
            config.lossDumpDirectory = base.lossDumpDirectory
            var settings = run.settings ?? baseSettings
            var directoryName = ""
            for character in run.label { directoryName.append(character == "@" ? "-" : character) }
            config.outputDirectory = base.outputDirectory + "/" + directoryName
            if let dump = base.lossDumpDirectory { config.lossDumpDirectory = dump + "/" + directoryName }
            if run.policy == .ies, let threshold = run.threshold {
                guard let value = Double(threshold) else { throw TrainError("\(run.label): the threshold is not a number") }
                settings.iesThreshold = value
            }
            if let control = run.control {
                // A run stopped early (--stop-after-epoch) has no budget or counts for its later
                // epochs yet: its controls wait for the --resume that finishes it.
                let matchedLabel: String
                switch control { case .compute(let label), .counts(let label): matchedLabel = label }
                if let matched = rows.first(where: { $0.label == matchedLabel }), matched.history.count < config.epochs {
                    reporter.note("\(run.label): not run yet: \(matchedLabel) stopped after epoch \(matched.history.count) of \(config.epochs) (compare --resume finishes both)")
                    continue
                }
                switch control {
                case .compute(let label):
                    guard let matched = rows.first(where: { $0.label == label }) else { throw TrainError("\(run.label): \(label) has not run") }
                    let saved = matched.accounting.computeSaved
                    settings.removeFraction = budget(saved)
                    reporter.note("\(run.label): random removal of \(Format.fixed(100 * settings.removeFraction, 2))% of samples per epoch, \(label)'s compute saved")
                case .counts(let label):
                    guard let matched = rows.first(where: { $0.label == label }) else { throw TrainError("\(run.label): \(label) has not run") }
                    settings.removeCounts = matched.history.map { max(0, $0.population - $0.samplesTrained) }
                    reporter.note("\(run.label): random removal of \(label)'s own per-epoch counts (trained " +
                                  matched.history.map { "\($0.samplesTrained)" }.joined(separator: ",") + ")")
                }
            } else if run.policy == .randomRemove {
                let iesLabel = run.threshold.map { "ies@" + $0 } ?? "ies"
                if let ies = rows.first(where: { $0.label == iesLabel }) {
                    let saved = 1 - ies.accounting.trainedFraction
                    settings.removeFraction = budget(saved)
                    reporter.note("random-remove at the budget \(iesLabel) realised: removing \(Format.fixed(100 * saved, 2))% of samples per epoch")
                }
            }
            reporter.note("== \(run.label)")
            config.resume = resume && TrainingSession.runFiles.contains { FileSystem.exists(config.outputDirectory + "/" + $0) }
            let started = Clock.seconds()
            do throws(TrainError) {
                var history = try Training.run(config, policy: run.policy, settings: settings, train: train, test: test, reporter: reporter)
                let seconds = Clock.seconds() - started
                // A resumed run's history holds only the epochs of this process: the log has all.
                if config.resume { history = try MetricsLog.read(config.outputDirectory + "/metrics.jsonl") }
                guard !config.resume || history.count == config.epochs else {
                    throw TrainError("\(config.outputDirectory)/metrics.jsonl holds \(history.count) epochs after the resumed run, not \(config.epochs)")
                }
                rows.append(Row(label: run.label, history: history, seconds: seconds, resumed: config.resume))
            } catch {
                throw TrainError("\(run.label): " + error.message)
            }
        }
        reporter.comparisonFinished(rows, directory: base.outputDirectory)
        return rows
    }

    /// random-remove's fraction for an IES run that saved `saved` of its samples: clamped to
    /// 0...0.99 and rounded to 6 decimals, as it always was (integer / 1e6 is the double
    /// nearest that decimal, the same value its text parses to).
    public static func budget(_ saved: Double) -> Double {
        (min(max(saved, 0), 0.99) * 1e6).rounded() / 1e6
    }
}

extension Comparison.Row {
    /// The run's totals from its epochs' counts, as ALGORITHMS.md defines them.
    public var accounting: RunAccounting {
        var totals = RunAccounting()
        for metrics in history {
            totals.add(EpochAccounting(epoch: metrics.epoch - 1, sampleCount: metrics.population, trained: metrics.samplesTrained,
                                       scored: metrics.samplesScored, skipped: metrics.samplesSkipped))
        }
        return totals
    }

    /// Seconds of the training loops, summed over the epochs (evaluation and checkpoints left out).
    public var loopSeconds: Double { history.reduce(0) { $0 + $1.wallSeconds } }

    /// The wall seconds the table shows: the whole run's, or its training loops' when part of
    /// it ran in an earlier process.
    public var shownSeconds: Double { resumed ? loopSeconds : seconds }

    /// This run's wall time over `full`'s: whole runs when both ran in this process, else
    /// training loops against training loops.
    public func wallRatio(to full: Comparison.Row) -> Double {
        resumed || full.resumed ? loopSeconds / max(full.loopSeconds, 1e-9) : seconds / max(full.seconds, 1e-9)
    }

    /// Mean test accuracy of the last `count` epochs (fewer when the run is shorter).
    public func meanTestAccuracy(last count: Int) -> Double {
        let tail = history.suffix(count)
        return tail.isEmpty ? .nan : tail.reduce(0) { $0 + $1.testAccuracy } / Double(tail.count)
    }

    /// The training loops' joules (NaN when an epoch had none) and the meter's source.
    public var energy: (joules: Double, source: String, estimate: Bool) {
        var joules = 0.0
        for metrics in history { joules += metrics.energyJoules }
        return (joules, history.first?.energySource ?? "", history.first?.energyEstimate ?? false)
    }
}
