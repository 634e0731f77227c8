import Platform

/// Selective Backprop (Jiang et al., 2019): forward each batch without gradients, keep each
/// sample with probability P = (percentile of its loss among the last `historySize` losses)^beta,
/// and train the kept ones in compact batches. The first epoch trains everything.
///
/// The percentile of a loss is the fraction of the history (the new loss included) that is
/// <= it, so the largest loss seen lately is always kept. The history is one global ring of
/// recent losses. For the state file each sample also keeps its own `lossesPerSample` newest
/// losses with their positions in the run's stream of losses (32 bytes); a resume rebuilds the
/// ring from the newest `historySize` of them. The rebuilt ring is exactly the saved one when no
/// sample contributed more than `lossesPerSample` of the last `historySize` losses, which holds
/// whenever an epoch has at least historySize / (lossesPerSample - 1) candidates (342 for the
/// default 1024): every candidate adds one loss per epoch. With fewer candidates the ring is
/// rebuilt from the losses kept (fewer than `historySize`). See docs/selection-state.md.
public struct SelectiveBackpropPolicy: SelectionPolicy {
    /// Losses (with their stream positions) kept per sample for the state file.
    public static let lossesPerSample = 4

    public let sampleCount: Int
    /// Selectivity exponent (3 in the paper).
    public let beta: Double
    /// Losses remembered for the percentile (1024 in the paper).
    public let historySize: Int

    private var ring: [Float]
    private var ringCount = 0
    private var ringNext = 0
    private var firstEpochTraining = false
    /// Losses added to the history so far (wraps at 2^32); a loss's position is this count
    /// after adding it, so 0 marks an empty slot.
    private var streamPosition: UInt32 = 0
    /// recentLosses[i * 4 + j], recentPositions[i * 4 + j]: sample i's newest losses, oldest
    /// first, newest at j = 3; position 0 = empty.
    private var recentLosses: [Float]
    private var recentPositions: [UInt32]
    /// Set by `decodeState`: the ring is rebuilt from the per-sample losses before next use.
    private var ringNeedsRebuild = false

    /// Candidates and selections over the run (for the realised selection rate); not
    /// persisted: after a resume they count from the resume.
    public private(set) var candidatesSeen = 0
    public private(set) var candidatesSelected = 0

    public init(sampleCount: Int, beta: Double = 3, historySize: Int = 1024) {
        precondition(beta >= 0, "Selective Backprop beta must not be negative")
        precondition(historySize >= 1, "Selective Backprop historySize must be at least 1")
        self.sampleCount = sampleCount
        self.beta = beta
        self.historySize = historySize
        ring = [Float](repeating: 0, count: historySize)
        recentLosses = [Float](repeating: 0, count: sampleCount * SelectiveBackpropPolicy.lossesPerSample)
        recentPositions = [UInt32](repeating: 0, count: sampleCount * SelectiveBackpropPolicy.lossesPerSample)
    }

    public var id: PolicyID { .selectiveBackprop }
    public var stateStride: Int { 32 }
    public var selectsWithinBatches: Bool { true }

    /// Losses currently in the history.
    public var historyCount: Int { ringCount }

    /// The history oldest first (for tests: a resumed run must hold the same).
    public func historySnapshot() -> [Float] {
        var losses: [Float] = []
        let oldest = ringCount < historySize ? 0 : ringNext
        for offset in 0..<ringCount { losses.append(ring[(oldest + offset) % historySize]) }
        return losses
    }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        if ringNeedsRebuild { rebuildRing() }
        firstEpochTraining = context.epoch == 0
        plan.setAll(firstEpochTraining ? .train : .score)
    }

    /// Adds `loss` to the history, then returns its percentile in (0, 1].
    public mutating func percentileAfterAdding(_ loss: Float) -> Double {
        if ringNeedsRebuild { rebuildRing() }
        ring[ringNext] = loss
        ringNext = ringNext + 1 == historySize ? 0 : ringNext + 1
        if ringCount < historySize { ringCount += 1 }
        streamPosition &+= 1
        var atOrBelow = 0
        for slot in 0..<ringCount where ring[slot] <= loss { atOrBelow += 1 }
        return Double(atOrBelow) / Double(ringCount)
    }

    /// `percentileAfterAdding` for sample `index`'s loss, also kept as the sample's newest.
    mutating func percentileAfterAdding(_ loss: Float, sample index: Int) -> Double {
        let percentile = percentileAfterAdding(loss)
        let base = index * SelectiveBackpropPolicy.lossesPerSample
        for slot in 0..<(SelectiveBackpropPolicy.lossesPerSample - 1) {
            recentLosses[base + slot] = recentLosses[base + slot + 1]
            recentPositions[base + slot] = recentPositions[base + slot + 1]
        }
        recentLosses[base + SelectiveBackpropPolicy.lossesPerSample - 1] = loss
        recentPositions[base + SelectiveBackpropPolicy.lossesPerSample - 1] = streamPosition
        return percentile
    }

    public mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                           selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        for slot in 0..<indices.count {
            let probability = FloatMath.pow(percentileAfterAdding(losses[slot], sample: Int(indices[slot])), beta)
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
        for slot in 0..<indices.count { _ = percentileAfterAdding(losses[slot], sample: Int(indices[slot])) }
    }

    // Record (32 bytes): 4 x (loss f32, stream position u32), oldest first; position 0 = empty.
    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        let base = index * SelectiveBackpropPolicy.lossesPerSample
        for slot in 0..<SelectiveBackpropPolicy.lossesPerSample {
            record.storeBytes(of: recentLosses[base + slot].bitPattern.littleEndian, toByteOffset: slot * 8, as: UInt32.self)
            record.storeBytes(of: recentPositions[base + slot].littleEndian, toByteOffset: slot * 8 + 4, as: UInt32.self)
        }
    }

    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        let base = index * SelectiveBackpropPolicy.lossesPerSample
        for slot in 0..<SelectiveBackpropPolicy.lossesPerSample {
            recentLosses[base + slot] = Float(bitPattern: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: slot * 8, as: UInt32.self)))
            recentPositions[base + slot] = UInt32(littleEndian: record.loadUnaligned(fromByteOffset: slot * 8 + 4, as: UInt32.self))
        }
        ringNeedsRebuild = true
    }

    /// The ring from the newest `historySize` per-sample losses, oldest in slot 0, so the next
    /// loss overwrites the oldest exactly as in the uninterrupted run.
    mutating func rebuildRing() {
        ringNeedsRebuild = false
        var newest: UInt32 = 0
        var found = false
        for position in recentPositions where position != 0 {
            // The newest position is the one the fewest steps behind all others (wrap-safe).
            if !found || position &- newest < 1 << 31 { newest = position }
            found = true
        }
        var entries: [(age: UInt32, loss: Float)] = []
        for slot in 0..<recentPositions.count where recentPositions[slot] != 0 {
            let age = newest &- recentPositions[slot]
            if age < UInt32(historySize) { entries.append((age: age, loss: recentLosses[slot])) }
        }
        entries.sort { $0.age > $1.age }
        ringCount = min(entries.count, historySize)
        for slot in 0..<ringCount { ring[slot] = entries[entries.count - ringCount + slot].loss }
        ringNext = ringCount == historySize ? 0 : ringCount
        streamPosition = newest
    }
}
