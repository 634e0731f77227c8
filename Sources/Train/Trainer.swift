import Data
import Kernels
import NN
import Platform
import Select

/// The training loop: shuffles, assembles batches into the model's arena, runs forward with
/// per-sample losses, tells the sample hook, back-propagates, updates, evaluates each epoch.
/// Everything is allocated in `init`; an epoch allocates nothing.
public final class Trainer {
    public let config: TrainConfig
    public let model: Model
    /// The node whose output feeds the head (a flat [N, F] tensor) and F: the penultimate
    /// features a policy may ask for (`SelectionPolicy.wantsFeatures`); nil when the head
    /// is not a linear layer on a flat node.
    public var featureTap: (node: Int, dimension: Int)? {
        guard let head = model.description.layers.last, head.kind == .linear, head.inputs[0] >= 0 else { return nil }
        let shape = model.shapes[head.inputs[0]]
        return shape.isFlat ? (head.inputs[0], shape.channels) : nil
    }
    public let context: KernelContext
    public let train: Dataset
    public let test: Dataset
    /// The memory plan of every arena the run holds (model, optimizer, indices), for the
    /// start-up budget line.
    public let plan: MemoryPlan
    let trainAssembler: BatchAssembler
    let testAssembler: BatchAssembler
    /// The optimizer, its state and step count.
    public let optimizer: Optimizer
    /// Holds the per-sample buffers below (`plan.indices` bytes, see `indexBytes`).
    let indexArena: Arena
    /// The epoch's shuffled permutation, the trained samples in order, the scored ones.
    let shuffled: UnsafeMutablePointer<Int32>
    let order: UnsafeMutablePointer<Int32>
    let scoreOrder: UnsafeMutablePointer<Int32>
    let testOrder: UnsafeMutablePointer<Int32>
    let selectedFlags: UnsafeMutablePointer<UInt8>
    /// Selective Backprop's picks, copied out of the scored batch (already augmented, in the
    /// model's input) until a full training batch is gathered: inputs and labels of up to
    /// 2 x batch - 1 samples (a scored batch's picks are appended before a full batch is cut).
    let stagingArena: Arena
    let stagedInput: UnsafeMutablePointer<Float>
    let stagedLabels: UnsafeMutablePointer<Int32>
    /// The policy's plan, reused every epoch (its buffers are in `indexArena`).
    let epochPlan: EpochPlan
    /// The ranks of a data-parallel run (`Cluster`; 1 and 0 outside mpirun). Every rank draws
    /// the same global order and takes its part of each global batch (`Cluster.part`).
    public let ranks: Int
    public let rank: Int
    /// The model's batch: `config.batch`, or with several ranks the largest part of it.
    public let localBatch: Int
    /// Data-parallel only (empty with one rank): this rank's samples of the epoch in order (what
    /// a streamed pack prefetches), its observations (loss, correct) in that order, everyone's
    /// after the epoch's gather, the same by position in the global order, bytes per rank and
    /// their offsets, and the per-step sums (loss, correct, fault, stop).
    let rankOrder: UnsafeMutablePointer<Int32>
    let ownObservations: UnsafeMutablePointer<Float>
    let allObservations: UnsafeMutablePointer<Float>
    let positionLosses: UnsafeMutablePointer<Float>
    let positionCorrect: UnsafeMutablePointer<UInt8>
    let rankBytes: UnsafeMutablePointer<Int32>
    let rankOffsets: UnsafeMutablePointer<Int32>
    let stepSums: UnsafeMutablePointer<Double>
    /// `--exact-parts`: pieces of each global batch (0 = off), and the fixed-point gradient sum.
    public let parts: Int
    let fixedGradients: UnsafeMutablePointer<Int64>
    /// Observations this rank made in the current epoch.
    var ownObserved = 0
    /// Set when any rank asked to stop (signal, read error): all ranks stop at the same step.
    var clusterStop = false
    /// The gradient allreduce: seconds and calls since the start (data-parallel only).
    public var gradientSyncSeconds = 0.0
    public var gradientSyncs = 0
    /// Training samples held out for validation (early stopping), fixed for the run.
    let validationIndices: UnsafeMutablePointer<Int32>
    public let validationCount: Int

