import CSystem
import Kernels

/// Selective Backprop (Jiang et al., 2019): forward each batch without gradients, keep each
/// sample with probability P = (percentile of its loss among the last `historySize` losses)^beta,
/// and train the kept ones in compact batches. The first epoch trains everything.
///
/// The percentile of a loss is the fraction of the history (the new loss included) that is
/// <= it, so the largest loss seen lately is always kept. The history is one global ring of
/// recent losses, not per-sample state: `stateStride` is 0 and the ring is NOT persisted; after
/// a resume it refills from the first batches (for `historySize` losses the percentiles are
/// computed over fewer samples).
public struct SelectiveBackpropPolicy: SelectionPolicy {
    public let sampleCount: Int
    /// Selectivity exponent (3 in the paper).
    public let beta: Double
    /// Losses remembered for the percentile (1024 in the paper).
    public let historySize: Int

    private var ring: [Float]
    private var ringCount = 0
    private var ringNext = 0
    private var firstEpochTraining = false

    /// Candidates and selections over the run (for the realised selection rate).
    public private(set) var candidatesSeen = 0
    public private(set) var candidatesSelected = 0

    public init(sampleCount: Int, beta: Double = 3, historySize: Int = 1024) {
        precondition(beta >= 0, "Selective Backprop beta must not be negative")
        precondition(historySize >= 1, "Selective Backprop historySize must be at least 1")
        self.sampleCount = sampleCount
        self.beta = beta
        self.historySize = historySize
        ring = [Float](repeating: 0, count: historySize)
    }

    public var id: PolicyID { .selectiveBackprop }
    public var stateStride: Int { 0 }
    public var selectsWithinBatches: Bool { true }

    /// Losses currently in the history.
    public var historyCount: Int { ringCount }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        firstEpochTraining = context.epoch == 0
        plan.setAll(firstEpochTraining ? .train : .score)
    }

    /// Adds `loss` to the history, then returns its percentile in (0, 1].
    public mutating func percentileAfterAdding(_ loss: Float) -> Double {
        ring[ringNext] = loss
        ringNext = ringNext + 1 == historySize ? 0 : ringNext + 1
        if ringCount < historySize { ringCount += 1 }
        var atOrBelow = 0
        for slot in 0..<ringCount where ring[slot] <= loss { atOrBelow += 1 }
        return Double(atOrBelow) / Double(ringCount)
    }

    public mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                           selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        for slot in 0..<indices.count {
            let probability = pow(percentileAfterAdding(losses[slot]), beta)
            let draw = Double(generator.next() >> 11) * 0x1p-53
            let keep = draw < probability
            selected[slot] = keep ? 1 : 0
            candidatesSeen += 1
            if keep { candidatesSelected += 1 }
        }
    }

    /// In the all-train first epoch the training losses seed the history; later the selected
    /// samples' losses were already added as candidates.
    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        guard firstEpochTraining else { return }
        for slot in 0..<indices.count { _ = percentileAfterAdding(losses[slot]) }
    }

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {}
    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {}
}
