import Foundation
import Platform
import Select
import Testing

@Suite struct FullAndRandomRemoveTests {
    @Test func fullTrainsEveryoneEveryEpoch() {
        var policy = FullPolicy(sampleCount: 5)
        let plan = EpochPlan(sampleCount: 5)
        var generator = SeededGenerator(seed: 1)
        plan.actions[2] = SampleAction.skip.rawValue
        policy.planEpoch(EpochContext(epoch: 3, epochs: 10, learningRate: 0.1), plan: plan, generator: &generator)
        #expect(plan.counts().train == 5)
        #expect(policy.stateStride == 0 && policy.id == .full)
    }

    @Test func randomRemoveDropsTheFractionWithAFreshDrawEachEpoch() {
        let count = 1000
        var policy = RandomRemovePolicy(fraction: 0.3, sampleCount: count)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 42)
        var removedTimes = [Int](repeating: 0, count: count)
        var previous: [SampleAction] = []
        var differentEpochs = 0
        let epochs = 200
        for epoch in 0..<epochs {
            policy.planEpoch(EpochContext(epoch: epoch, epochs: epochs, learningRate: 0.1), plan: plan, generator: &generator)
            let counts = plan.counts()
            #expect(counts.skip == 300 && counts.train == 700 && counts.score == 0)
            let actions = (0..<count).map { plan.action($0) }
            if actions != previous { differentEpochs += 1 }
            previous = actions
            for index in 0..<count where actions[index] == .skip { removedTimes[index] += 1 }
        }
        #expect(differentEpochs == epochs)
        // Each sample is removed ~30% of the time: 200 epochs, sd ~6.5 removals.
        let rates = removedTimes.map { Double($0) / Double(epochs) }
        #expect(rates.allSatisfy { $0 > 0.15 && $0 < 0.45 })
        #expect(abs(rates.reduce(0, +) / Double(count) - 0.3) < 1e-9)
    }

    @Test func randomRemoveFollowsTheGenerator() {
        var first = RandomRemovePolicy(fraction: 0.5, sampleCount: 64)
        var second = RandomRemovePolicy(fraction: 0.5, sampleCount: 64)
        let planA = EpochPlan(sampleCount: 64), planB = EpochPlan(sampleCount: 64)
        var generatorA = SeededGenerator(seed: 7), generatorB = SeededGenerator(seed: 7)
        let context = EpochContext(epoch: 0, epochs: 1, learningRate: 0.1)
        first.planEpoch(context, plan: planA, generator: &generatorA)
        second.planEpoch(context, plan: planB, generator: &generatorB)
        #expect((0..<64).allSatisfy { planA.action($0) == planB.action($0) })
        #expect(RandomRemovePolicy(fraction: 0, sampleCount: 10).removedPerEpoch == 0)
        #expect(RandomRemovePolicy(fraction: 1, sampleCount: 10).removedPerEpoch == 10)
    }
}

@Suite struct InfoBatchTests {
    @Test func prunesHalfOfTheBelowMeanSamplesWithWeightTwo() {
        let count = 10_000, epochs = 16
        var policy = InfoBatchPolicy(sampleCount: count)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 11)
        // Even samples are well learned (0.1), odd ones hard (2.0): mean 1.05.
        let loss: (Int, Int) -> Float = { index, _ in index % 2 == 0 ? 0.1 : 2.0 }
        var savings: [Double] = []
        for epoch in 0..<epochs {
            let actions = Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: epochs, generator: &generator, loss: loss)
            let counts = plan.counts()
            savings.append(Double(counts.skip) / Double(count))
            if epoch == 0 || epoch >= 14 {
                // First epoch full (no scores yet); last 12.5% (epochs 14, 15) full.
                #expect(counts.train == count, "epoch \(epoch)")
                #expect((0..<count).allSatisfy { plan.weights[$0] == 1 })
                continue
            }
            #expect(counts.score == 0)
            #expect(policy.lastWellLearnedCount == count / 2)
            // Binomial(5000, 0.5): sd ~35.
            #expect(counts.skip > 2300 && counts.skip < 2700, "epoch \(epoch): \(counts.skip) pruned")
            for index in 0..<count {
                if index % 2 == 1 {
                    #expect(actions[index] == .train && plan.weights[index] == 1)
                } else if actions[index] == .train {
                    #expect(plan.weights[index] == 2)
                }
            }
        }
        // Realised saving: a quarter per pruning epoch, well below r = 0.5, and less over the run.
        let runSaving = savings.reduce(0, +) / Double(epochs)
        #expect(runSaving > 0.18 && runSaving < 0.24)
    }

    @Test func prunedSamplesKeepTheirOldScore() {
        var policy = InfoBatchPolicy(sampleCount: 2)
        #expect(policy.score(0) == nil)
        Drive.trained(&policy, [0, 1], [0.5, 3.0], epoch: 0)
        #expect(policy.score(0) == 0.5)
        Drive.trained(&policy, [1], [2.5], epoch: 1)
        #expect(policy.score(0) == 0.5 && policy.score(1) == 2.5)
    }
}