    /// Completed epochs (restored by `resume`).
    public var epoch = 0
    /// Optimizer steps taken (restored by `resume`).
    public var step: Int {
        get { optimizer.steps }
        set { optimizer.steps = newValue }
    }
    /// Multiplies the schedule's learning rate; `--on-nan backoff` halves it (kept in checkpoints).
    public var learningRateScale = 1.0
    /// The first non-finite loss or weight of the current epoch; the epoch stops at it.
    public var numericFault: NumericFault? = nil
    /// The first error reading the training or test data (a streamed pack), or nil: the
    /// epoch stops at it and `run` throws it.
    public var dataFailure: DataError? { trainAssembler.failure ?? testAssembler.failure }
    /// The epoch stops at a numeric fault or a data failure.
    /// The epoch stops at the next step: a numeric fault, a read error, or SIGINT/SIGTERM (one
    /// load of a flag per step; the step in flight finishes).
    var halted: Bool { numericFault != nil || trainAssembler.failure != nil || stopRequested }
    /// SIGINT/SIGTERM; with several ranks, on any rank (agreed at a step, see `clusterStop`).
    var stopRequested: Bool { ranks > 1 ? clusterStop : StopRequest.requested }
    /// The step whose loss is replaced by NaN (LEITNER_INJECT_NAN_STEP, tests only; 0 = none).
    public var injectedNaNStep = FaultInjection.nanStep
    /// fp16 only: the optimizer step (1-based) whose first weight gradient is replaced by
    /// infinity after the backward, once (tests of the loss scaling; 0 = none).
    public var injectedInfiniteGradientStep = 0
    /// The dynamic loss scaling of an fp16 run (restored by `resume`); nil under fp32.
    public var lossScaler: LossScaler?

