import Data
import Kernels
import NN
import Platform

/// The training loop: shuffles, assembles batches into the model's arena, runs forward with
/// per-sample losses, tells the sample hook, back-propagates, updates, evaluates each epoch.
/// Everything is allocated in `init`; an epoch allocates nothing.
public final class Trainer {
    public let config: TrainConfig
    public let model: Model
    public let context: KernelContext
    public let train: Dataset
    public let test: Dataset
    /// The memory plan including optimizer state, for the start-up budget line.
    public let plan: MemoryPlan
    let trainAssembler: BatchAssembler
    let testAssembler: BatchAssembler
    let optimizerArena: Arena
    /// Optimizer state laid out like `model.parameters` (SGD: momentum; AdamW: first then second moments).
    public let optimizerState: UnsafeMutablePointer<Float>
    let order: UnsafeMutablePointer<Int32>
    let testOrder: UnsafeMutablePointer<Int32>

    /// Completed epochs and optimizer steps (restored by `resume`).
    public var epoch = 0
    public var step = 0

    public init(config: TrainConfig, train: Dataset, test: Dataset) throws(TrainError) {
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
        self.train = config.trainLimit > 0 && config.trainLimit < train.count ? train.prefix(config.trainLimit) : train
        self.test = config.testLimit > 0 && config.testLimit < test.count ? test.prefix(config.testLimit) : test
        do {
            context = try KernelContext(threads: config.threads)
        } catch {
            throw TrainError(error)
        }
        var plan: MemoryPlan
        do { plan = try Model.plan(config.model, batch: config.batch, threads: config.threads) }
        catch { throw TrainError(error) }
        let parameterCount = plan.gradients / 4
        plan.optimizerState = Arena.rounded(parameterCount * config.optimizer.statePerParameter * 4)
        do { try plan.check(budgetBytes: config.memoryBudgetBytes) }
        catch { throw TrainError(error.description + " for model \(config.model.name) at batch \(config.batch) (lower --batch or raise --memory-budget-mb)") }
        do { model = try Model(config.model, batch: config.batch, context: context) }
        catch { throw TrainError(error) }
        do {
            optimizerArena = try Arena(name: "optimizer", capacityBytes: max(plan.optimizerState, Arena.alignment))
            optimizerState = try optimizerArena.floats(model.parameterCount * config.optimizer.statePerParameter, label: "optimizer state")
        } catch {
            throw TrainError(error)
        }
        self.plan = plan
        trainAssembler = BatchAssembler(dataset: self.train,
                                        augmentation: Augmentation(padding: config.augment.cropPadding, horizontalFlip: config.augment.flip))
        testAssembler = BatchAssembler(dataset: self.test)
        order = .allocate(capacity: self.train.count)
        testOrder = .allocate(capacity: self.test.count)
        EpochOrder.sequential(count: self.test.count, into: UnsafeMutableBufferPointer(start: testOrder, count: self.test.count))
        model.initialize(seed: config.seed)
    }

    deinit {
        order.deallocate()
        testOrder.deallocate()
    }

