import Data
import Energy
import Kernels
import NN
import Platform
import Select

/// A training run with its output directory: prints the start-up lines (data, model, memory
/// plan), writes one JSON line per epoch to OUT/metrics.jsonl, checkpoints atomically to
/// OUT/checkpoint.safetensors after every epoch, resumes from it, and prints a summary.
public final class TrainingSession {
    public let trainer: Trainer
    public let config: TrainConfig
    public var checkpointPath: String { config.outputDirectory + "/checkpoint.safetensors" }
    public var metricsPath: String { config.outputDirectory + "/metrics.jsonl" }
    /// Every epoch's metrics of this process (after a resume: the epochs run since).
    public private(set) var history: [EpochMetrics] = []
    /// Per-sample selection state, persisted at each epoch end (before the checkpoint).
    let stateStore = StateStore()
    /// The checkpoint's epoch when resuming (the policy's state must match it).
    var resumedEpoch: Int? = nil
    /// The epoch of the newest checkpoint this run wrote or resumed from.
    var lastGoodEpoch: Int? = nil
    /// Learning-rate halvings so far (`--on-nan backoff`).
    var backoffs = 0
    /// The energy recorder. Set one (started) before `run` to share it, as `energy-run` does
    /// to measure idle power first; otherwise `run` opens `config.energy`'s meter and stops it
    /// at the end.
    public var recorder: EnergyRecorder? = nil

    public init(config: TrainConfig, train: Dataset, test: Dataset, validationFraction: Double = 0) throws(TrainError) {
        self.config = config
        trainer = try Trainer(config: config, train: train, test: test, validationFraction: validationFraction)
        do { try FileSystem.makeDirectories(config.outputDirectory) } catch { throw TrainError(error) }
        if config.resume {
            try resume()
        } else {
            // A fresh run starts a fresh log.
            do { try FileSystem.remove(metricsPath) } catch { throw TrainError(error) }
        }
    }

    /// Restores weights, optimizer state, epoch and step from the checkpoint, and cuts the
    /// metrics log back to the checkpoint's epoch (a crash after an epoch's log line but before
    /// its checkpoint would otherwise leave that epoch twice, or a torn last line).
    func resume() throws(TrainError) {
        guard FileSystem.exists(checkpointPath) else {
            throw TrainError("--resume: no checkpoint at \(checkpointPath)")
        }
        try restoreCheckpoint(context: "--resume")
        resumedEpoch = trainer.epoch
        try trimMetricsLog(toEpoch: trainer.epoch)
        print("resumed from \(checkpointPath) after epoch \(trainer.epoch) (step \(trainer.step))")
    }

    /// Loads the checkpoint into the trainer (weights, optimizer state, epoch, step, LR scale).
    func restoreCheckpoint(context: String) throws(TrainError) {
        let metadata: [(String, String)]
        do { metadata = try Checkpoint.load(path: checkpointPath, into: trainer.model, optimizer: trainer.optimizer.checkpointState) }
        catch { throw TrainError("\(context): \(error.description)") }
        guard let epochText = Checkpoint.value("epoch", in: metadata), let epoch = Int(epochText),
              let stepText = Checkpoint.value("step", in: metadata), let step = Int(stepText) else {
            throw TrainError("\(context): \(checkpointPath) has no epoch/step metadata")
        }
        if let seed = Checkpoint.value("seed", in: metadata), seed != "\(config.seed)" {
            throw TrainError("\(context): the checkpoint was trained with --seed \(seed), not \(config.seed)")
        }
        if Checkpoint.value("model_description", in: metadata) != config.model.text {
            throw TrainError("\(context): the checkpoint holds a different model than --model \(config.modelName)")
        }
        trainer.epoch = epoch
        trainer.step = step
        trainer.learningRateScale = Checkpoint.value("learning_rate_scale", in: metadata).flatMap { Double($0) } ?? 1
        lastGoodEpoch = epoch
    }