@Suite struct SelectiveBackpropTests {
    @Test func firstEpochTrainsAllThenEveryoneIsACandidate() {
        var policy = SelectiveBackpropPolicy(sampleCount: 10)
        let plan = EpochPlan(sampleCount: 10)
        var generator = SeededGenerator(seed: 1)
        #expect(policy.selectsWithinBatches && policy.stateStride == 32)
        policy.planEpoch(EpochContext(epoch: 0, epochs: 5, learningRate: 0.1), plan: plan, generator: &generator)
        #expect(plan.counts().train == 10)
        Drive.trained(&policy, Array(0..<10), (0..<10).map { Float($0) }, epoch: 0)
        #expect(policy.historyCount == 10)
        policy.planEpoch(EpochContext(epoch: 1, epochs: 5, learningRate: 0.1), plan: plan, generator: &generator)
        #expect(plan.counts().score == 10)
        // Training losses after the first epoch do not enter the history twice.
        Drive.trained(&policy, [0], [1], epoch: 1)
        #expect(policy.historyCount == 10)
    }

    @Test func selectionProbabilityIsThePercentileCubed() {
        var policy = SelectiveBackpropPolicy(sampleCount: 1)
        var generator = SeededGenerator(seed: 5)
        // Losses uniform in [0, 1): the percentile of a loss is about the loss itself.
        var selectedByDecile = [Int](repeating: 0, count: 10)
        var seenByDecile = [Int](repeating: 0, count: 10)
        var lossGenerator = SeededGenerator(seed: 6)
        let batch = 64
        var selected = [UInt8](repeating: 0, count: batch)
        for _ in 0..<4000 {
            let losses = (0..<batch).map { _ in lossGenerator.uniform(0, 1) }
            let indices = [Int32](repeating: 0, count: batch)
            indices.withUnsafeBufferPointer { indexBuffer in
                losses.withUnsafeBufferPointer { lossBuffer in
                    selected.withUnsafeMutableBufferPointer { selectedBuffer in
                        policy.selectWithinBatch(indices: indexBuffer, losses: lossBuffer.baseAddress!,
                                                 selected: selectedBuffer.baseAddress!, generator: &generator)
                    }
                }
            }
            for slot in 0..<batch {
                let decile = min(9, Int(losses[slot] * 10))
                seenByDecile[decile] += 1
                selectedByDecile[decile] += Int(selected[slot])
            }
        }
        #expect(policy.historyCount == 1024)
        for decile in 0..<10 {
            // Mean of p^3 over the decile [a, b): (b^4 - a^4) / (4 (b - a)).
            let low = Double(decile) / 10, high = Double(decile + 1) / 10
            let expected = (pow(high, 4) - pow(low, 4)) / (4 * (high - low))
            let observed = Double(selectedByDecile[decile]) / Double(seenByDecile[decile])
            #expect(abs(observed - expected) < 0.02 + 0.05 * expected, "decile \(decile): \(observed) vs \(expected)")
        }
        let top = Double(selectedByDecile[9]) / Double(seenByDecile[9])
        let bottom = Double(selectedByDecile[0]) / Double(max(1, seenByDecile[0]))
        #expect(top > 0.8 && bottom < 0.001)
        #expect(policy.candidatesSeen == 4000 * batch)
    }

