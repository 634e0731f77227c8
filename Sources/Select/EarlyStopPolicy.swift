import Platform

/// Conventional early stopping: everyone trains; a held-out split (`validationFraction` of
/// the training set, carved out by the loop) is evaluated each epoch, and training stops when
/// its accuracy has not improved for `patience` epochs. Report the best epoch's accuracy.
public struct EarlyStopPolicy: SelectionPolicy {
    public let sampleCount: Int
    public let patience: Int
    public let validationFraction: Double

    /// Best validation accuracy so far and the epoch it was reached in (-1 before any).
    public private(set) var bestAccuracy = -Double.infinity
    public private(set) var bestEpoch = -1
    /// The epoch at which `endEpoch` asked to stop (-1 while running).
    public private(set) var stoppedEpoch = -1

    public init(sampleCount: Int, patience: Int = 5, validationFraction: Double = 0.1) {
        precondition(patience >= 1, "early-stop patience must be at least 1 epoch")
        precondition(validationFraction > 0 && validationFraction < 1, "validation fraction must be in (0, 1)")
        self.sampleCount = sampleCount
        self.patience = patience
        self.validationFraction = validationFraction
    }

    public var id: PolicyID { .earlyStop }
    public var stateStride: Int { 0 }

    /// Restores the best-so-far after a resume (the loop keeps them in checkpoint metadata).
    public mutating func restore(bestAccuracy: Double, bestEpoch: Int) {
        self.bestAccuracy = bestAccuracy
        self.bestEpoch = bestEpoch
    }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        plan.setAll(.train)
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {}

    /// True once `patience` epochs in a row have not beaten the best accuracy.
    public mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool {
        guard let accuracy = validationAccuracy else { return false }
        if accuracy > bestAccuracy {
            bestAccuracy = accuracy
            bestEpoch = epoch
            return false
        }
        if epoch - bestEpoch >= patience {
            if stoppedEpoch < 0 { stoppedEpoch = epoch }
            return true
        }
        return false
    }

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {}
    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {}
}
