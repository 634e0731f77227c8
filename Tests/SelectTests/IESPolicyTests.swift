import Platform
import Select
import Testing

@Suite struct IESPolicyTests {
    @Test func nothingExcludedBeforeEpochSevenThenFlatSamplesAreExcluded() {
        // Samples 0..<4 have a perfectly flat loss, 4..<8 a steadily falling one.
        let count = 8
        var policy = IESPolicy(sampleCount: count)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 1)
        let loss: (Int, Int) -> Float = { index, epoch in index < 4 ? 0.01 : 2.0 * Float(0.7).power(epoch) }
        for epoch in 0..<6 {
            let actions = Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 30, generator: &generator, loss: loss)
            #expect(actions.allSatisfy { $0 == .train }, "epoch \(epoch) (0-based) must train everyone")
            #expect(policy.lastExcludedCount == 0)
        }
        #expect(policy.recordedLosses(0) == 6)
        // Epoch 6 (the seventh): the flat samples are mastered, scored each epoch (M = 1), and stay out.
        for epoch in 6..<12 {
            let actions = Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 30, generator: &generator, loss: loss)
            #expect(Array(actions[0..<4]) == [.score, .score, .score, .score], "epoch \(epoch)")
            #expect(Array(actions[4..<8]).allSatisfy { $0 == .train }, "epoch \(epoch)")
            #expect(policy.isExcluded(0) && !policy.isExcluded(4))
        }
        #expect(policy.totalReentries == 0)
    }

    @Test func theSixthLossComesFromEpochFive() {
        // Five flat losses are not enough: epoch 5's plan still trains the sample.
        var policy = IESPolicy(sampleCount: 1)
        let plan = EpochPlan(sampleCount: 1)
        var generator = SeededGenerator(seed: 2)
        for epoch in 0..<5 { Drive.trained(&policy, [0], [0.02], epoch: epoch) }
        policy.planEpoch(EpochContext(epoch: 5, epochs: 10, learningRate: 0.1), plan: plan, generator: &generator)
        #expect(plan.action(0) == .train)
        #expect(policy.criterion(0) == nil)
        Drive.trained(&policy, [0], [0.02], epoch: 5)
        policy.planEpoch(EpochContext(epoch: 6, epochs: 10, learningRate: 0.1), plan: plan, generator: &generator)
        #expect(plan.action(0) == .score)
    }

    @Test func aSecondLossInTheSameEpochReplacesTheFirst() {
        var policy = IESPolicy(sampleCount: 1)
        for epoch in 0..<3 {
            Drive.trained(&policy, [0], [0.5], epoch: epoch)
            Drive.trained(&policy, [0], [0.01], epoch: epoch)
        }
        #expect(policy.recordedLosses(0) == 3)
    }

    @Test func excludedSampleReentersWhenItsScoredLossMoves() {
        let count = 3
        var policy = IESPolicy(sampleCount: count)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 3)
        // Sample 0 is flat until its scored loss in epoch 8 jumps (e.g. forgotten); 1 stays flat; 2 noisy.
        let loss: (Int, Int) -> Float = { index, epoch in
            switch index {
            case 0: return epoch == 8 ? 0.9 : 0.01
            case 1: return 0.003
            default: return epoch % 2 == 0 ? 1.0 : 1.5
            }
        }
        var actionsByEpoch: [[SampleAction]] = []
        for epoch in 0..<20 {
            actionsByEpoch.append(Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 20, generator: &generator, loss: loss))
        }
        #expect(actionsByEpoch[6][0] == .score && actionsByEpoch[7][0] == .score && actionsByEpoch[8][0] == .score)
        // The jump scored in epoch 8 brings it back in epoch 9: one re-entry, counted in epoch 9.
        #expect(actionsByEpoch[9][0] == .train)
        #expect(policy.reentries(epoch: 9) == 1)
        #expect(policy.reentries(0) == 1 && policy.reentries(1) == 0)
        #expect(policy.totalReentries == 1)
        // It is excluded again once the jump has left the 5-loss window (losses 9..13 flat -> epoch 14).
        for epoch in 9..<14 { #expect(actionsByEpoch[epoch][0] == .train, "epoch \(epoch)") }
        #expect(actionsByEpoch[14][0] == .score)
        #expect(actionsByEpoch.allSatisfy { $0[2] == .train })
        #expect(actionsByEpoch[6...].allSatisfy { $0[1] == .score })
    }

    @Test func excludedSetIsRecomputedAndAnEmptySetMeansEveryoneTrains() {
        let count = 4
        var policy = IESPolicy(sampleCount: count)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 4)
        // Samples 0 and 1 flat; in epoch 6 both scored losses jump. 2 and 3 always noisy.
        let loss: (Int, Int) -> Float = { index, epoch in
            if index < 2 { return epoch == 6 ? 0.8 : 0.001 }
            return epoch % 2 == 0 ? 2.0 : 1.0
        }
        var actions: [[SampleAction]] = []
        for epoch in 0..<8 {
            actions.append(Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 50, generator: &generator, loss: loss))
        }
        #expect(actions[6] == [.score, .score, .train, .train])
        // The new excluded set is empty: everyone trains (the released code would keep {0, 1}).
        #expect(actions[7] == [.train, .train, .train, .train])
        #expect(policy.lastExcludedCount == 0)
        #expect(policy.reentries(epoch: 7) == 2 && policy.lastEpochReentries == 2)
        let counts = plan.counts()
        #expect(counts.train == 4 && counts.score == 0 && counts.skip == 0)
    }

    /// M = 3: losses enter only in epochs 2, 5, 8, ... (every sample trained or scored then),
    /// decisions only when planning epochs 0, 3, 6, ...; so the sixth loss is epoch 17's and the
    /// first exclusion is in epoch 18. Inside a block the excluded set does not change; a loss
    /// that moves in a rescoring epoch brings the sample back at the next decision.
    @Test func rescoreEveryMUsesLossesMEpochsApartAndDecidesOncePerBlock() {
        let count = 3
        var policy = IESPolicy(sampleCount: count, rescoreEvery: 3)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 5)
        // Sample 0 is flat; sample 1 alternates between rescoring epochs (never mastered);
        // sample 2 is flat but its loss jumps in epoch 23 (a rescoring epoch) and in epoch 25
        // (not one: a trained sample's loss there is not recorded, an excluded one is skipped).
        let loss: (Int, Int) -> Float = { index, epoch in
            switch index {
            case 0: return 0.002
            case 1: return Float((epoch / 3) % 2) + 0.5
            default: return epoch == 23 || epoch == 25 ? 1.5 : 0.002
            }
        }
        for epoch in 0..<33 {
            let before = (0..<count).map { policy.recordedLosses($0) }
            let actions = Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 33, generator: &generator, loss: loss)
            let rescoring = (epoch + 1) % 3 == 0
            #expect(policy.isRescoringEpoch(epoch) == rescoring && policy.decidesIn(epoch) == (epoch % 3 == 0))
            // Losses are recorded in rescoring epochs only, for every sample, trained or excluded.
            for index in 0..<count {
                #expect(policy.recordedLosses(index) == before[index] + (rescoring ? 1 : 0), "epoch \(epoch) sample \(index)")
            }
            let excludedAction: SampleAction = rescoring ? .score : .skip
            if epoch < 18 {
                #expect(actions.allSatisfy { $0 == .train }, "epoch \(epoch): \(actions)")
            } else {
                #expect(actions[0] == excludedAction, "epoch \(epoch)")
                // Sample 2: excluded from 18; epoch 23's loss moves, so the decision of 24
                // brings it back; it stays while 1.5 is in its five-loss window (the losses of
                // epochs 23, 26, 29, 32 are the newest by the decision of 33, which still
                // sees it). Epoch 25's jump is never seen.
                let back = epoch >= 24
                #expect(actions[2] == (back ? .train : excludedAction), "epoch \(epoch): \(actions)")
            }
            #expect(actions[1] == .train)
        }
        #expect(policy.reentries(epoch: 24) == 1 && policy.totalReentries == 1)
    }

    @Test func fullDataLastTrainsEveryoneInTheFinalFraction() {
        let count = 3
        var policy = IESPolicy(sampleCount: count, fullDataLast: 0.25)
        let plan = EpochPlan(sampleCount: count)
        var generator = SeededGenerator(seed: 6)
        for epoch in 0..<20 {
            let actions = Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 20, generator: &generator) { _, _ in 0.001 }
            if epoch < 6 || epoch >= 15 {
                #expect(actions.allSatisfy { $0 == .train }, "epoch \(epoch)")
            } else {
                #expect(actions.allSatisfy { $0 == .score }, "epoch \(epoch)")
            }
        }
        // Annealing brings samples back but these are not re-entries by the criterion.
        #expect(policy.totalReentries == 0)
    }

    @Test func orderZeroUsesTheLossItself() {
        var policy = IESPolicy(sampleCount: 2, order: 0)
        let plan = EpochPlan(sampleCount: 2)
        var generator = SeededGenerator(seed: 7)
        for epoch in 0..<8 {
            let actions = Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 20, generator: &generator) { index, _ in
                index == 0 ? 0.5 : 0.0004   // both flat; only the small one is below delta
            }
            if epoch >= 6 { #expect(actions == [.train, .score]) }
        }
        #expect(abs(policy.criterion(1)! - 0.0004) < 1e-9)
    }

    @Test func orderOneIgnoresALevelButNotASlope() {
        // Sample 0 falls linearly by 0.01 per epoch: first differences 0.01 (kept) but second
        // differences 0 (order 2 excludes it). Sample 1 is flat (both exclude).
        let line: (Int, Int) -> Float = { index, epoch in index == 0 ? 1.0 - 0.01 * Float(epoch) : 0.3 }
        var first = IESPolicy(sampleCount: 2, order: 1)
        var second = IESPolicy(sampleCount: 2, order: 2)
        let plan = EpochPlan(sampleCount: 2)
        var generator = SeededGenerator(seed: 8)
        var firstActions: [SampleAction] = [], secondActions: [SampleAction] = []
        for epoch in 0..<7 {
            firstActions = Drive.epoch(&first, plan: plan, epoch: epoch, epochs: 20, generator: &generator, loss: line)
            secondActions = Drive.epoch(&second, plan: plan, epoch: epoch, epochs: 20, generator: &generator, loss: line)
        }
        #expect(firstActions == [.train, .score])
        #expect(secondActions == [.score, .score])
        #expect(abs(first.criterion(0)! - 0.01) < 1e-6)
    }

    @Test func orderThreeIgnoresCurvatureAndNeedsSixLosses() {
        // L = 1 - 0.05 t + 0.002 t^2: constant second difference 0.004 (> delta), third difference 0.
        let curve: (Int, Int) -> Float = { _, epoch in
            let t = Float(epoch)
            return 1 - 0.05 * t + 0.002 * t * t
        }
        var second = IESPolicy(sampleCount: 1, order: 2)
        var third = IESPolicy(sampleCount: 1, order: 3)
        let plan = EpochPlan(sampleCount: 1)
        var generator = SeededGenerator(seed: 9)
        for epoch in 0..<10 {
            let secondAction = Drive.epoch(&second, plan: plan, epoch: epoch, epochs: 20, generator: &generator, loss: curve)[0]
            let thirdAction = Drive.epoch(&third, plan: plan, epoch: epoch, epochs: 20, generator: &generator, loss: curve)[0]
            #expect(secondAction == .train)
            #expect(thirdAction == (epoch >= 6 ? .score : .train), "epoch \(epoch)")
        }
        #expect(abs(second.criterion(0)! - 0.004) < 1e-5)
        #expect(third.criterion(0)! < 1e-5)
    }

    @Test func thresholdIsStrictAndInRawLossUnits() {
        // Alternating +-h around a level: |second differences| = 4h each.
        func excluded(h: Float, threshold: Double) -> Bool {
            var policy = IESPolicy(sampleCount: 1, threshold: threshold)
            for epoch in 0..<6 { Drive.trained(&policy, [0], [0.25 + (epoch % 2 == 0 ? h : -h)], epoch: epoch) }
            return policy.criterion(0)! < threshold
        }
        #expect(excluded(h: 0.0002, threshold: 1e-3))      // 8e-4 < 1e-3
        #expect(!excluded(h: 0.0003, threshold: 1e-3))     // 1.2e-3
        #expect(excluded(h: 0.0003, threshold: 2e-3))      // the 100-class setting
    }
}

extension Float {
    func power(_ exponent: Int) -> Float {
        var result: Float = 1
        for _ in 0..<exponent { result *= self }
        return result
    }
}