    /// Feeds `epochs` epochs of `candidates` shuffled candidates with seeded losses in batches of
    /// 64, as the training loop does; returns the selections.
    static func drive(_ policy: inout SelectiveBackpropPolicy, epochs: Range<Int>, candidates: Int, seed: UInt64) -> [UInt8] {
        var selections: [UInt8] = []
        for epoch in epochs {
            var generator = SeededGenerator(seed: seed &+ UInt64(epoch))
            var order = (0..<candidates).map { Int32($0) }
            for position in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(position, generator.below(position + 1)) }
            var start = 0
            while start < candidates {
                let indices = Array(order[start..<min(start + 64, candidates)])
                let losses = indices.map { index in Float(generator.uniform(0, 1)) * Float(1 + Int(index) % 7) }
                var selected = [UInt8](repeating: 0, count: indices.count)
                indices.withUnsafeBufferPointer { indexBuffer in
                    losses.withUnsafeBufferPointer { lossBuffer in
                        selected.withUnsafeMutableBufferPointer { selectedBuffer in
                            policy.selectWithinBatch(indices: indexBuffer, losses: lossBuffer.baseAddress!,
                                                     selected: selectedBuffer.baseAddress!, generator: &generator)
                        }
                    }
                }
                selections += selected
                start += 64
            }
        }
        return selections
    }

    /// The state file's 32-byte records rebuild the loss history exactly (newest 1024 losses,
    /// oldest first) when an epoch has at least 342 candidates, so a restored policy then selects
    /// exactly as the original; with only 100 candidates it keeps each sample's newest four.
    @Test(arguments: [400, 1000, 100])
    func stateRecordsRebuildTheLossHistory(candidates: Int) {
        var original = SelectiveBackpropPolicy(sampleCount: candidates)
        _ = Self.drive(&original, epochs: 0..<5, candidates: candidates, seed: 3)
        #expect(original.historyCount == min(1024, 5 * candidates))
        let records = Drive.records(original, sampleCount: candidates)
        var restored = SelectiveBackpropPolicy(sampleCount: candidates)
        records.withUnsafeBytes { raw in
            for index in 0..<candidates { restored.decodeState(index: index, from: raw.baseAddress! + index * 32) }
        }
        let plan = EpochPlan(sampleCount: candidates)
        var generator = SeededGenerator(seed: 1)
        restored.planEpoch(EpochContext(epoch: 5, epochs: 9, learningRate: 0.1), plan: plan, generator: &generator)
        if candidates >= 342 {
            #expect(restored.historySnapshot() == original.historySnapshot())
            let expected = Self.drive(&original, epochs: 5..<8, candidates: candidates, seed: 3)
            let got = Self.drive(&restored, epochs: 5..<8, candidates: candidates, seed: 3)
            #expect(got == expected)
            #expect(restored.historySnapshot() == original.historySnapshot())
            #expect(Drive.records(restored, sampleCount: candidates) == Drive.records(original, sampleCount: candidates))
        } else {
            // Each sample's newest four losses: the newest 400 of the stream, in order.
            #expect(restored.historySnapshot() == Array(original.historySnapshot().suffix(4 * candidates)))
        }
    }

    @Test func theLargestRecentLossIsAlwaysSelected() {
        var policy = SelectiveBackpropPolicy(sampleCount: 1)
        let first = policy.percentileAfterAdding(0.5)
        let second = policy.percentileAfterAdding(0.1)
        let third = policy.percentileAfterAdding(0.9)
        #expect(first == 1 && second == 0.5 && third == 1)
    }
}

@Suite struct EarlyStopTests {
    @Test func stopsAfterPatienceEpochsWithoutImprovement() {
        var policy = EarlyStopPolicy(sampleCount: 100, patience: 5)
        #expect(policy.validationFraction == 0.1)
        let accuracies = [0.50, 0.60, 0.70, 0.69, 0.68, 0.70, 0.65, 0.66, 0.90]
        var stops: [Bool] = []
        for (epoch, accuracy) in accuracies.enumerated() {
            stops.append(policy.endEpoch(epoch: epoch, validationAccuracy: accuracy))
            if stops.last! { break }
        }
        // Best at epoch 2 (0.70; equal is not better); epochs 3..7 do not improve -> stop at 7.
        #expect(stops == [false, false, false, false, false, false, false, true])
        #expect(policy.bestEpoch == 2 && policy.bestAccuracy == 0.70 && policy.stoppedEpoch == 7)
    }

