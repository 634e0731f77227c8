import Platform

/// Random removal: each epoch a fresh uniformly random subset of exactly
/// round(fraction x N) samples is skipped, drawn from the generator passed to `planEpoch`.
/// The control for every loss-based policy: run it at the budget the other policy realised.
/// With `removedByEpoch`, epoch e removes exactly removedByEpoch[e] samples instead (clamped to
/// 0...N; epochs past the list use the fraction): a selective run's own per-epoch counts with
/// random samples, which isolates its criterion from its timing.
public struct RandomRemovePolicy: SelectionPolicy {
    public let sampleCount: Int
    /// Fraction of the samples skipped each epoch, in [0, 1].
    public let fraction: Double
    /// A permutation of 0..<N; a partial Fisher-Yates pass over it draws the removed subset.
    /// Any permutation is a valid start, so it is not reset between epochs.
    private var permutation: [Int32]
    /// Samples removed in each epoch (index = epoch), when given.
    public let removedByEpoch: [Int]?

    public init(fraction: Double, sampleCount: Int, removedByEpoch: [Int]? = nil) {
        precondition(fraction >= 0 && fraction <= 1, "random-remove fraction must be in [0, 1]")
        self.fraction = fraction
        self.sampleCount = sampleCount
        self.removedByEpoch = removedByEpoch
        permutation = (0..<sampleCount).map { Int32($0) }
    }

    /// Samples removed per epoch.
    public var removedPerEpoch: Int { min(sampleCount, Int((fraction * Double(sampleCount)).rounded())) }

    /// Samples removed in `epoch`.
    public func removed(epoch: Int) -> Int {
        if let counts = removedByEpoch, epoch < counts.count { return min(max(counts[epoch], 0), sampleCount) }
        return removedPerEpoch
    }

    public var id: PolicyID { .randomRemove }
    public var stateStride: Int { 0 }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        plan.setAll(.train)
        let removed = removed(epoch: context.epoch)
        for slot in 0..<removed {
            let pick = slot + generator.below(sampleCount - slot)
            permutation.swapAt(slot, pick)
            plan.actions[Int(permutation[slot])] = SampleAction.skip.rawValue
        }
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {}

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {}
    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {}
}
