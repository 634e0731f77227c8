import Platform
import Select
import Testing

/// IES's threshold is strict: mastered iff criterion < threshold. These histories make the
/// criterion land exactly on the threshold (dyadic losses: every difference, the sum of three
/// and the division by 3 are exact in Float64), and the decision is read from the plan, not
/// recomputed here, so a `<=` in the policy fails them.
@Suite struct IESBoundaryTests {
    static let threshold = 0x1p-10  // 0.0009765625, near the 1e-3 default

    /// Six losses (epochs 0...5) whose order-`order` criterion is exactly `criterion`:
    /// order 0 a constant loss; orders 1...3 a loss alternating level ± h, whose k-th differences
    /// are all ±2^k h, so h = criterion / 2^k.
    static func history(order: Int, criterion: Double) -> [Float] {
        if order == 0 { return [Float](repeating: Float(criterion), count: 6) }
        let h = criterion / Double(1 << order)
        return (0..<6).map { Float(0.25 + ($0 % 2 == 0 ? h : -h)) }
    }

    /// The plan of epoch 6 (the first that may exclude) for samples with these histories.
    static func plan(_ histories: [[Float]], order: Int, threshold: Double) -> (IESPolicy, [SampleAction]) {
        var policy = IESPolicy(sampleCount: histories.count, order: order, threshold: threshold)
        for epoch in 0..<6 {
            Drive.trained(&policy, (0..<histories.count).map { Int32($0) }, histories.map { $0[epoch] }, epoch: epoch)
        }
        let plan = EpochPlan(sampleCount: histories.count)
        var generator = SeededGenerator(seed: 5)
        policy.planEpoch(EpochContext(epoch: 6, epochs: 20, learningRate: 0.1), plan: plan, generator: &generator)
        return (policy, (0..<histories.count).map { plan.action($0) })
    }

    /// Sample 0 sits exactly on the threshold and trains; sample 1, one step of 2^-22 below it,
    /// is excluded (so the boundary is where the test says); sample 2 just above trains.
    @Test(arguments: [0, 1, 2, 3])
    func aCriterionEqualToTheThresholdIsNotExcluded(order: Int) {
        let step = 0x1p-22
        let histories = [Self.history(order: order, criterion: Self.threshold),
                         Self.history(order: order, criterion: Self.threshold - step),
                         Self.history(order: order, criterion: Self.threshold + step)]
        let (policy, actions) = Self.plan(histories, order: order, threshold: Self.threshold)
        #expect(policy.criterion(0) == Self.threshold, "order \(order): criterion \(policy.criterion(0) ?? -1) is not exactly the threshold")
        #expect(policy.criterion(1) == Self.threshold - step && policy.criterion(2) == Self.threshold + step, "order \(order)")
        #expect(actions[0] == .train, "order \(order): criterion == threshold \(Self.threshold) was excluded (the rule is strict <)")
        #expect(actions[1] == .score, "order \(order): criterion just below the threshold was not excluded")
        #expect(actions[2] == .train, "order \(order)")
        #expect(policy.lastExcludedCount == 1 && policy.isExcluded(1) && !policy.isExcluded(0))
    }

    /// Threshold 0 excludes nothing, not even a perfectly flat loss (criterion exactly 0).
    @Test(arguments: [0, 1, 2, 3])
    func thresholdZeroExcludesNothing(order: Int) {
        let flat: [Float] = order == 0 ? [0, 0, 0, 0, 0, 0] : [Float](repeating: 0.125, count: 6)
        let (policy, actions) = Self.plan([flat, Self.history(order: order, criterion: 0x1p-20)], order: order, threshold: 0)
        #expect(policy.criterion(0) == 0)
        #expect(actions == [.train, .train], "order \(order): threshold 0 excluded \(actions)")
        #expect(policy.lastExcludedCount == 0)
    }
}