    @Test func improvementResetsPatienceAndMissingAccuracyNeverStops() {
        var policy = EarlyStopPolicy(sampleCount: 10, patience: 2)
        var stops: [Bool] = []
        stops.append(policy.endEpoch(epoch: 0, validationAccuracy: 0.5))
        stops.append(policy.endEpoch(epoch: 1, validationAccuracy: 0.4))
        stops.append(policy.endEpoch(epoch: 2, validationAccuracy: 0.6))
        stops.append(policy.endEpoch(epoch: 3, validationAccuracy: nil))
        stops.append(policy.endEpoch(epoch: 3, validationAccuracy: 0.6))
        stops.append(policy.endEpoch(epoch: 4, validationAccuracy: 0.59))
        #expect(stops == [false, false, false, false, false, true])
        #expect(policy.bestEpoch == 2)
        let plan = EpochPlan(sampleCount: 10)
        var generator = SeededGenerator(seed: 1)
        plan.setAll(.skip)
        policy.planEpoch(EpochContext(epoch: 5, epochs: 10, learningRate: 0.1), plan: plan, generator: &generator)
        #expect(plan.counts().train == 10)
    }
}

@Suite struct AccountingTests {
    @Test func savingsFollowTheDefinitions() {
        // 10 samples: 6 trained, 2 scored only, 2 skipped.
        let epoch = EpochAccounting(epoch: 0, sampleCount: 10, trained: 6, scored: 2, skipped: 2, reentries: 1)
        #expect(epoch.skippedBackward == 4)
        #expect(abs(epoch.backpropSaved - 0.4) < 1e-12)
        #expect(abs(epoch.computeSaved - (1 - 20.0 / 30.0)) < 1e-12)
        var run = RunAccounting()
        run.add(EpochAccounting(epoch: 0, sampleCount: 10, trained: 10, scored: 0, skipped: 0))
        run.add(epoch)
        #expect(run.epochs == 2 && run.sampleEpochs == 20 && run.reentries == 1)
        #expect(abs(run.backpropSaved - 4.0 / 20.0) < 1e-12)
        #expect(abs(run.computeSaved - (1 - 50.0 / 60.0)) < 1e-12)
        #expect(abs(run.trainedFraction - 0.8) < 1e-12)
    }

    @Test func fromAPlanAndSelectiveBackpropCounts() {
        let plan = EpochPlan(sampleCount: 4)
        plan.actions[1] = SampleAction.score.rawValue
        plan.actions[3] = SampleAction.skip.rawValue
        let epoch = EpochAccounting(epoch: 3, plan: plan)
        #expect(epoch.trained == 2 && epoch.scored == 1 && epoch.skipped == 1)
        #expect(abs(epoch.backpropSaved - 0.5) < 1e-12)
        // Selective Backprop: every candidate forwarded without gradients, a quarter trained:
        // three quarters of the backward passes skipped, but everyone got a forward.
        let selective = EpochAccounting(epoch: 1, sampleCount: 100, trained: 25, scored: 100, skipped: 0)
        #expect(abs(selective.backpropSaved - 0.75) < 1e-12)
        #expect(abs(selective.computeSaved - (1 - 175.0 / 300.0)) < 1e-12)
        #expect(RunAccounting().computeSaved == 0)
    }

    /// The count-matched control: epoch e removes exactly removedByEpoch[e] random samples
    /// (clamped to 0...N), epochs past the list use the fraction.
    @Test func randomRemoveReplaysPerEpochCounts() {
        let count = 50
        let counts = [0, 7, 50, 60, -3, 20]
        var policy = RandomRemovePolicy(fraction: 0.1, sampleCount: count, removedByEpoch: counts)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 11)
        var previous: [UInt8] = []
        for epoch in 0..<8 {
            policy.planEpoch(EpochContext(epoch: epoch, epochs: 8, learningRate: 0.1), plan: plan, generator: &generator)
            let expected = epoch < counts.count ? min(max(counts[epoch], 0), count) : 5
            #expect(plan.counts().skip == expected && plan.counts().train == count - expected, "epoch \(epoch)")
            let actions = (0..<count).map { plan.actions[$0] }
            if epoch == 5 { #expect(actions != previous) }  // random samples, not a fixed set
            previous = actions
        }
    }
}