    public init(config: TrainConfig, train: Dataset, test: Dataset, validationFraction: Double = 0) throws(TrainError) {
        let input = config.model.input
        for (name, set) in [("training", train), ("test", test)] {
            guard set.channels == input.channels, set.height == input.height, set.width == input.width else {
                throw TrainError("the \(name) set's samples are \(set.channels)x\(set.height)x\(set.width) but model \(config.model.name) takes \(input.channels)x\(input.height)x\(input.width)")
            }
            guard set.classCount <= config.model.classes else {
                throw TrainError("the \(name) set has \(set.classCount) classes but model \(config.model.name) has \(config.model.classes) outputs")
            }
            guard set.count >= 1 else { throw TrainError("the \(name) set is empty") }
        }
        self.config = config
        ranks = Cluster.size
        rank = Cluster.rank
        parts = config.exactParts
        guard parts == 0 || (parts % ranks == 0 && parts <= config.batch && parts <= 128) else {
            throw TrainError("--exact-parts \(parts) must be a multiple of the number of ranks (\(ranks)), at most --batch (\(config.batch)) and at most 128")
        }
        if config.precision == .fp16 {
            // Not built: the rounding of an allreduced gradient and of exchanged statistics, and
            // one loss scale agreed by every rank (a skip on one rank must skip on all).
            guard ranks == 1 else {
                throw TrainError("--precision fp16 is not supported across MPI ranks yet (one loss scale and skip decision for all ranks is not built); run it on one process")
            }
            guard !config.syncBatchNorm && parts == 0 else {
                throw TrainError("--precision fp16 does not combine with --sync-bn or --exact-parts yet")
            }
        }
        lossScaler = config.precision == .fp16 ? LossScaler() : nil
        if config.syncBatchNorm {
            guard config.model.layers.contains(where: { $0.kind == .batchNorm }) else {
                throw TrainError("--sync-bn: model \(config.model.name) has no batch-norm layer")
            }
            // A rank computes its --exact-parts pieces one after another, so a piece's forward
            // cannot see the statistics of the pieces that follow it.
            guard parts == 0 else {
                throw TrainError("--sync-bn and --exact-parts do not combine: the exact parts are computed one after another, each with its own batch-norm statistics")
            }
        }
        let pieces = parts > 0 ? parts : ranks
        localBatch = pieces > 1 ? (config.batch + pieces - 1) / pieces : config.batch
        self.train = config.trainLimit > 0 && config.trainLimit < train.count ? train.prefix(config.trainLimit) : train
        self.test = config.testLimit > 0 && config.testLimit < test.count ? test.prefix(config.testLimit) : test
        do {
            context = try KernelContext(threads: config.threads, wideKernels: config.wideKernels)
        } catch {
            throw TrainError(error)
        }
        let count = self.train.count
        validationCount = min(count - 1, Int((validationFraction * Double(count)).rounded(.down)))
        var plan: MemoryPlan
        let trainability: Trainability
        do {
            trainability = try Trainability(config.model, mode: config.update, trainHead: config.trainHead)
            plan = try Model.plan(config.model, batch: localBatch, threads: config.threads,
                                  optimizerStatePerParameter: config.optimizer.statePerParameter, trainability: trainability,
                                  precision: config.precision, wide: context.wideKernels)
        } catch { throw TrainError(error) }
        if config.syncBatchNorm && trainability.frozenStatistics {
            throw TrainError("--sync-bn: batch-norm statistics are frozen with --update \(config.update.name) (they are not taken from batches)")
        }
        plan.indices = Trainer.indexBytes(trainCount: count, testCount: self.test.count, validationCount: validationCount,
                                          batch: config.batch)
            + Trainer.clusterBytes(trainCount: count, ranks: ranks, parts: parts, gradientBytes: plan.gradients)
            + (config.syncBatchNorm && ranks > 1 ? BatchNormExchange.bytes(ranks: ranks, description: config.model) : 0)
        let sampleFloats = input.channels * input.height * input.width
        plan.staging = Trainer.stagingBytes(batch: config.batch, sampleFloats: sampleFloats)
        do { try plan.check(budgetBytes: config.memoryBudgetBytes) }
        catch { throw TrainError(error.description + " for model \(config.model.name) at batch \(config.batch) (lower --batch or raise --memory-budget-mb)") }
        do { model = try Model(config.model, batch: localBatch, context: context, trainability: trainability, precision: config.precision) }
        catch { throw TrainError(error) }
        do {
            optimizer = try Optimizer(config.optimizer, model: model, plan: plan)
            indexArena = try Arena(name: "indices", capacityBytes: plan.indices)
            shuffled = try indexArena.carve(Int32.self, count: count, label: "shuffled order")
            order = try indexArena.carve(Int32.self, count: count, label: "training order")
            scoreOrder = try indexArena.carve(Int32.self, count: count, label: "scoring order")
            testOrder = try indexArena.carve(Int32.self, count: self.test.count, label: "test order")
            validationIndices = try indexArena.carve(Int32.self, count: validationCount, label: "validation split")
            selectedFlags = try indexArena.carve(UInt8.self, count: config.batch, label: "selected flags")
            let actions = try indexArena.carve(UInt8.self, count: count, label: "plan actions")
            let weights = try indexArena.floats(count, label: "plan weights")
            epochPlan = EpochPlan(sampleCount: count, actions: actions, weights: weights)
            let parallel = ranks > 1 || parts > 0 ? count : 0
            rankOrder = try indexArena.carve(Int32.self, count: parallel, label: "rank order")
            ownObservations = try indexArena.floats(2 * parallel, label: "own observations")
            allObservations = try indexArena.floats(2 * parallel, label: "gathered observations")
            positionLosses = try indexArena.floats(parallel, label: "losses by position")
            positionCorrect = try indexArena.carve(UInt8.self, count: parallel, label: "correct by position")
            let rankSlots = parallel > 0 ? ranks : 0
            rankBytes = try indexArena.carve(Int32.self, count: rankSlots, label: "bytes per rank")
            rankOffsets = try indexArena.carve(Int32.self, count: rankSlots, label: "offsets per rank")
            stepSums = try indexArena.carve(Double.self, count: parallel > 0 ? 4 : 0, label: "step sums")
            fixedGradients = try indexArena.carve(Int64.self, count: parts > 0 ? model.parameterCount : 0, label: "fixed-point gradients")
            if config.syncBatchNorm && ranks > 1 {
                model.batchNormExchange = try BatchNormExchange(ranks: ranks, description: config.model, arena: indexArena)
            }
        } catch {
            throw TrainError(error)
        }
        do {
            stagingArena = try Arena(name: "staging", capacityBytes: plan.staging)
            stagedInput = try stagingArena.floats(2 * config.batch * sampleFloats, label: "staged inputs")
            stagedLabels = try stagingArena.carve(Int32.self, count: 2 * config.batch, label: "staged labels")
        } catch {
            throw TrainError(error)
        }
        self.plan = plan
        trainAssembler = BatchAssembler(dataset: self.train,
                                        augmentation: Augmentation(padding: config.augment.cropPadding, horizontalFlip: config.augment.flip))
        testAssembler = BatchAssembler(dataset: self.test)
        if validationCount > 0 {
            // A fixed random split from the seed: the last `validationCount` of one permutation.
            var splitter = SeededGenerator(seed: config.seed &+ 0x5EED_5A17)
            EpochOrder.shuffled(count: count, generator: &splitter, into: UnsafeMutableBufferPointer(start: shuffled, count: count))
            for position in 0..<validationCount { validationIndices[position] = shuffled[count - validationCount + position] }
        }
        EpochOrder.sequential(count: self.test.count, into: UnsafeMutableBufferPointer(start: testOrder, count: self.test.count))
        model.initialize(seed: config.seed)
        if let path = config.pretrained, !config.resume {
            do { try Checkpoint.loadPretrained(path: path, into: model, reinitialized: config.replacedHead) }
            catch { throw TrainError("--from: \(error.description)") }
        }
    }

