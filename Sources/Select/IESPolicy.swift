import Platform

/// IES, instance-dependent early stopping (ALGORITHMS.md section 1, released code's criterion).
///
/// A sample is *mastered* when its loss has stopped moving: with L the per-sample losses, one
/// per epoch, and D the order-k difference (k = 2: D_t = L_t - 2 L_{t-1} + L_{t-2}),
///     mastered  iff  recorded losses >= 6  and  (|D_t| + |D_{t-1}| + |D_{t-2}|) / 3 < threshold.
/// Order 0 uses the loss itself, 1 first differences, 3 third differences (needs 6 losses).
///
/// Each planned epoch the excluded set is recomputed from scratch over all N (so a sample
/// re-enters as soon as its loss moves again); an empty set means everyone trains. Excluded
/// samples are planned `score` (one eval-mode forward after the epoch's training) so that their
/// loss keeps being recorded. In the last `fullDataLast` fraction of the epochs everyone trains.
///
/// Rescoring every M epochs (`rescoreEvery`, the cadence of the paper's appendix F, made exact):
/// the losses of epoch e enter the history only when e is a *rescoring epoch*, (e + 1) % M == 0;
/// in such an epoch every sample is trained or scored, so every sample gets a loss. The excluded
/// set is recomputed only when planning an epoch e with e % M == 0 (the one after a rescoring
/// epoch) and is kept unchanged in between, its samples skipped. Every criterion is therefore a
/// difference over losses exactly M epochs apart, for trained and excluded samples alike, and a
/// sample excluded at the start of a block is looked at again at its end. The price: the sixth
/// loss arrives in epoch 6M - 1, so nothing can be excluded before epoch 6M (0-based) and M > 1
/// suits long runs. M = 1 is the released code's every-epoch scheme.
///
/// Where the losses come from: `observeTrained` (the sample's own training forward) and
/// `observeScored` (the extra eval-mode pass over excluded samples). At most one loss per
/// sample per epoch: a second one in the same epoch replaces the first.
///
/// When the sixth loss exists (0-based epochs): nothing is excluded in epochs 0...5, so every
/// sample trains and records one loss in each of them; when epoch e is planned, a sample has
/// e losses (those of epochs 0..<e). The sixth loss is the one recorded in epoch 5, so the
/// first plan that can exclude is that of epoch 6, the seventh epoch, and it uses the window
/// L_1...L_5 (order 2) of the losses of epochs 1...5. `minimumLosses` encodes this.
///
/// Per-sample state (32 bytes, `stateStride`): the 6 newest losses as Float32 (a model's
/// per-sample losses are Float32 already; the criterion is evaluated in Float64 from them),
/// the recorded-loss count, the epoch of the newest loss, the re-entry count and the
/// excluded flag. See docs/selection-state.md for the byte layout.
public struct IESPolicy: SelectionPolicy {
    /// Losses kept per sample: order 3 needs 3 + 3 = 6 (order 2 uses the newest 5).
    public static let historyLength = 6
    /// Losses a sample needs before it can be excluded (the released code's rule).
    public static let minimumLosses = 6

    public let sampleCount: Int
    /// Order of the differences: 0 (loss), 1, 2 (default) or 3.
    public let order: Int
    /// delta, in raw loss units (nats); the authors double it for 100 classes.
    public let threshold: Double
    /// Score excluded samples every this many epochs (1 = every epoch).
    public let rescoreEvery: Int
    /// Everyone trains in the last fraction of the epochs (0 = never).
    public let fullDataLast: Double

    /// history[i * 6 + j]: losses oldest to newest, the newest at j = 5.
    private var history: [Float]
    private var recordedCount: [UInt16]
    /// epoch + 1 of the newest recorded loss (0 = none yet).
    private var lastRecordedEpoch: [UInt16]
    private var reentryCount: [UInt16]
    /// 1 when the sample was excluded by the most recent plan.
    private var excludedFlag: [UInt8]

    /// Re-entries in the run so far (each time an excluded sample came back to training by
    /// the criterion; the return of everyone in the full-data-last epochs is not counted).
    public private(set) var totalReentries = 0
    /// Re-entries per planned epoch (index = epoch); 0 for epochs not planned in this process.
    public private(set) var reentriesByEpoch: [Int] = []
    /// Samples excluded by the most recent plan.
    public private(set) var lastExcludedCount = 0
    /// Re-entries counted by the most recent plan (what the loop logs per epoch).
    public private(set) var lastEpochReentries = 0

