import Testing
import Data
import NN
import Train
import Kernels
import Select
import Platform

/// Selective Backprop trains the very inputs it scored: with random crops and flips on, every
/// trained sample's pixels and label equal those of its scoring forward in the same epoch.
@Suite(.serialized) struct SelectiveBackpropGatherTests {
    /// Selective Backprop that remembers each scored sample's input and checks the trained ones.
    struct Spy: SelectionPolicy {
        final class Box {
            var model: Model? = nil
            var scored: [Int32: ([Float], Int32)] = [:]
            var checked = 0
            var mismatches: [String] = []
        }
        var inner: SelectiveBackpropPolicy
        let box = Box()
        var id: PolicyID { inner.id }
        var stateStride: Int { inner.stateStride }
        var selectsWithinBatches: Bool { true }
        func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
            box.scored.removeAll()
            var copy = inner
            copy.planEpoch(context, plan: plan, generator: &generator)
        }
        func encodeState(index: Int, into record: UnsafeMutableRawPointer) {}
        func decodeState(index: Int, from record: UnsafeRawPointer) {}
        func sample(_ slot: Int) -> ([Float], Int32) {
            let model = box.model!
            let floats = model.description.input.channels * model.description.input.height * model.description.input.width
            return (Array(UnsafeBufferPointer(start: model.input + slot * floats, count: floats)), model.labels[slot])
        }
        mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
            for (slot, index) in indices.enumerated() { box.scored[index] = sample(slot) }
            inner.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator)
        }
        mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
                                     epoch: Int, learningRate: Double) {
            for (slot, index) in indices.enumerated() {
                box.checked += 1
                guard let scored = box.scored[index] else { box.mismatches.append("sample \(index) trained but never scored"); continue }
                let trained = sample(slot)
                if trained.0 != scored.0 || trained.1 != scored.1 { box.mismatches.append("sample \(index) in epoch \(epoch)") }
            }
            inner.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate)
        }
    }

    @Test func trainsTheAugmentedSamplesItScored() throws {
        let train = try syntheticSet(count: 200, seed: 21), test = try syntheticSet(count: 40, seed: 22)
        var config = try tinyConfig(temporaryDirectory("sb-gather"), epochs: 3)
        config.augment = AugmentConfig(cropPadding: 2, flip: true)
        let trainer = try Trainer(config: config, train: train, test: test)
        var spy = Spy(inner: SelectiveBackpropPolicy(sampleCount: train.count, beta: 1))
        spy.box.model = trainer.model
        var progress = ProgressDisplay(enabled: false)
        var trained = 0
        for _ in 0..<3 { trained += trainer.trainEpoch(policy: &spy, progress: &progress).samplesTrained }
        // Epoch 0 trains everyone directly; epochs 1 and 2 select within scored batches.
        #expect(spy.box.checked == trained)
        #expect(trained > 200 && trained < 600, "\(trained) trained")
        let selectedTrained = trained - 200
        #expect(selectedTrained > 0)
        // Epoch 0's samples were never scored: exactly those 200 are reported, nothing else.
        #expect(spy.box.mismatches.count == 200, "\(spy.box.mismatches.prefix(3)) ... (\(spy.box.mismatches.count))")
        #expect(spy.box.mismatches.allSatisfy { $0.hasSuffix("never scored") })
    }
}
