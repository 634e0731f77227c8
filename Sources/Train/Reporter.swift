import Data
import Energy
import NN
import Platform

/// Where the events of a run become output: text lines on standard output (warnings on
/// standard error), the metrics log (one JSON line per epoch, docs/metrics.md), the loss dumps,
/// and the comparison and energy reports (CSV, JSONL, SVG). The training session, the
/// comparison and the energy campaign report here and print nothing themselves; one reporter
/// serves a whole command (compare's runs share it).
public final class Reporter {
    /// No text lines on standard output (warnings and files are still written).
    public var quiet: Bool
    /// The open metrics log of the running session.
    var metricsLog: FileHandle? = nil
    /// The reports that could not be written (each also a warning): a command that wrote
    /// fewer files than it promised exits non-zero.
    public private(set) var failedOutputs: [String] = []

    public init(quiet: Bool = false) {
        self.quiet = quiet
    }

    /// An informational line (start-up, data, choices made).
    public func note(_ line: String) {
        if !quiet { print(line) }
    }

    /// A problem that does not stop the run, on standard error.
    public func warning(_ line: String) {
        Console.error(line)
    }

    /// Writes `text` to `directory/name` and says so; a failure is a warning naming `command`.
    func writeReport(_ text: String, directory: String, name: String, command: String) {
        let path = directory + "/" + name
        do throws(SystemError) {
            try FileSystem.replace(path, with: text)  // written whole or not at all
            note("wrote \(path)")
        } catch {
            failedOutputs.append(path)
            warning("leitner \(command): " + error.description)
        }
    }
}

// MARK: - A training session

extension Reporter {
    /// The start-up lines: model, board, memory plan, sample counts and output directory.
    func sessionStarting(_ trainer: Trainer) {
        let config = trainer.config
        note("model: \(config.modelName), \(trainer.model.parameterCount) parameters; batch \(config.batch), \(config.threads) thread(s), \(config.epochs) epochs, \(config.optimizer.name) lr \(config.learningRate)")
        if let board = config.board {
            note("board: \(board.name) (\(board.description)): threads \(config.threads), memory budget "
                 + (config.memoryBudgetBytes.map { "\($0 >> 20) MiB" } ?? "none"))
        }
        // The update mode changes the activation plan, so a partial update says which.
        let trainability = trainer.model.trainability
        note(trainer.plan.budgetLine + (config.pretrained == nil && !trainability.isPartial ? "" : "; update \(config.update.name)"
            + (trainability.frozenStatistics ? ", batch-norm statistics frozen" : "")))
        if let precisionNote = config.precisionNote {
            note(precisionNote + (trainer.lossScaler.map { "; dynamic loss scaling at \(Format.fixed(Double($0.scale), 0)), x0.5 and skip on inf/NaN, x2 after \($0.growthInterval) finite steps" } ?? ""))
        }
        note("train: \(trainer.train.count) samples, test: \(trainer.test.count) samples; output: \(config.outputDirectory)")
    }

    /// "energy: SOURCE" and, for an estimate, that it is one.
    func energySource(_ meter: Meter) {
        note("energy: " + meter.label + (meter.isEstimate ? " -- an ESTIMATE, not a measurement" : " (measured)"))
    }

    /// Opens (appends to) the session's metrics log.
    func openMetricsLog(_ path: String) throws(TrainError) {
        do { metricsLog = try FileHandle.openForAppending(path) } catch { throw TrainError(error) }
    }

    func closeMetricsLog() {
        try? metricsLog?.close()
        metricsLog = nil
    }

    /// An epoch's figures are complete: its line in the metrics log, before the checkpoint
    /// (a crash between the two leaves a line that `--resume` drops).
    func epochMeasured(_ metrics: EpochMetrics) throws(TrainError) {
        guard let metricsLog else { return }
        do throws(SystemError) { try metricsLog.write(metrics.jsonLine + "\n") } catch { throw TrainError(error) }
    }

