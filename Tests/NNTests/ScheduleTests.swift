import Testing
import NN

@Suite struct ScheduleTests {
    @Test func schedulesFollowTheirFormulas() {
        let step = LearningRateSchedule(base: 0.1, kind: .step(every: 5, gamma: 0.1), totalEpochs: 20)
        #expect(step.rate(at: 0) == 0.1)
        #expect(abs(step.rate(at: 4.99) - 0.1) < 1e-12)
        #expect(abs(step.rate(at: 5) - 0.01) < 1e-12)
        let exponential = LearningRateSchedule(base: 0.1, kind: .exponential(gamma: 0.96), totalEpochs: 200)
        #expect(abs(exponential.rate(at: 2.5) - 0.1 * 0.96 * 0.96) < 1e-12)
        let cosine = LearningRateSchedule(base: 0.2, kind: .cosine(minimum: 0), totalEpochs: 10)
        #expect(abs(cosine.rate(at: 0) - 0.2) < 1e-12)
        #expect(abs(cosine.rate(at: 5) - 0.1) < 1e-12)
        #expect(abs(cosine.rate(at: 10)) < 1e-12)
        let cyclic = LearningRateSchedule(base: 1, kind: .cyclicCosine(period: 4, minimum: 0), totalEpochs: 12)
        #expect(abs(cyclic.rate(at: 2) - 0.5) < 1e-12)
        #expect(abs(cyclic.rate(at: 4) - 1) < 1e-12)
        let warm = LearningRateSchedule(base: 0.4, kind: .constant, warmupEpochs: 2, totalEpochs: 10)
        #expect(abs(warm.rate(at: 1) - 0.2) < 1e-12)
        #expect(abs(warm.rate(at: 2) - 0.4) < 1e-12)
    }

    /// The rate depends on the fraction of the epoch, not on how many steps it took: an epoch
    /// cut to a third of its steps by a selection policy sees the same rates at the same fractions.
    @Test func rateDependsOnProgressNotStepCount() {
        let schedule = LearningRateSchedule(base: 0.1, kind: .cosine(minimum: 0), totalEpochs: 3)
        let fullSteps = 300, cutSteps = 100
        #expect(schedule.rate(at: 1 + Double(150) / Double(fullSteps)) == schedule.rate(at: 1 + Double(50) / Double(cutSteps)))
    }

    @Test func parsesTheCommandLineForms() {
        #expect(LearningRateSchedule.parseKind("cosine") == .cosine(minimum: 0))
        #expect(LearningRateSchedule.parseKind("step:5:0.5") == .step(every: 5, gamma: 0.5))
        #expect(LearningRateSchedule.parseKind("exp:0.96") == .exponential(gamma: 0.96))
        #expect(LearningRateSchedule.parseKind("cyclic:4:0.001") == .cyclicCosine(period: 4, minimum: 0.001))
        #expect(LearningRateSchedule.parseKind("step:0:1") == nil)
        #expect(LearningRateSchedule.parseKind("cosine:x") == nil)
        #expect(LearningRateSchedule.parseKind("linear") == nil)
    }

    /// episodes: a cosine from base to the minimum within each episode, restarted at every
    /// boundary; the parse leaves the boundaries to the trainer (DIHCL's episodes of the run).
    @Test func perEpisodeCosineRestartsAtEveryBoundary() {
        let schedule = LearningRateSchedule(base: 0.1, kind: .perEpisode(boundaries: [5, 10, 20], minimum: 0.01), totalEpochs: 20)
        #expect(abs(schedule.rate(at: 0) - 0.1) < 1e-15)
        #expect(abs(schedule.rate(at: 2.5) - 0.055) < 1e-12)          // the middle of [0, 5)
        #expect(abs(schedule.rate(at: 5) - 0.1) < 1e-15)              // restarted
        #expect(abs(schedule.rate(at: 7.5) - 0.055) < 1e-12)
        #expect(abs(schedule.rate(at: 15) - 0.055) < 1e-12)           // the middle of [10, 20)
        #expect(schedule.rate(at: 19.99) < 0.0101)
        #expect(LearningRateSchedule.parseKind("episodes") == .perEpisode(boundaries: [], minimum: 0))
        #expect(LearningRateSchedule.parseKind("episodes:0.001") == .perEpisode(boundaries: [], minimum: 0.001))
        #expect(LearningRateSchedule.parseKind("episodes:1:2") == nil)
    }
}