    public init(sampleCount: Int, order: Int = 2, threshold: Double = 1e-3, rescoreEvery: Int = 1,
                fullDataLast: Double = 0) {
        precondition((0...3).contains(order), "IES order must be 0, 1, 2 or 3")
        precondition(threshold >= 0, "IES threshold must not be negative")
        precondition(rescoreEvery >= 1, "IES rescoreEvery must be at least 1")
        precondition(fullDataLast >= 0 && fullDataLast <= 1, "IES fullDataLast must be in [0, 1]")
        self.sampleCount = sampleCount
        self.order = order
        self.threshold = threshold
        self.rescoreEvery = rescoreEvery
        self.fullDataLast = fullDataLast
        history = [Float](repeating: 0, count: sampleCount * IESPolicy.historyLength)
        recordedCount = [UInt16](repeating: 0, count: sampleCount)
        lastRecordedEpoch = [UInt16](repeating: 0, count: sampleCount)
        reentryCount = [UInt16](repeating: 0, count: sampleCount)
        excludedFlag = [UInt8](repeating: 0, count: sampleCount)
    }

    public var id: PolicyID { .ies }
    public var stateStride: Int { 32 }

    // MARK: - Queries

    /// True when the most recent plan excluded sample `index`.
    public func isExcluded(_ index: Int) -> Bool { excludedFlag[index] != 0 }
    /// Losses recorded for sample `index` (saturates at 65535).
    public func recordedLosses(_ index: Int) -> Int { Int(recordedCount[index]) }
    /// Times sample `index` re-entered training (saturates at 65535).
    public func reentries(_ index: Int) -> Int { Int(reentryCount[index]) }
    /// Re-entries counted by the plan of `epoch` (0 when not planned here).
    public func reentries(epoch: Int) -> Int { epoch < reentriesByEpoch.count ? reentriesByEpoch[epoch] : 0 }

    /// The windowed mean of |k-th differences| for sample `index`, or nil before it has
    /// `minimumLosses` losses.
    public func criterion(_ index: Int) -> Double? {
        if recordedCount[index] < UInt16(IESPolicy.minimumLosses) { return nil }
        let base = index * IESPolicy.historyLength
        // Newest six as Float64: l5 newest.
        let l0 = Double(history[base]), l1 = Double(history[base + 1]), l2 = Double(history[base + 2])
        let l3 = Double(history[base + 3]), l4 = Double(history[base + 4]), l5 = Double(history[base + 5])
        let a: Double, b: Double, c: Double
        switch order {
        case 0: a = l5; b = l4; c = l3
        case 1: a = l5 - l4; b = l4 - l3; c = l3 - l2
        case 2: a = l5 - 2 * l4 + l3; b = l4 - 2 * l3 + l2; c = l3 - 2 * l2 + l1
        default: a = l5 - 3 * l4 + 3 * l3 - l2; b = l4 - 3 * l3 + 3 * l2 - l1; c = l3 - 3 * l2 + 3 * l1 - l0
        }
        return (abs(a) + abs(b) + abs(c)) / 3
    }

    /// True when the full-data-last annealing makes everyone train in `epoch` of `epochs`.
    public func isAnnealing(epoch: Int, epochs: Int) -> Bool {
        fullDataLast > 0 && Double(epoch) >= Double(epochs) * (1 - fullDataLast)
    }

    // MARK: - SelectionPolicy

    /// True when the losses of `epoch` enter the history (every M-th epoch, the last of each block).
    public func isRescoringEpoch(_ epoch: Int) -> Bool { (epoch + 1) % rescoreEvery == 0 }