    /// The seed of epoch `epoch`'s generator: shuffling and augmentation depend only on
    /// (seed, epoch), so a run resumed at an epoch boundary continues exactly.
    func epochSeed(_ epoch: Int, stream: UInt64) -> UInt64 {
        config.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch) &* 0xD1B5_4A32_D192_ED03 &+ stream
    }

    /// One optimizer update with the learning rate at `progress` epochs.
    public func update(learningRate: Double) {
        step += 1
        switch config.optimizer {
        case let .sgd(momentum, nesterov, weightDecay):
            SGD.step(weights: model.parameters, momentumBuffer: momentum == 0 ? nil : optimizerState, gradients: model.gradients,
                     count: model.parameterCount, learningRate: learningRate, momentum: momentum, dampening: 0,
                     weightDecay: weightDecay, nesterov: nesterov, firstStep: step == 1)
        case let .adamw(beta1, beta2, epsilon, weightDecay):
            AdamW.step(weights: model.parameters, firstMoment: optimizerState,
                       secondMoment: optimizerState + model.parameterCount, gradients: model.gradients,
                       count: model.parameterCount, learningRate: learningRate, beta1: beta1, beta2: beta2,
                       epsilon: epsilon, weightDecay: weightDecay, step: step)
        }
    }

    /// Trains one epoch over `selected` sample indices (nil: all, shuffled) and returns the
    /// training part of the metrics. The hook sees every trained sample's loss and correctness.
    public func trainEpoch<Hook: SampleHook>(hook: inout Hook, progress: inout ProgressDisplay) -> EpochMetrics {
        let schedule = config.learningRateSchedule
        var shuffle = SeededGenerator(seed: epochSeed(epoch, stream: 1))
        var augment = SeededGenerator(seed: epochSeed(epoch, stream: 2))
        let total = train.count
        EpochOrder.shuffled(count: total, generator: &shuffle, into: UnsafeMutableBufferPointer(start: order, count: total))
        var metrics = EpochMetrics()
        metrics.epoch = epoch + 1
        metrics.learningRate = schedule.rate(at: Double(epoch))
        let started = Clock.seconds()
        var lossSum = 0.0
        var correctSum = 0
        var done = 0
        while done < total {
            let batch = min(config.batch, total - done)
            let indices = UnsafeBufferPointer(start: order + done, count: batch)
            trainAssembler.assemble(indices: indices, input: model.input, labels: model.labels, generator: &augment)
            let learningRate = schedule.rate(at: Double(epoch) + Double(done) / Double(total))
            model.forwardBackward(batch: batch)
            hook.observeTrained(indices: indices, losses: model.losses, correct: model.correct, epoch: epoch, learningRate: learningRate)
            for sample in 0..<batch {
                lossSum += Double(model.losses[sample])
                correctSum += Int(model.correct[sample])
            }
            update(learningRate: learningRate)
            done += batch
            progress.update(epoch: epoch + 1, epochs: config.epochs, done: done, total: total, started: started, loss: lossSum / Double(done))
        }
        progress.finish()
        metrics.wallSeconds = Clock.seconds() - started
        metrics.trainLoss = lossSum / Double(total)
        metrics.trainAccuracy = Double(correctSum) / Double(total)
        metrics.samplesTrained = total
        metrics.samplesPerSecond = Double(total) / max(metrics.wallSeconds, 1e-9)
        epoch += 1
        return metrics
    }

    /// Mean loss and accuracy on the test set (eval mode: batch norm uses running statistics).
    public func evaluate() -> (loss: Double, accuracy: Double) {
        var lossSum = 0.0
        var correctSum = 0
        var done = 0
        while done < test.count {
            let batch = min(config.batch, test.count - done)
            testAssembler.assemble(indices: UnsafeBufferPointer(start: testOrder + done, count: batch), input: model.input, labels: model.labels)
            model.forward(batch: batch, training: false)
            model.loss(batch: batch, gradient: false)
            for sample in 0..<batch {
                lossSum += Double(model.losses[sample])
                correctSum += Int(model.correct[sample])
            }
            done += batch
        }
        return (lossSum / Double(test.count), Double(correctSum) / Double(test.count))
    }

    /// Runs the remaining epochs; `epochDone` receives each epoch's full metrics (log, checkpoint).
    public func run<Hook: SampleHook>(hook: inout Hook, epochDone: (EpochMetrics) throws(TrainError) -> Void) throws(TrainError) {
        var progress = ProgressDisplay(enabled: config.progress)
        let last = config.stopAfterEpoch > 0 ? min(config.stopAfterEpoch, config.epochs) : config.epochs
        while epoch < last {
            var metrics = trainEpoch(hook: &hook, progress: &progress)
            let evaluated = evaluate()
            metrics.testLoss = evaluated.loss
            metrics.testAccuracy = evaluated.accuracy
            try epochDone(metrics)
        }
    }
}
