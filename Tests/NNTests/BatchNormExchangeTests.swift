import AllocCounting
import Testing
import Kernels
import NN
import Platform

/// The model's `--sync-bn` path (`BatchNormExchange`) in one process: with one rank the exchange
/// copies (allgather) or leaves alone (allreduce), so the path must reproduce the plain batch
/// norm bit for bit, and a step must allocate nothing. The K-rank arithmetic is checked in
/// KernelsTests/BatchNormSynchronizedTests and under mpirun in TrainTests/MPITrainingTests.
@Suite(.serialized) struct BatchNormExchangeTests {
    static func exchangeModel(_ description: ModelDescription, batch: Int, context: KernelContext) throws -> (Model, Arena) {
        let arena = try Arena(name: "exchange", capacityBytes: BatchNormExchange.bytes(ranks: 1, description: description))
        let model = try Model(description, batch: batch, context: context)
        let exchange = try BatchNormExchange(ranks: 1, description: description, arena: arena)
        exchange.rankSamples[0] = batch
        model.batchNormExchange = exchange
        return (model, arena)
    }

    @Test(arguments: ["small", "resnet8"])
    func oneRankExchangeEqualsPlainBatchNorm(name: String) throws {
        let description = name == "small" ? smallModel() : try ModelZoo.description(named: name)
        let context = try KernelContext(threads: 2)
        let batch = 6
        let plain = try Model(description, batch: batch, context: context)
        let (synced, arena) = try Self.exchangeModel(description, batch: batch, context: context)
        defer { withExtendedLifetime(arena) {} }
        for model in [plain, synced] {
            model.initialize(seed: 3)
            fillBatch(model, batch: batch, seed: 4)
        }
        for step in 0..<3 {
            for model in [plain, synced] {
                model.forwardBackward(batch: batch)
                for index in 0..<model.parameterCount { model.parameters[index] -= 0.05 * model.gradients[index] }
            }
            for sample in 0..<batch {
                #expect(plain.losses[sample].bitPattern == synced.losses[sample].bitPattern, "\(name) step \(step): loss of sample \(sample)")
            }
            let gradients = (0..<plain.parameterCount).filter { plain.gradients[$0].bitPattern != synced.gradients[$0].bitPattern }.count
            let buffers = (0..<plain.bufferCount).filter { plain.buffers[$0].bitPattern != synced.buffers[$0].bitPattern }.count
            #expect(gradients == 0 && buffers == 0, "\(name) step \(step): \(gradients) gradients and \(buffers) running statistics differ")
        }
        #expect(synced.batchNormExchange!.exchanges == 3 * 2 * description.layers.filter { $0.kind == .batchNorm }.count)
    }

    /// 100 steps through the exchange path make no allocator call (one and two threads).
    @Test(arguments: [1, 2])
    func exchangeStepPerformsNoHeapAllocation(threads: Int) throws {
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let context = try KernelContext(threads: threads)
        let batch = 8
        let (model, arena) = try Self.exchangeModel(smallModel(), batch: batch, context: context)
        defer { withExtendedLifetime(arena) {} }
        model.initialize(seed: 5)
        fillBatch(model, batch: batch, seed: 6)
        let optimizer = try Optimizer(.sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), model: model)
        func step() {
            model.forwardBackward(batch: batch)
            optimizer.step(learningRate: 0.01)
        }
        for _ in 0..<3 { step() }
        let (_, calls) = tracker.counting { for _ in 0..<100 { step() } }
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer")
        #expect(calls.isZero, "100 steps with the batch-norm exchange made \(calls); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
        #expect(model.batchNormExchange!.exchanges >= 200, "the exchange path did not run")
    }
}