    /// Bytes of the index arena: three orders over the training set, the test order, the
    /// validation split, one batch of selection flags, and the epoch plan (an action byte and a
    /// Float loss weight per training sample); each carve rounded to the arena alignment.
    public static func indexBytes(trainCount: Int, testCount: Int, validationCount: Int, batch: Int) -> Int {
        let index = MemoryLayout<Int32>.stride
        return 3 * Arena.rounded(trainCount * index) + Arena.rounded(testCount * index)
            + Arena.rounded(validationCount * index) + Arena.rounded(batch * MemoryLayout<UInt8>.stride)
            + Arena.rounded(trainCount * MemoryLayout<UInt8>.stride) + Arena.rounded(trainCount * MemoryLayout<Float>.stride)
    }

    /// Bytes of the data-parallel buffers in the index arena (`rankOrder` and the rest; only
    /// the per-rank counts and step sums with one rank).
    public static func clusterBytes(trainCount: Int, ranks: Int, parts: Int = 0, gradientBytes: Int = 0) -> Int {
        guard ranks > 1 || parts > 0 else { return 0 }
        let parallel = trainCount
        return Arena.rounded(parallel * 4) + 2 * Arena.rounded(2 * parallel * 4) + Arena.rounded(parallel * 4)
            + Arena.rounded(parallel) + 2 * Arena.rounded(ranks * 4) + Arena.rounded(4 * 8)
            + (parts > 0 ? Arena.rounded(2 * gradientBytes) : 0)
    }

    /// Bytes of the Selective Backprop staging area: two batches of inputs and labels.
    public static func stagingBytes(batch: Int, sampleFloats: Int) -> Int {
        Arena.rounded(2 * batch * sampleFloats * MemoryLayout<Float>.stride) + Arena.rounded(2 * batch * MemoryLayout<Int32>.stride)
    }

    /// Every arena the run holds; their capacities add up to `plan.totalBytes`.
    public var arenas: [Arena] { model.arenas + [optimizer.arena, indexArena, stagingArena] }

