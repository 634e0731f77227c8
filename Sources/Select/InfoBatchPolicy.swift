import Platform

/// InfoBatch (ICLR 2024): unbiased random pruning of well-learned samples with loss rescaling.
///
/// Score = the sample's last training loss. Each epoch, samples scored below the mean score
/// are "well learned"; each is kept with probability 1 - r (weight 1/(1 - r) on its loss, so
/// the expected gradient is unchanged) and skipped otherwise. Samples never trained have no
/// score: they always train and stay out of the mean, so the first epoch is full. Pruned
/// samples keep their old score. Everyone trains in the last `annealFraction` of the epochs.
/// Only the below-mean part is pruned, so the realised saving is well below r: read it from
/// the plan counts (`lastPrunedCount`), not from r.
public struct InfoBatchPolicy: SelectionPolicy {
    public let sampleCount: Int
    /// r: the probability that a well-learned sample is pruned, in [0, 1).
    public let ratio: Double
    /// Fraction of the epochs at the end trained on full data.
    public let annealFraction: Double

    private var score: [Float]
    /// 1 once the sample has a training loss.
    private var observed: [UInt8]

    /// Samples pruned by the most recent plan, and how many were below the mean.
    public private(set) var lastPrunedCount = 0
    public private(set) var lastWellLearnedCount = 0

    public init(sampleCount: Int, ratio: Double = 0.5, annealFraction: Double = 0.125) {
        precondition(ratio >= 0 && ratio < 1, "InfoBatch ratio must be in [0, 1)")
        precondition(annealFraction >= 0 && annealFraction <= 1, "InfoBatch annealFraction must be in [0, 1]")
        self.sampleCount = sampleCount
        self.ratio = ratio
        self.annealFraction = annealFraction
        score = [Float](repeating: 0, count: sampleCount)
        observed = [UInt8](repeating: 0, count: sampleCount)
    }

    public var id: PolicyID { .infoBatch }
    public var stateStride: Int { 8 }

    /// The score (last training loss) of sample `index`, nil before its first training forward.
    public func score(_ index: Int) -> Float? { observed[index] != 0 ? score[index] : nil }

    /// True when `epoch` of `epochs` is in the final full-data stretch (InfoBatch's
    /// `epoch >= num_epochs * (1 - delta)`).
    public func isAnnealing(epoch: Int, epochs: Int) -> Bool {
        Double(epoch) >= Double(epochs) * (1 - annealFraction)
    }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        plan.setAll(.train)
        lastPrunedCount = 0
        lastWellLearnedCount = 0
        if isAnnealing(epoch: context.epoch, epochs: context.epochs) { return }
        var sum = 0.0
        var count = 0
        for index in 0..<sampleCount where observed[index] != 0 {
            sum += Double(score[index])
            count += 1
        }
        if count == 0 { return }
        let mean = sum / Double(count)
        let keep = 1 - ratio
        let weight = Float(1 / keep)
        for index in 0..<sampleCount where observed[index] != 0 && Double(score[index]) < mean {
            lastWellLearnedCount += 1
            // A uniform in [0, 1) from the top 53 bits.
            let draw = Double(generator.next() >> 11) * 0x1p-53
            if draw < keep {
                plan.weights[index] = weight
            } else {
                plan.actions[index] = SampleAction.skip.rawValue
                lastPrunedCount += 1
            }
        }
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        for slot in 0..<indices.count {
            let index = Int(indices[slot])
            score[index] = losses[slot]
            observed[index] = 1
        }
    }

    // Record: 0 score Float32, 4 flags u8 (bit 0 observed), 5..<8 zero.
    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        record.storeBytes(of: score[index].bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        record.storeBytes(of: UInt32(observed[index]).littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        score[index] = Float(bitPattern: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        observed[index] = record.load(fromByteOffset: 4, as: UInt8.self) & 1
    }
}