    /// True when the plan of `epoch` recomputes the excluded set (the first epoch of each block).
    public func decidesIn(_ epoch: Int) -> Bool { epoch % rescoreEvery == 0 }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        let epoch = context.epoch
        let annealing = isAnnealing(epoch: epoch, epochs: context.epochs)
        let excludedAction: SampleAction = isRescoringEpoch(epoch) ? .score : .skip
        let deciding = decidesIn(epoch)
        var reentered = 0
        var excluded = 0
        for index in 0..<sampleCount {
            plan.weights[index] = 1
            var mastered = false
            if annealing {
                mastered = false
            } else if deciding {
                if let value = criterion(index) { mastered = value < threshold }
            } else {
                mastered = excludedFlag[index] != 0  // inside a block the set does not change
            }
            if mastered {
                excludedFlag[index] = 1
                plan.actions[index] = excludedAction.rawValue
                excluded += 1
            } else {
                if excludedFlag[index] != 0 && !annealing {
                    reentered += 1
                    if reentryCount[index] < UInt16.max { reentryCount[index] += 1 }
                }
                excludedFlag[index] = 0
                plan.actions[index] = SampleAction.train.rawValue
            }
        }
        lastExcludedCount = excluded
        lastEpochReentries = reentered
        totalReentries += reentered
        while reentriesByEpoch.count <= epoch { reentriesByEpoch.append(0) }
        reentriesByEpoch[epoch] = reentered
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        // Only a rescoring epoch's losses enter the history (equally spaced, M epochs apart).
        guard isRescoringEpoch(epoch) else { return }
        for slot in 0..<indices.count { record(Int(indices[slot]), loss: losses[slot], epoch: epoch) }
    }

    public mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                       correct: UnsafePointer<UInt8>, epoch: Int) {
        guard isRescoringEpoch(epoch) else { return }
        for slot in 0..<indices.count { record(Int(indices[slot]), loss: losses[slot], epoch: epoch) }
    }

    /// Appends one loss (or replaces this epoch's loss if the sample already has one).
    public mutating func record(_ index: Int, loss: Float, epoch: Int) {
        let base = index * IESPolicy.historyLength
        let tag = UInt16(clamping: epoch + 1)
        if lastRecordedEpoch[index] == tag && recordedCount[index] > 0 {
            history[base + IESPolicy.historyLength - 1] = loss
            return
        }
        for slot in 0..<(IESPolicy.historyLength - 1) { history[base + slot] = history[base + slot + 1] }
        history[base + IESPolicy.historyLength - 1] = loss
        if recordedCount[index] < UInt16.max { recordedCount[index] += 1 }
        lastRecordedEpoch[index] = tag
    }

    // Record layout: 0..<24 six Float32 losses (oldest first), 24 recorded count u16,
    // 26 epoch+1 of the newest loss u16, 28 re-entries u16, 30 flags u8 (bit 0 excluded), 31 zero.
    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        let base = index * IESPolicy.historyLength
        for slot in 0..<IESPolicy.historyLength {
            record.storeBytes(of: history[base + slot].bitPattern.littleEndian, toByteOffset: slot * 4, as: UInt32.self)
        }
        record.storeBytes(of: recordedCount[index].littleEndian, toByteOffset: 24, as: UInt16.self)
        record.storeBytes(of: lastRecordedEpoch[index].littleEndian, toByteOffset: 26, as: UInt16.self)
        record.storeBytes(of: reentryCount[index].littleEndian, toByteOffset: 28, as: UInt16.self)
        record.storeBytes(of: excludedFlag[index], toByteOffset: 30, as: UInt8.self)
        record.storeBytes(of: UInt8(0), toByteOffset: 31, as: UInt8.self)
    }

    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        let base = index * IESPolicy.historyLength
        for slot in 0..<IESPolicy.historyLength {
            let bits = UInt32(littleEndian: record.loadUnaligned(fromByteOffset: slot * 4, as: UInt32.self))
            history[base + slot] = Float(bitPattern: bits)
        }
        recordedCount[index] = UInt16(littleEndian: record.loadUnaligned(fromByteOffset: 24, as: UInt16.self))
        lastRecordedEpoch[index] = UInt16(littleEndian: record.loadUnaligned(fromByteOffset: 26, as: UInt16.self))
        // Keep the run total equal to the sum of the per-sample counts.
        let reentries = UInt16(littleEndian: record.loadUnaligned(fromByteOffset: 28, as: UInt16.self))
        totalReentries += Int(reentries) - Int(reentryCount[index])
        reentryCount[index] = reentries
        excludedFlag[index] = record.load(fromByteOffset: 30, as: UInt8.self) & 1
    }
}