    /// Keeps the complete lines of the metrics log up to `epoch` (replaced atomically).
    func trimMetricsLog(toEpoch epoch: Int) throws(TrainError) {
        guard FileSystem.exists(metricsPath) else { return }
        do throws(SystemError) {
            let bytes = try FileSystem.readAll(metricsPath)
            var kept = ""
            var dropped = 0
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
                if line.isEmpty { continue }
                if let lineEpoch = MetricsLog.epoch(of: line), lineEpoch <= epoch, line.hasSuffix("}") {
                    kept += line + "\n"
                } else {
                    dropped += 1
                }
            }
            guard dropped > 0 else { return }
            try FileSystem.replace(metricsPath, with: kept)
            print("metrics log: dropped \(dropped) line(s) after epoch \(epoch) (written after the checkpoint, or torn)")
        } catch {
            throw TrainError("--resume: metrics log not repaired: \(error.description)")
        }
    }

    /// After a non-finite loss or weight: stop with the last good checkpoint named, or (backoff)
    /// reload it with half the learning rate and its selection state.
    func handleFault<Policy: SelectionPolicy>(_ fault: NumericFault, policy: inout Policy) throws(TrainError) {
        let good = lastGoodEpoch.map { "the last good checkpoint is \(checkpointPath) (epoch \($0))" }
            ?? "there is no good checkpoint of this run yet"
        guard config.onNaN == .backoff, let epoch = lastGoodEpoch else {
            throw TrainError("\(fault.description); stopped: \(good)")
        }
        guard backoffs < NaNAction.maximumBackoffs else {
            throw TrainError("\(fault.description); stopped after \(backoffs) learning-rate backoffs: \(good)")
        }
        backoffs += 1
        let scale = trainer.learningRateScale
        try restoreCheckpoint(context: "--on-nan backoff")
        trainer.learningRateScale = min(scale, trainer.learningRateScale) * 0.5
        if policy.stateStride > 0 {
            do throws(SelectError) {
                try stateStore.load(directory: config.outputDirectory, epoch: epoch, sampleCount: trainer.train.count, into: &policy)
            } catch {
                throw TrainError("--on-nan backoff: \(error.description)")
            }
        }
        print("\(fault.description); backoff \(backoffs)/\(NaNAction.maximumBackoffs): reloaded \(checkpointPath) (epoch \(epoch)), learning rate x\(trainer.learningRateScale)")
    }

    func saveCheckpoint(_ metrics: EpochMetrics) throws(TrainError) {
        var metadata: [(String, String)] = [
            ("epoch", "\(trainer.epoch)"), ("step", "\(trainer.step)"), ("seed", "\(config.seed)"),
            ("model_description", config.model.text), ("learning_rate", "\(metrics.learningRate)"),
            ("test_accuracy", "\(metrics.testAccuracy)"),
        ]
        if trainer.learningRateScale != 1 { metadata.append(("learning_rate_scale", "\(trainer.learningRateScale)")) }
        do { try Checkpoint.save(model: trainer.model, optimizer: trainer.optimizer.checkpointState, metadata: metadata, path: checkpointPath) }
        catch { throw TrainError("checkpoint not written: \(error.description)") }
        lastGoodEpoch = trainer.epoch
    }

    /// Runs the remaining epochs with `policy` planning each epoch.
    public func run<Policy: SelectionPolicy>(policy: inout Policy) throws(TrainError) {
        let model = trainer.model
        print("model: \(config.modelName), \(model.parameterCount) parameters; batch \(config.batch), \(config.threads) thread(s), \(config.epochs) epochs, \(config.optimizer.name) lr \(config.learningRate)")
        if let board = config.board {
            print("board: \(board.name) (\(board.description)): threads \(config.threads), memory budget "
                  + (config.memoryBudgetBytes.map { "\($0 >> 20) MiB" } ?? "none"))
        }
        // The update mode changes the activation plan, so a partial update says which.
        let trainability = trainer.model.trainability
        print(trainer.plan.budgetLine + (config.pretrained == nil && !trainability.isPartial ? "" : "; update \(config.update.name)"
            + (trainability.frozenStatistics ? ", batch-norm statistics frozen" : "")))
        print("train: \(trainer.train.count) samples, test: \(trainer.test.count) samples; output: \(config.outputDirectory)")
        if let epoch = resumedEpoch, policy.stateStride > 0 {
            do {
                let generation = try stateStore.load(directory: config.outputDirectory, epoch: epoch,
                                                     sampleCount: trainer.train.count, into: &policy)
                print("selection state restored (epoch \(epoch), \(generation == .current ? "current" : "previous") generation)")
            } catch {
                throw TrainError("--resume: \(error.description)")
            }
        }
        let log: FileHandle
        do { log = try FileHandle.openForAppending(metricsPath) } catch { throw TrainError(error) }
        defer { try? log.close() }
        let ownsRecorder = recorder == nil
        if recorder == nil { recorder = EnergyMeasurement.startRecorder(config.energy) }
        defer { if ownsRecorder { recorder?.stop() } }
        if let recorder { print(EnergyMeasurement.sourceLine(recorder.meter)) }
        let wallMinusMonotonic = Clock.wallSeconds() - Clock.seconds()
        let started = Clock.seconds()
        try trainer.run(policy: &policy) { (metrics: EpochMetrics, policy: inout Policy) throws(TrainError) in
            var metrics = metrics
            metrics.reentries = policy.lastEpochReentries
            metrics.trainStartUnix = metrics.trainStarted + wallMinusMonotonic
            metrics.trainEndUnix = metrics.trainEnded + wallMinusMonotonic
            if let recorder { EnergyMeasurement.fill(&metrics, recorder: recorder) }
            do throws(SystemError) { try log.write(metrics.jsonLine + "\n") } catch { throw TrainError(error) }
            // State first, then the checkpoint: the state store keeps the previous generation,
            // so a crash between the two still finds the state matching the checkpoint's epoch.
            if policy.stateStride > 0 {
                do throws(SelectError) { try stateStore.save(policy, sampleCount: trainer.train.count, epoch: trainer.epoch, directory: config.outputDirectory) }
                catch { throw TrainError("selection state not written: \(error.description)") }
            }
            try saveCheckpoint(metrics)
            history.append(metrics)
            var line = "epoch \(metrics.epoch)/\(config.epochs): lr \(Format.fixed(metrics.learningRate, 5)) train loss \(Format.fixed(metrics.trainLoss, 4)) acc \(Format.fixed(100 * metrics.trainAccuracy, 2))% | test loss \(Format.fixed(metrics.testLoss, 4)) acc \(Format.fixed(100 * metrics.testAccuracy, 2))% | \(Format.fixed(metrics.samplesPerSecond, 0)) samples/s, \(Format.fixed(metrics.wallSeconds, 1)) s"
            if metrics.samplesTrained < metrics.population {
                line += " | trained \(metrics.samplesTrained), scored \(metrics.samplesScored), skipped \(metrics.samplesSkipped), backprop saved \(Format.fixed(100 * metrics.backpropSaved, 1))%"
            }
            if metrics.validationAccuracy.isFinite { line += " | validation \(Format.fixed(100 * metrics.validationAccuracy, 2))%" }
            if metrics.stoppedEarly { line += " | early stop" }
            if metrics.energyJoules.isFinite {
                line += " | \(Format.fixed(metrics.energyJoules, 1)) J, \(Format.fixed(metrics.energyMeanWatts, 2)) W, \(Format.fixed(1000 * metrics.joulesPerSample, 3)) mJ/sample"
                    + (metrics.energyEstimate ? " (estimate)" : "")
            }
            print(line)
        } faulted: { (fault: NumericFault, policy: inout Policy) throws(TrainError) in
            try handleFault(fault, policy: &policy)
        }
        if let last = history.last {
            let best = history.max { $0.testAccuracy < $1.testAccuracy }!
            print("done in \(Format.duration(Clock.seconds() - started)): final test accuracy \(Format.fixed(100 * last.testAccuracy, 2))%, best \(Format.fixed(100 * best.testAccuracy, 2))% (epoch \(best.epoch)); peak RSS \(SystemInfo.peakResidentBytes() >> 20) MiB")
            if let recorder { print(EnergyMeasurement.summary(history, recorder: recorder)) }
            print("log: \(metricsPath), checkpoint: \(checkpointPath)")
        } else {
            print("nothing to do: the checkpoint is already at epoch \(trainer.epoch) of \(config.epochs)")
        }
    }
}

/// Reading back the metrics log (one JSON object per line, "epoch" first).
enum MetricsLog {
    /// The value of a line's leading "epoch" field, or nil for a line that does not start so.
    static func epoch<Line: StringProtocol>(of line: Line) -> Int? {
        let prefix = "{\"epoch\":"
        guard line.hasPrefix(prefix) else { return nil }
        var value = 0
        var digits = 0
        for byte in line.utf8.dropFirst(prefix.utf8.count) {
            guard byte >= 48 && byte <= 57 else { break }
            value = value * 10 + Int(byte - 48)
            digits += 1
            if digits > 9 { return nil }
        }
        return digits > 0 ? value : nil
    }
}
