import Data
import Energy
import Kernels
import NN
import Platform
import Select

/// A training run with its output directory: checkpoints atomically to
/// OUT/checkpoint.safetensors after every epoch, resumes from it, and reports its events (the
/// start-up lines, each epoch's figures for OUT/metrics.jsonl and its text line, the summary)
/// to its reporter.
public final class TrainingSession {
    public let trainer: Trainer
    public let config: TrainConfig
    public let reporter: Reporter
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
    /// The settings that decide this run's numbers, stored with every checkpoint.
    let identity: RunIdentity
    /// The output directory's lock, held from the start until `run` ends (or the session goes).
    var lock: FileLock?
    /// The energy recorder. Set one (started) before `run` to share it, as `energy-run` does
    /// to measure idle power first; otherwise `run` opens `config.energy`'s meter and stops it
    /// at the end.
    public var recorder: EnergyRecorder? = nil

    public init(config: TrainConfig, train: Dataset, test: Dataset, validationFraction: Double = 0,
                reporter: Reporter = Reporter()) throws(TrainError) {
        self.config = config
        self.reporter = reporter
        var identity = RunIdentity(config: config)
        identity.facts += config.runFacts.facts
        self.identity = identity
        trainer = try Trainer(config: config, train: train, test: test, validationFraction: validationFraction)
        // With several ranks only rank 0 writes (and locks) the output directory; the others
        // read the checkpoint and state of a resumed run from it (a shared directory, or a copy).
        if writesFiles {
            lock = try Self.claim(config.outputDirectory, resume: config.resume, replace: config.replaceExisting, reporter: reporter)
        }
        if config.resume { try resume() }
        if let path = config.replaceWeights { try replaceWeights(path) }
    }

    /// Replaces the model's weights with the model tensors of `path` (checked by name and
    /// shape, every one present, no unknown ones), keeping everything else the resume restored.
    func replaceWeights(_ path: String) throws(TrainError) {
        do { try Checkpoint.load(path: path, into: trainer.model, optimizer: .none) }
        catch { throw TrainError("--replace-weights: \(error.description)") }
        reporter.note("weights replaced by \(path) (optimizer state, epoch \(trainer.epoch), step \(trainer.step) and selection state kept)")
    }

    deinit { lock?.release() }

    /// Whether this process writes the run's files: rank 0 of a data-parallel run, or the only one.
    var writesFiles: Bool { trainer.rank == 0 }

    /// The run's own files, the checkpoint first (a directory holding it holds a run).
    static let runFiles = ["checkpoint.safetensors", "metrics.jsonl", StateStore.fileName, StateStore.fileName + ".prev"]

    /// Makes `directory` this run's own: creates it, locks it for the life of the process (a
    /// second run into it is refused while this one lives), and for a fresh run makes sure it
    /// holds no other run's files: refused, or with `replace` (`--force`) the old run moves
    /// aside whole to DIRECTORY.previous-N, so that the two never mix.
    static func claim(_ directory: String, resume: Bool, replace: Bool, reporter: Reporter) throws(TrainError) -> FileLock {
        let lockPath = directory + "/.leitner.lock"
        func system<T>(_ body: () throws(SystemError) -> T) throws(TrainError) -> T {
            do { return try body() } catch { throw TrainError(error) }
        }
        try system { () throws(SystemError) in try FileSystem.makeDirectories(directory) }
        guard let lock = try system({ () throws(SystemError) in try FileLock.acquire(lockPath) }) else {
            throw TrainError("\(directory) is in use by another leitner run (its process id is in \(lockPath)); use another --out")
        }
        // A run is there once it has a checkpoint. A log or selection state without one is
        // what a run killed before its first checkpoint leaves: nothing to resume or keep,
        // so a fresh run clears it (as a fresh log must start empty).
        let holdsRun = FileSystem.exists(directory + "/" + runFiles[0])
        if resume { return lock }
        if !holdsRun {
            for name in runFiles.dropFirst() {
                try system { () throws(SystemError) in try FileSystem.remove(directory + "/" + name) }
            }
            return lock
        }
        guard replace else {
            lock.release()
            throw TrainError("\(directory) holds another run (its checkpoint or metrics log); continue it with --resume, use another --out, or --force to move it aside")
        }
        var aside = 1
        while FileSystem.exists(directory + ".previous-\(aside)") { aside += 1 }
        let moved = directory + ".previous-\(aside)"
        try system { () throws(SystemError) in try FileSystem.rename(directory, to: moved) }
        lock.release()
        try system { () throws(SystemError) in try FileSystem.makeDirectories(directory) }
        guard let fresh = try system({ () throws(SystemError) in try FileLock.acquire(lockPath) }) else {
            throw TrainError("\(directory) is in use by another leitner run; use another --out")
        }
        reporter.note("--force: the run that was in \(directory) is now in \(moved)")
        return fresh
    }

