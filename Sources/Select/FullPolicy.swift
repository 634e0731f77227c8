import Platform

/// No selection: every sample trains every epoch. The baseline every other policy is compared with.
public struct FullPolicy: SelectionPolicy {
    public let sampleCount: Int

    public init(sampleCount: Int) {
        self.sampleCount = sampleCount
    }

    public var id: PolicyID { .full }
    public var stateStride: Int { 0 }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        plan.setAll(.train)
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {}

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {}
    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {}
}