    /// The seed of epoch `epoch`'s generator: shuffling and augmentation depend only on
    /// (seed, epoch), so a run resumed at an epoch boundary continues exactly.
    func epochSeed(_ epoch: Int, stream: UInt64) -> UInt64 {
        config.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch) &* 0xD1B5_4A32_D192_ED03 &+ stream
    }

    /// The seed of the dropout masks of optimizer step `step` (0-based, counted over the run).
    func dropoutSeed(step: Int) -> UInt64 {
        config.seed &* 0xD6E8_FEB8_6659_FD93 &+ UInt64(step) &* 0x9E37_79B9_7F4A_7C15 &+ 0xD50F
    }

    /// Trains one epoch as `policy` plans it: trained samples in shuffled, compact batches
    /// (only trained samples in a trained batch), then one forward-only pass over the samples
    /// planned `score`. A policy that selects within batches (Selective Backprop) gets every
    /// batch forwarded without gradients first and its selected samples gathered into compact
    /// training batches. The learning rate follows the fraction of the epoch's work done.
    public func trainEpoch<Policy: SelectionPolicy>(policy: inout Policy, progress: inout ProgressDisplay) -> EpochMetrics {
        let schedule = config.learningRateSchedule
        var shuffle = SeededGenerator(seed: epochSeed(epoch, stream: 1))
        var augment = SeededGenerator(seed: epochSeed(epoch, stream: 2))
        var choose = SeededGenerator(seed: epochSeed(epoch, stream: 3))
        var metrics = EpochMetrics()
        metrics.epoch = epoch + 1
        metrics.learningRate = schedule.rate(at: Double(epoch)) * learningRateScale
        numericFault = nil
        policy.planEpoch(EpochContext(epoch: epoch, epochs: config.epochs, learningRate: metrics.learningRate),
                         plan: epochPlan, generator: &choose)
        // Validation samples are never trained or scored, whatever the plan says.
        for position in 0..<validationCount { epochPlan.actions[Int(validationIndices[position])] = SampleAction.skip.rawValue }
        let population = train.count - validationCount
        trainAssembler.epochOrder(count: train.count, generator: &shuffle, into: UnsafeMutableBufferPointer(start: shuffled, count: train.count))
        var trainCount = 0, scoreCount = 0
        for position in 0..<train.count {
            let index = shuffled[position]
            switch epochPlan.actions[Int(index)] {
            case SampleAction.train.rawValue: order[trainCount] = index; trainCount += 1
            case SampleAction.score.rawValue: scoreOrder[scoreCount] = index; scoreCount += 1
            default: break
            }
        }
        let started = Clock.seconds()
        var tally = Tally()
        if ranks > 1 || parts > 0 {
            trainEpochInParts(policy: &policy, trainCount: trainCount, scoreCount: scoreCount, tally: &tally,
                              augment: &augment, progress: &progress, started: started)
        } else if policy.selectsWithinBatches && scoreCount > 0 {
            trainAssembler.beginPass(UnsafeBufferPointer(start: scoreOrder, count: scoreCount))
            trainSelectedWithinBatches(policy: &policy, candidates: scoreCount, tally: &tally, augment: &augment,
                                       choose: &choose, progress: &progress, started: started)
        } else {
            trainAssembler.beginPass(UnsafeBufferPointer(start: order, count: trainCount))
            var done = 0
            while done < trainCount && !halted {
                let batch = min(config.batch, trainCount - done)
                let learningRate = schedule.rate(at: Double(epoch) + Double(done) / Double(trainCount)) * learningRateScale
                trainBatch(UnsafeBufferPointer(start: order + done, count: batch), policy: &policy,
                           learningRate: learningRate, tally: &tally, augment: &augment)
                done += batch
                progress.update(epoch: epoch + 1, epochs: config.epochs, done: done, total: trainCount + scoreCount,
                                started: started, loss: tally.lossSum / Double(max(tally.trained, 1)))
            }
            // Forward-only pass for the samples the policy wants scored (e.g. IES re-entry checks):
            // eval mode, no gradients, the same augmentation as training.
            trainAssembler.beginPass(UnsafeBufferPointer(start: scoreOrder, count: scoreCount))
            var scored = 0
            while scored < scoreCount && !halted {
                let batch = min(config.batch, scoreCount - scored)
                let indices = UnsafeBufferPointer(start: scoreOrder + scored, count: batch)
                scoreBatch(indices, augment: &augment)
                policy.observeScored(indices: indices, losses: model.losses, correct: model.correct, epoch: epoch)
                tally.scored += batch
                scored += batch
                progress.update(epoch: epoch + 1, epochs: config.epochs, done: trainCount + scored, total: trainCount + scoreCount,
                                started: started, loss: tally.lossSum / Double(max(tally.trained, 1)))
            }
        }
        progress.finish()
        metrics.trainEnded = Clock.seconds()
        metrics.trainStarted = started
        metrics.wallSeconds = metrics.trainEnded - started
        metrics.trainLoss = tally.trained > 0 ? tally.lossSum / Double(tally.trained) : .nan
        metrics.trainAccuracy = tally.trained > 0 ? Double(tally.correct) / Double(tally.trained) : .nan
        metrics.samplesTrained = tally.trained
        metrics.population = population
        metrics.samplesScored = tally.scored
        // Skipped = forwarded neither with nor without gradients. Under Selective Backprop
        // every trained sample was scored first, so it is counted once.
        let forwarded = policy.selectsWithinBatches && tally.scored > 0 ? tally.scored : tally.trained + tally.scored
        metrics.samplesSkipped = population - forwarded
        metrics.samplesPerSecond = Double(tally.trained) / max(metrics.wallSeconds, 1e-9)
        let accounting = EpochAccounting(epoch: epoch, sampleCount: population, trained: tally.trained,
                                         scored: tally.scored, skipped: metrics.samplesSkipped)
        metrics.backpropSaved = accounting.backpropSaved
        metrics.computeSaved = accounting.computeSaved
        if let lossScaler {
            metrics.fp16SkippedSteps = tally.skippedSteps
            metrics.lossScale = Double(lossScaler.scale)
        }
        epoch += 1
        return metrics
    }

    /// Running sums of one epoch.
    struct Tally {
        var trained = 0
        var scored = 0
        var correct = 0
        var lossSum = 0.0
        /// fp16: steps whose update was skipped for a non-finite gradient.
        var skippedSteps = 0
    }

    /// Assembles samples `indices` (augmented) into the model's input, then trains them.
    func trainBatch<Policy: SelectionPolicy>(_ indices: UnsafeBufferPointer<Int32>, policy: inout Policy, learningRate: Double,
                                             tally: inout Tally, augment: inout SeededGenerator) {
        if numericFault != nil { return }
        trainAssembler.assemble(indices: indices, input: model.input, labels: model.labels, generator: &augment)
        trainAssembled(indices, policy: &policy, learningRate: learningRate, tally: &tally)
    }

    /// Forward with gradients on the batch already in the model's input, per-sample loss to
    /// the policy, backward, update.
    func trainAssembled<Policy: SelectionPolicy>(_ indices: UnsafeBufferPointer<Int32>, policy: inout Policy, learningRate: Double,
                                                 tally: inout Tally) {
        if numericFault != nil { return }
        let batch = indices.count
        for slot in 0..<batch { model.sampleWeights[slot] = epochPlan.weights[Int(indices[slot])] }
        // Dropout masks from (seed, optimizer step): the step is in the checkpoint, so a resumed
        // run draws the masks the uninterrupted one drew.
        model.dropoutSeed = dropoutSeed(step: step)
        if let lossScaler { model.lossScale = lossScaler.scale }
        if policy.wantsFeatures, let tap = featureTap {
            // DIHCL's diversity reads the head's input rows ([N, F], intact between the forward and
            // the backward): the policy projects them into its own store; no allocation.
            let rows = model.output(ofNode: tap.node)
            model.forwardBackward(batch: batch) {
                policy.observeFeatures(indices: indices, rows: rows, dimension: tap.dimension)
            }
        } else {
            model.forwardBackward(batch: batch)
        }
        if step + 1 == injectedNaNStep {
            model.losses[0] = .nan
            injectedNaNStep = 0
        }
        // The per-sample losses are computed anyway: a non-finite one stops the epoch before
        // the update spreads it into the weights.
        for slot in 0..<batch where !model.losses[slot].isFinite {
            numericFault = NumericFault(epoch: epoch + 1, step: step + 1, what: "loss of sample \(indices[slot]) is \(model.losses[slot])")
            return
        }
        policy.observeTrained(indices: indices, losses: model.losses, correct: model.correct, epoch: epoch, learningRate: learningRate)
        for slot in 0..<batch {
            tally.lossSum += Double(model.losses[slot])
            tally.correct += Int(model.correct[slot])
        }
        tally.trained += batch
        if var scaler = lossScaler {
            // Dynamic loss scaling: the weight gradients back to the loss's scale in fp32, and a
            // step with an infinity or NaN among them updates nothing (the master weights and
            // the optimizer state stay as they were; the step counter does not advance).
            if step + 1 == injectedInfiniteGradientStep {
                model.gradients[0] = .infinity
                injectedInfiniteGradientStep = 0
            }
            let finite = model.unscaleGradients()
            scaler.update(finite: finite)
            lossScaler = scaler
            if !finite {
                tally.skippedSteps += 1
                return
            }
        }
        optimizer.step(learningRate: learningRate)
    }

    /// Forward only, eval mode, per-sample losses left in `model.losses`.
    func scoreBatch(_ indices: UnsafeBufferPointer<Int32>, augment: inout SeededGenerator) {
        trainAssembler.assemble(indices: indices, input: model.input, labels: model.labels, generator: &augment)
        model.forward(batch: indices.count, training: false)
        model.loss(batch: indices.count, gradient: false)
    }

    /// Selective Backprop: forward each candidate batch without gradients, let the policy pick,
    /// gather the picks into compact batches of `config.batch` and train those. The picks are
    /// the very inputs that were scored (augmentation included): copied out of the scored batch
    /// into the staging area, never assembled again. The copies are the design: a scored batch
    /// and the training batch it feeds are different views of the model's one input buffer.
    func trainSelectedWithinBatches<Policy: SelectionPolicy>(
        policy: inout Policy, candidates: Int, tally: inout Tally, augment: inout SeededGenerator,
        choose: inout SeededGenerator, progress: inout ProgressDisplay, started: Double
    ) {
        let schedule = config.learningRateSchedule
        let sampleFloats = model.description.input.channels * model.description.input.height * model.description.input.width
        var pending = 0
        var scored = 0
        while scored < candidates && !halted {
            let batch = min(config.batch, candidates - scored)
            let indices = UnsafeBufferPointer(start: scoreOrder + scored, count: batch)
            scoreBatch(indices, augment: &augment)
            policy.observeScored(indices: indices, losses: model.losses, correct: model.correct, epoch: epoch)
            policy.selectWithinBatch(indices: indices, losses: model.losses, selected: selectedFlags, generator: &choose)
            tally.scored += batch
            scored += batch
            for slot in 0..<batch where selectedFlags[slot] != 0 {
                order[pending] = indices[slot]
                (stagedInput + pending * sampleFloats).update(from: model.input + slot * sampleFloats, count: sampleFloats)
                stagedLabels[pending] = model.labels[slot]
                pending += 1
            }
            if pending >= config.batch {
                let learningRate = schedule.rate(at: Double(epoch) + Double(scored) / Double(candidates)) * learningRateScale
                trainStaged(count: config.batch, sampleFloats: sampleFloats, policy: &policy, learningRate: learningRate, tally: &tally)
                // The rest (fewer than a batch) moves to the front of the staging area.
                pending -= config.batch
                order.update(from: order + config.batch, count: pending)
                stagedInput.update(from: stagedInput + config.batch * sampleFloats, count: pending * sampleFloats)
                stagedLabels.update(from: stagedLabels + config.batch, count: pending)
            }
            progress.update(epoch: epoch + 1, epochs: config.epochs, done: scored, total: candidates,
                            started: started, loss: tally.lossSum / Double(max(tally.trained, 1)))
        }
        if pending > 0 && numericFault == nil {
            trainStaged(count: pending, sampleFloats: sampleFloats, policy: &policy,
                        learningRate: schedule.rate(at: Double(epoch + 1) - 1e-9) * learningRateScale, tally: &tally)
        }
    }

    /// Trains the first `count` staged samples (indices in `order`).
    func trainStaged<Policy: SelectionPolicy>(count: Int, sampleFloats: Int, policy: inout Policy, learningRate: Double, tally: inout Tally) {
        model.input.update(from: stagedInput, count: count * sampleFloats)
        model.labels.update(from: stagedLabels, count: count)
        trainAssembled(UnsafeBufferPointer(start: order, count: count), policy: &policy, learningRate: learningRate, tally: &tally)
    }

    /// Mean loss and accuracy on the test set (eval mode: batch norm uses running statistics).
    public func evaluate() -> (loss: Double, accuracy: Double) {
        measure(testAssembler, indices: testOrder, count: test.count)
    }

    /// Accuracy on the held-out validation split (early stopping), eval mode, no augmentation.
    public func validate() -> Double? {
        guard validationCount > 0 else { return nil }
        return measure(trainAssembler, indices: validationIndices, count: validationCount).accuracy
    }

    /// Mean loss and accuracy of `count` samples, forward only, eval mode, never augmented.
    /// With several ranks each measures its part of the samples and the sums are added up.
    func measure(_ assembler: BatchAssembler, indices: UnsafePointer<Int32>, count: Int) -> (loss: Double, accuracy: Double) {
        var lossSum = 0.0
        var correctSum = 0
        let part = Cluster.part(of: count)
        assembler.beginPass(UnsafeBufferPointer(start: indices + part.lowerBound, count: part.count))
        var done = part.lowerBound
        while done < part.upperBound {
            let batch = min(localBatch, part.upperBound - done)
            assembler.assemble(indices: UnsafeBufferPointer(start: indices + done, count: batch), input: model.input, labels: model.labels)
            model.forward(batch: batch, training: false)
            model.loss(batch: batch, gradient: false)
            for sample in 0..<batch {
                lossSum += Double(model.losses[sample])
                correctSum += Int(model.correct[sample])
            }
            done += batch
        }
        if ranks > 1 {
            stepSums[0] = lossSum
            stepSums[1] = Double(correctSum)
            Cluster.sum(stepSums, count: 2)
            lossSum = stepSums[0]
            correctSum = Int(stepSums[1])
        }
        return (lossSum / Double(count), Double(correctSum) / Double(count))
    }

    /// The first non-finite value among the weights (parameters and batch-norm statistics),
    /// as a NumericFault of the epoch just finished; checked once per epoch, before the
    /// checkpoint, so a checkpoint never holds a NaN. One pass over the parameters.
    func checkWeights() -> NumericFault? {
        for tensor in model.tensors() {
            for index in 0..<tensor.count where !tensor.pointer[index].isFinite {
                return NumericFault(epoch: epoch, step: step, what: "weight \(tensor.name)[\(index)] is \(tensor.pointer[index])")
            }
        }
        return nil
    }

    /// Runs the remaining epochs; `epochDone` receives each epoch's full metrics (log, state,
    /// checkpoint). Stops early when the policy says so (early stopping). A non-finite loss
    /// or weight ends the epoch unfinished and `faulted` decides: true continues (after it
    /// restored a good state), false returns.
    public func run<Policy: SelectionPolicy>(policy: inout Policy, epochDone: (EpochMetrics, inout Policy) throws(TrainError) -> Void,
                                             faulted: (NumericFault, inout Policy) throws(TrainError) -> Void = { (fault, _) throws(TrainError) in throw TrainError(fault.description) }) throws(TrainError) {
        var progress = ProgressDisplay(enabled: config.progress)
        let last = config.stopAfterEpoch > 0 ? min(config.stopAfterEpoch, config.epochs) : config.epochs
        while epoch < last {
            var metrics = trainEpoch(policy: &policy, progress: &progress)
            if let failure = dataFailure { throw TrainError(failure) }
            if stopRequested {
                // The epoch was cut short: nothing of it is kept, the last checkpoint stands.
                // (trainEpoch has counted the cut epoch already.)
                var error = TrainError("stopped by \(StopRequest.signalName) during epoch \(epoch) of \(config.epochs); \(config.outputDirectory) holds the run as of epoch \(epoch - 1)")
                error.interrupted = true
                throw error
            }
            if numericFault == nil { numericFault = checkWeights() }
            if ranks > 1 && numericFault == nil { try synchronizeWeights() }
            if let fault = numericFault {
                try faulted(fault, &policy)
                continue
            }
            let evaluated = evaluate()
            metrics.testLoss = evaluated.loss
            metrics.testAccuracy = evaluated.accuracy
            let validation = validate()
            metrics.validationAccuracy = validation ?? .nan
            if let failure = dataFailure { throw TrainError(failure) }
            let stop = policy.endEpoch(epoch: epoch - 1, validationAccuracy: validation)
            metrics.stoppedEarly = stop
            try epochDone(metrics, &policy)
            if stop { break }
        }
    }
}

/// A NaN or infinity in the loss or the weights: where training stopped, and what was bad.
public struct NumericFault: CustomStringConvertible {
    /// 1-based epoch and optimizer step.
    public let epoch: Int
    public let step: Int
    public let what: String
    public var description: String { "non-finite value in epoch \(epoch), step \(step): \(what)" }
}