    /// Restores weights, optimizer state, epoch and step from the checkpoint, and cuts the
    /// metrics log back to the checkpoint's epoch (a crash after an epoch's log line but before
    /// its checkpoint would otherwise leave that epoch twice, or a torn last line).
    func resume() throws(TrainError) {
        guard FileSystem.exists(checkpointPath) else {
            // Stopped before its first checkpoint (a log or state, no checkpoint): nothing to
            // continue, so it starts at epoch 1. With neither, --out names no run: refused.
            let leftovers = Self.runFiles.dropFirst().map { config.outputDirectory + "/" + $0 }.filter { FileSystem.exists($0) }
            guard !leftovers.isEmpty else { throw TrainError("--resume: no checkpoint at \(checkpointPath)") }
            for path in leftovers where writesFiles {
                do { try FileSystem.remove(path) } catch { throw TrainError(error) }
            }
            reporter.note("--resume: \(config.outputDirectory) has no checkpoint yet (stopped during epoch 1): starting at epoch 1")
            return
        }
        try restoreCheckpoint(context: "--resume")
        resumedEpoch = trainer.epoch
        if writesFiles { try trimMetricsLog(toEpoch: trainer.epoch) }
        reporter.note("resumed from \(checkpointPath) after epoch \(trainer.epoch) (step \(trainer.step))")
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
        // Each step trains at least one sample: a step count past epoch x samples, or a negative
        // one, is a damaged or hand-edited checkpoint, not a run to continue.
        guard epoch >= 0 && epoch <= 1 << 31 else {
            throw TrainError("\(context): \(checkpointPath) says epoch \(epochText), which no run reaches")
        }
        guard step >= 0 && step <= epoch * max(trainer.train.count, 1) else {
            throw TrainError("\(context): \(checkpointPath) says step \(stepText) after epoch \(epoch) of \(trainer.train.count) samples, which no run reaches")
        }
        let changes = identity.changes(from: metadata)
        if !changes.isEmpty {
            var list = ""
            for (index, change) in changes.enumerated() { list += (index > 0 ? ", " : "") + change }
            throw TrainError("\(context): \(checkpointPath) belongs to a run with other settings: \(list). Resume with the run's own options, or start a new run in another --out")
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
        if var scaler = trainer.lossScaler {
            // A checkpoint without them (written before they were) starts scaling afresh.
            scaler.scale = Checkpoint.value("loss_scale", in: metadata).flatMap { Float($0) } ?? LossScaler.initialScale
            scaler.goodSteps = Checkpoint.value("loss_scale_good_steps", in: metadata).flatMap { Int($0) } ?? 0
            scaler.skippedSteps = Checkpoint.value("fp16_skipped_steps", in: metadata).flatMap { Int($0) } ?? 0
            guard scaler.scale > 0 && scaler.scale.isFinite && scaler.goodSteps >= 0 else {
                throw TrainError("\(context): \(checkpointPath) holds loss scale \(scaler.scale) after \(scaler.goodSteps) good steps, which no run reaches")
            }
            trainer.lossScaler = scaler
        }
        lastGoodEpoch = epoch
    }

    /// Keeps the complete lines of the metrics log up to `epoch` (replaced atomically).
    func trimMetricsLog(toEpoch epoch: Int) throws(TrainError) {
        guard FileSystem.exists(metricsPath) else { return }
        do throws(SystemError) {
            let bytes = try FileSystem.readAll(metricsPath, limit: 1 << 30)
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
            reporter.note("metrics log: dropped \(dropped) line(s) after epoch \(epoch) (written after the checkpoint, or torn)")
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
        reporter.note("\(fault.description); backoff \(backoffs)/\(NaNAction.maximumBackoffs): reloaded \(checkpointPath) (epoch \(epoch)), learning rate x\(trainer.learningRateScale)")
    }

    func saveCheckpoint(_ metrics: EpochMetrics) throws(TrainError) {
        guard writesFiles else {
            lastGoodEpoch = trainer.epoch
            return
        }
        var metadata: [(String, String)] = [
            ("epoch", "\(trainer.epoch)"), ("step", "\(trainer.step)"), ("seed", "\(config.seed)"),
            ("model_description", config.model.text), ("learning_rate", "\(metrics.learningRate)"),
            ("test_accuracy", "\(metrics.testAccuracy)"),
        ]
        if trainer.learningRateScale != 1 { metadata.append(("learning_rate_scale", "\(trainer.learningRateScale)")) }
        if let scaler = trainer.lossScaler {
            metadata += [("loss_scale", "\(scaler.scale)"), ("loss_scale_good_steps", "\(scaler.goodSteps)"),
                         ("fp16_skipped_steps", "\(scaler.skippedSteps)")]
        }
        metadata += identity.metadata
        metadata += DataFacts(dataset: trainer.train).metadata
        do { try Checkpoint.save(model: trainer.model, optimizer: trainer.optimizer.checkpointState, metadata: metadata, path: checkpointPath) }
        catch { throw TrainError("checkpoint not written: \(error.description)") }
        lastGoodEpoch = trainer.epoch
    }

    /// Runs the remaining epochs with `policy` planning each epoch.
    public func run<Policy: SelectionPolicy>(policy: inout Policy) throws(TrainError) {
        defer {
            lock?.release()
            lock = nil
        }
        reporter.sessionStarting(trainer)
        if policy.wantsFeatures {
            // Each rank sees the features of its own samples only; the stores (and so the plans)
            // would differ between ranks. Gathering them is not built.
            guard trainer.ranks == 1 else {
                throw TrainError("--dih-diversity is not supported across MPI ranks yet (each rank would hold other features and plan differently)")
            }
            guard let tap = trainer.featureTap else {
                throw TrainError("the policy's diversity step needs penultimate features: the model's last layer must be linear on a flat input")
            }
            policy.prepareFeatures(dimension: tap.dimension)
            reporter.note("diversity: penultimate features (\(tap.dimension) wide) kept projected to \(min(tap.dimension, 32)) numbers per sample")
            if resumedEpoch != nil {
                reporter.note("diversity: features are not in the state file; until a sample trains again after --resume its features are zero, so a resumed run differs from an uninterrupted one")
            }
        }
        if let epoch = resumedEpoch, policy.stateStride > 0 {
            do {
                let generation = try stateStore.load(directory: config.outputDirectory, epoch: epoch,
                                                     sampleCount: trainer.train.count, into: &policy)
                reporter.note("selection state restored (epoch \(epoch), \(generation == .current ? "current" : "previous") generation)")
            } catch {
                throw TrainError("--resume: \(error.description)")
            }
        }
        if writesFiles { try reporter.openMetricsLog(metricsPath) }
        if trainer.ranks > 1 {
            reporter.note("data-parallel: \(trainer.ranks) ranks (\(Cluster.libraryVersion ?? "MPI")), global batch \(config.batch) (\(config.batch / trainer.ranks)-\(trainer.localBatch) a rank), gradient allreduce \(Format.bytes(trainer.model.parameterCount * 4)) a step; rank 0 writes \(config.outputDirectory)")
            reporter.note(trainer.model.batchNormExchange != nil
                ? "sync-bn: batch norm over the global batch (one exchange per batch-norm layer in the forward and one in the backward)"
                : "batch norm over each rank's part of the batch (as PyTorch DDP; --sync-bn for the global batch)")
            try trainer.synchronizeWeights()
        } else if config.syncBatchNorm {
            reporter.note("sync-bn: one rank, whose batch is the global batch: batch norm as in any one-process run")
        }
        defer { reporter.closeMetricsLog() }
        let ownsRecorder = recorder == nil
        if recorder == nil { recorder = EnergyMeasurement.startRecorder(config.energy, reporter: reporter) }
        defer { if ownsRecorder { recorder?.stop() } }
        if let recorder { reporter.energySource(recorder.meter) }
        let wallMinusMonotonic = Clock.wallSeconds() - Clock.seconds()
        let started = Clock.seconds()
        try trainer.run(policy: &policy) { (metrics: EpochMetrics, policy: inout Policy) throws(TrainError) in
            var metrics = metrics
            metrics.reentries = policy.lastEpochReentries
            metrics.trainStartUnix = metrics.trainStarted + wallMinusMonotonic
            metrics.trainEndUnix = metrics.trainEnded + wallMinusMonotonic
            if let recorder { EnergyMeasurement.fill(&metrics, recorder: recorder) }
            try reporter.epochMeasured(metrics)
            // State first, then the checkpoint: the state store keeps the previous generation,
            // so a crash between the two still finds the state matching the checkpoint's epoch.
            if policy.stateStride > 0 && writesFiles {
                do throws(SelectError) { try stateStore.save(policy, sampleCount: trainer.train.count, epoch: trainer.epoch, directory: config.outputDirectory) }
                catch { throw TrainError("selection state not written: \(error.description)") }
            }
            try saveCheckpoint(metrics)
            history.append(metrics)
            reporter.epochFinished(metrics, epochs: config.epochs)
            if trainer.ranks > 1 && trainer.gradientSyncs > 0 {
                let perStep = trainer.gradientSyncSeconds / Double(trainer.gradientSyncs)
                let steps = max(1, (metrics.samplesTrained + config.batch - 1) / config.batch)
                reporter.note("  allreduce: \(Format.fixed(perStep * 1000, 3)) ms a step (\(trainer.gradientSyncs) so far), \(Format.fixed(100 * perStep * Double(steps) / max(metrics.wallSeconds, 1e-9), 1))% of this epoch's training time")
                if let exchange = trainer.model.batchNormExchange, exchange.exchanges > 0 {
                    let exchangePerStep = exchange.seconds / Double(trainer.gradientSyncs)
                    reporter.note("  sync-bn exchanges: \(Format.fixed(exchangePerStep * 1000, 3)) ms a step (\(exchange.exchanges) exchanges so far)")
                }
            }
        } faulted: { (fault: NumericFault, policy: inout Policy) throws(TrainError) in
            try handleFault(fault, policy: &policy)
        }
        if let late = recorder?.lateBoundaries, late > 0 {
            reporter.note("energy: the meter answered later than \(Format.fixed(EnergyMeasurement.boundaryWaitSeconds, 1)) s at \(late) epoch end(s); training did not wait; an epoch whose end no reading covers has no energy figure")
        }
        reporter.sessionFinished(self, seconds: Clock.seconds() - started, recorder: recorder)
    }
}

/// Reading back the metrics log (one JSON object per line, "epoch" first).
enum MetricsLog {
    /// The epochs of the log at `path`, one per complete line, in order: epoch 1, 2, ... with
    /// none missing or repeated (a resumed run's log is cut back to its checkpoint, so it is).
    static func read(_ path: String) throws(TrainError) -> [EpochMetrics] {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readAll(path, limit: 1 << 30) } catch { throw TrainError("\(path): \(error.description)") }
        var history: [EpochMetrics] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            guard let metrics = EpochMetrics(jsonLine: String(line)) else {
                throw TrainError("\(path): line \(history.count + 1) is not an epoch record")
            }
            guard metrics.epoch == history.count + 1 else {
                throw TrainError("\(path): epoch \(metrics.epoch) where epoch \(history.count + 1) was expected")
            }
            history.append(metrics)
        }
        return history
    }

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
