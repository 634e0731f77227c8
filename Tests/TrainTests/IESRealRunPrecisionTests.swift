import Data
import Kernels
import Platform
import NN
import Select
import Testing
import Train

/// Issue 4: "If reduced precision is used for stored losses, a test shows the IES exclusion
/// decisions are the same as with Float64 histories on a real run." IESPolicy keeps its six
/// newest losses as Float32. This test trains cnn-s for real (the repository's Fashion-MNIST
/// subset, the IES reference schedule, one thread) with IESPolicy deciding, and feeds every
/// per-sample loss the policy sees to an independent shadow with Float64 histories; before
/// each epoch both decide, and the excluded sets must be identical.
@Suite(.serialized) struct IESRealRunPrecisionTests {
    /// IES's released-code criterion over Float64 histories, written independently of IESPolicy:
    /// mastered iff >= 6 losses and the mean of the newest three |order-th differences| < delta.
    struct Float64Shadow {
        let threshold: Double
        let order = 2
        var histories: [[Double]]
        /// Epoch of each sample's newest loss (a second loss in one epoch replaces the first).
        var newestEpoch: [Int]

        init(sampleCount: Int, threshold: Double) {
            self.threshold = threshold
            histories = Array(repeating: [], count: sampleCount)
            newestEpoch = Array(repeating: -1, count: sampleCount)
        }

        func isMastered(_ index: Int) -> Bool {
            let losses = histories[index]
            guard losses.count >= 6 else { return false }
            var values = Array(losses.suffix(order + 3))
            for _ in 0..<order { values = zip(values.dropFirst(), values).map { pair in pair.0 - pair.1 } }
            return (abs(values[2]) + abs(values[1]) + abs(values[0])) / 3 < threshold
        }

        mutating func record(_ index: Int, _ loss: Double, epoch: Int) {
            if newestEpoch[index] == epoch { histories[index][histories[index].count - 1] = loss }
            else { histories[index].append(loss) }
            newestEpoch[index] = epoch
        }
    }

    /// IESPolicy as the trainer drives it, with the shadow beside it; both see the same losses.
    struct ShadowedIES: SelectionPolicy {
        var policy: IESPolicy
        var shadow: Float64Shadow
        /// Per planned epoch: samples the policy excluded, and samples where the two disagree.
        var excludedByEpoch: [Int] = []
        var disagreementsByEpoch: [Int] = []

        var id: PolicyID { policy.id }
        var stateStride: Int { policy.stateStride }
        var lastEpochReentries: Int { policy.lastEpochReentries }

        mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
            policy.planEpoch(context, plan: plan, generator: &generator)
            var excluded = 0, disagreements = 0
            for index in 0..<plan.sampleCount {
                let policyExcludes = plan.action(index) != .train
                if policyExcludes { excluded += 1 }
                if policyExcludes != shadow.isMastered(index) { disagreements += 1 }
            }
            excludedByEpoch.append(excluded)
            disagreementsByEpoch.append(disagreements)
        }

        mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                     correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
            policy.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate)
            for slot in 0..<indices.count { shadow.record(Int(indices[slot]), Double(losses[slot]), epoch: epoch) }
        }

        mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                    correct: UnsafePointer<UInt8>, epoch: Int) {
            policy.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch)
            for slot in 0..<indices.count { shadow.record(Int(indices[slot]), Double(losses[slot]), epoch: epoch) }
        }

        func encodeState(index: Int, into record: UnsafeMutableRawPointer) { policy.encodeState(index: index, into: record) }
        mutating func decodeState(index: Int, from record: UnsafeRawPointer) { policy.decodeState(index: index, from: record) }
    }

    static var repositoryRoot: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }

    /// cnn-s, 1000 training samples of the shipped subset, 12 epochs of the IES reference
    /// schedule (SGD 0.05, momentum 0.9, wd 5e-4, exp 0.96, crop+flip), delta 1e-2 so that
    /// samples are excluded from epoch 7 on. About 10 s in release on one core.
    @Test func realRunFloat32HistoriesDecideAsFloat64() throws {
        let files = try DatasetLocator.fashionMNIST(dataDirectory: Self.repositoryRoot + "/" + DatasetLocator.subsetRelativePath)
        let (train, test) = try FashionMNIST.load(files)
        var config = TrainConfig(model: try ModelZoo.description(named: "cnn-s"))
        config.epochs = 12
        config.batch = 64
        config.threads = 1
        config.optimizer = .sgd(momentum: 0.9, nesterov: false, weightDecay: 5e-4)
        config.learningRate = 0.05
        config.schedule = .exponential(gamma: 0.96)
        config.augment = AugmentConfig(cropPadding: 2, flip: true)
        config.trainLimit = 1000
        config.testLimit = 200
        config.progress = false
        config.outputDirectory = temporaryDirectory("ies-real-precision")
        let threshold = 1e-2
        var policy = ShadowedIES(policy: IESPolicy(sampleCount: 1000, threshold: threshold),
                                 shadow: Float64Shadow(sampleCount: 1000, threshold: threshold))
        let session = try TrainingSession(config: config, train: train, test: test)
        try session.run(policy: &policy)

        print("IES real run, excluded per epoch: \(policy.excludedByEpoch); Float32-vs-Float64 disagreements: \(policy.disagreementsByEpoch)")
        #expect(policy.excludedByEpoch.count == 12)
        #expect(policy.disagreementsByEpoch.allSatisfy { $0 == 0 }, "Float32 and Float64 histories excluded different samples")
        // Not vacuous: nothing before epoch 7, and samples excluded in each of the last epochs.
        #expect(policy.excludedByEpoch.prefix(6).allSatisfy { $0 == 0 })
        #expect(policy.excludedByEpoch.suffix(4).allSatisfy { $0 > 0 }, "the run must exclude samples in its later epochs")
        // The shadow really holds the losses: every sample trained in epochs 0...5 has >= 6.
        #expect(policy.shadow.histories.allSatisfy { $0.count >= 6 })
        #expect(session.history.reduce(0) { $0 + $1.samplesScored } > 0)
    }
}