    /// An epoch is done and checkpointed: its text line.
    func epochFinished(_ metrics: EpochMetrics, epochs: Int) {
        var line = "epoch \(metrics.epoch)/\(epochs): lr \(Format.fixed(metrics.learningRate, 5)) train loss \(Format.fixed(metrics.trainLoss, 4)) acc \(Format.fixed(100 * metrics.trainAccuracy, 2))% | test loss \(Format.fixed(metrics.testLoss, 4)) acc \(Format.fixed(100 * metrics.testAccuracy, 2))% | \(Format.fixed(metrics.samplesPerSecond, 0)) samples/s, \(Format.fixed(metrics.wallSeconds, 1)) s"
        if metrics.samplesTrained < metrics.population {
            line += " | trained \(metrics.samplesTrained), scored \(metrics.samplesScored), skipped \(metrics.samplesSkipped), backprop saved \(Format.fixed(100 * metrics.backpropSaved, 1))%"
        }
        if metrics.validationAccuracy.isFinite { line += " | validation \(Format.fixed(100 * metrics.validationAccuracy, 2))%" }
        if metrics.stoppedEarly { line += " | early stop" }
        if metrics.fp16SkippedSteps >= 0 { line += " | fp16: \(metrics.fp16SkippedSteps) step(s) skipped, loss scale \(Format.fixed(metrics.lossScale, 0))" }
        if metrics.energyJoules.isFinite {
            line += " | \(Format.fixed(metrics.energyJoules, 1)) J, \(Format.fixed(metrics.energyMeanWatts, 2)) W, \(Format.fixed(1000 * metrics.joulesPerSample, 3)) mJ/sample"
                + (metrics.energyEstimate ? " (estimate)" : "")
        }
        note(line)
    }

    /// The run is over: final and best accuracy, the energy totals, where the log and the
    /// checkpoint are; or that the checkpoint was already complete.
    func sessionFinished(_ session: TrainingSession, seconds: Double, recorder: EnergyRecorder?) {
        let history = session.history
        guard let last = history.last else {
            note("nothing to do: the checkpoint is already at epoch \(session.trainer.epoch) of \(session.config.epochs)")
            return
        }
        let best = history.max { $0.testAccuracy < $1.testAccuracy }!
        note("done in \(Format.duration(seconds)): final test accuracy \(Format.fixed(100 * last.testAccuracy, 2))%, best \(Format.fixed(100 * best.testAccuracy, 2))% (epoch \(best.epoch)); peak RSS \(SystemInfo.peakResidentBytes() >> 20) MiB")
        if let recorder { note(energySummary(history, recorder: recorder)) }
        note("log: \(session.metricsPath), checkpoint: \(session.checkpointPath)")
    }

    /// Totals over the epochs: joules, mean watts and joules per trained sample of the training
    /// loops, the source, and the sampler's own cost.
    func energySummary(_ history: [EpochMetrics], recorder: EnergyRecorder) -> String {
        var joules = 0.0, seconds = 0.0, trained = 0, covered = 0
        for metrics in history where metrics.energyJoules.isFinite {
            joules += metrics.energyJoules
            seconds += metrics.wallSeconds
            trained += metrics.samplesTrained
            covered += 1
        }
        if covered == 0 {
            return "energy (training loops): no figure: the meter's readings covered no epoch; source: \(recorder.meter.label)\n" + recorder.overheadLine
        }
        let partial = covered < history.count ? " (\(covered) of \(history.count) epochs; the others had no reading at their end)" : ""
        return "energy (training loops): \(Format.fixed(joules, 1)) J over \(Format.fixed(seconds, 1)) s, mean \(Format.fixed(joules / max(seconds, 1e-9), 2)) W, "
            + "\(Format.fixed(1000 * joules / Double(max(trained, 1)), 3)) mJ per trained sample\(partial); source: \(recorder.meter.label)"
            + (recorder.meter.isEstimate ? " (estimate)" : "") + "\n" + recorder.overheadLine
    }
}
