/// One epoch's work, as ALGORITHMS.md defines it: samples forwarded with gradients (trained),
/// forwarded without gradients only (scored), and not touched (skipped).
///
///     backpropSaved = skipped backward passes / N        (a scored-only sample skipped its backward)
///     computeSaved  = 1 - (3 x trained + 1 x scored) / (3 x N)   (a forward is 1/3 of a train step)
///
/// For Selective Backprop every candidate is `scored` (its selection forward) and the selected
/// ones are also `trained`, so trained + scored + skipped can exceed N there.
public struct EpochAccounting: Equatable {
    public var epoch: Int
    public var sampleCount: Int
    public var trained: Int
    public var scored: Int
    public var skipped: Int
    /// IES: excluded samples that came back this epoch (0 for other policies).
    public var reentries: Int

    public init(epoch: Int, sampleCount: Int, trained: Int, scored: Int, skipped: Int, reentries: Int = 0) {
        self.epoch = epoch
        self.sampleCount = sampleCount
        self.trained = trained
        self.scored = scored
        self.skipped = skipped
        self.reentries = reentries
    }

    /// The counts of a plan as executed (train / score / skip per sample).
    public init(epoch: Int, plan: EpochPlan, reentries: Int = 0) {
        let counts = plan.counts()
        self.init(epoch: epoch, sampleCount: plan.sampleCount, trained: counts.train, scored: counts.score,
                  skipped: counts.skip, reentries: reentries)
    }

    /// Backward passes not run: every sample that was not trained.
    public var skippedBackward: Int { max(0, sampleCount - trained) }

    public var backpropSaved: Double { Accounting.backpropSaved(skippedBackward: skippedBackward, sampleEpochs: sampleCount) }
    public var computeSaved: Double { Accounting.computeSaved(trained: trained, scored: scored, sampleEpochs: sampleCount) }
}

/// Run totals: the sums of the epochs added so far; the denominators are N x epochs run.
public struct RunAccounting: Equatable {
    public private(set) var epochs = 0
    /// Sum over epochs of N (= N x epochs when N is fixed).
    public private(set) var sampleEpochs = 0
    public private(set) var trained = 0
    public private(set) var scored = 0
    public private(set) var skipped = 0
    public private(set) var skippedBackward = 0
    public private(set) var reentries = 0

    public init() {}

    public mutating func add(_ epoch: EpochAccounting) {
        epochs += 1
        sampleEpochs += epoch.sampleCount
        trained += epoch.trained
        scored += epoch.scored
        skipped += epoch.skipped
        skippedBackward += epoch.skippedBackward
        reentries += epoch.reentries
    }

    public var backpropSaved: Double { Accounting.backpropSaved(skippedBackward: skippedBackward, sampleEpochs: sampleEpochs) }
    public var computeSaved: Double { Accounting.computeSaved(trained: trained, scored: scored, sampleEpochs: sampleEpochs) }
    /// Fraction of sample-epochs trained (the budget to give random-remove at equal savings).
    public var trainedFraction: Double { sampleEpochs == 0 ? 1 : Double(trained) / Double(sampleEpochs) }
}

/// The two savings figures.
public enum Accounting {
    /// skipped backward passes / (N x epochs): the figure the papers report.
    public static func backpropSaved(skippedBackward: Int, sampleEpochs: Int) -> Double {
        sampleEpochs == 0 ? 0 : Double(skippedBackward) / Double(sampleEpochs)
    }

    /// 1 - (3 x trained + 1 x scored) / (3 x N x epochs): the honest figure.
    public static func computeSaved(trained: Int, scored: Int, sampleEpochs: Int) -> Double {
        sampleEpochs == 0 ? 0 : 1 - Double(3 * trained + scored) / Double(3 * sampleEpochs)
    }
}
