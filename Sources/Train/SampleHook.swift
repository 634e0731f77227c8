/// What the training loop tells a per-sample observer (the selection policies plug in here):
/// each trained sample's index, its loss and correctness from the training forward (train mode,
/// augmented input, before that batch's optimizer step), and the learning rate of that step.
public protocol SampleHook {
    mutating func observeTrained(
        indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
        epoch: Int, learningRate: Double)
}

/// The hook that observes nothing (plain full-data training).
public struct NoSampleHook: SampleHook {
    public init() {}
    public mutating func observeTrained(
        indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
        epoch: Int, learningRate: Double) {}
}
