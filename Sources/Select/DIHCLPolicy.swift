import Platform

/// Options of DIHCL (Dynamic Instance Hardness Curriculum Learning, ALGORITHMS.md section 2).
/// Defaults follow the authors' released code; the paper's formulation is reachable by options.
public struct DIHCLOptions {
    /// Instantaneous hardness a_t(i) of a trained sample.
    public enum Metric: UInt8 {
        /// loss / lr of the step.
        case loss = 0
        /// |loss now - loss at the previous visit| / (sum of step rates since that visit).
        case lossChange = 1
        /// 1 if the correctness flipped since the previous visit, / (sum of step rates since then).
        case flip = 2
    }

    /// How observations accumulate into the dynamic instance hardness r(i).
    public enum Update: UInt8 {
        /// r <- g a + (1 - g) r for trained samples (paper Eq. 1); r starts at 1.
        case exponentialAverage = 0
        /// r <- r + a for trained samples, and all history (r, Beta A and B) x `episodeDecay`
        /// once per episode (released code); r starts at 0 as the code's accumulators do.
        case episodeSum = 1
    }

    /// How the epoch's subset is drawn from the hardness.
    public enum Selection: UInt8 {
        /// Top-k by r (paper Alg. 1).
        case greedy = 0
        /// k without replacement, probability proportional to r.
        case proportional = 1
        /// k without replacement, probability softmax(tau r / mean r); observations importance-weighted.
        case exp3 = 2
        /// Softmax sampling of (mean observation + exploration bonus), as the code does for UCB.
        case ucb = 3
        /// Thompson sampling of flips: draw Beta(A, B), then softmax sampling of the draws (code).
        case thompson = 4
    }

    /// What exp3 divides a trained sample's observation by.
    public enum ImportanceWeight: UInt8 {
        /// The single-draw probability p_i, relative to uniform (n p_i), as paper and code do.
        case drawProbability = 0
        /// The probability that i is in the k-subset, pi_i ~ 1 - exp(-t p_i) with t such that
        /// sum pi = k (successive-sampling approximation): unbiased for a subset draw, and close to
        /// 1 when k is close to n, where n p_i would inflate unlikely-but-included samples.
        case inclusionProbability = 1
    }

    /// Optional diversity step after the subset is chosen.
    public enum Diversity: UInt8 {
        case none = 0
        /// Modular score f_i . (F^T 1) on penultimate features.
        case centrality = 1
        /// Facility location with an RBF similarity, stochastic greedy.
        case facilityLocation = 2
    }

    /// Default `lossChange`: the code's feedback unless `--use_loss_as_feedback` is given.
    public var metric: Metric = .lossChange
    /// Default `episodeSum`: the code's accumulation (the paper's EMA is the option).
    public var update: Update = .episodeSum
    /// Default `exp3`: the code's default bandit.
    public var selection: Selection = .exp3
    public var diversity: Diversity = .none
    public var importanceWeight: ImportanceWeight = .drawProbability

    /// Warm start T0: epochs on all data before any selection.
    public var warmStartEpochs = 5
    /// Episode boundaries of the reference 300-epoch run; the first is the reference warm start,
    /// the last the reference length. Rescaled to the run (see `DIHCLPolicy.scaleBoundaries`).
    public var referenceBoundaries: [Int] = [5, 10, 15, 20, 30, 40, 60, 90, 140, 210, 300]

    /// g of the exponential average.
    public var averageWeight: Float = 0.95
    /// Factor on all history once per episode (episode-sum update).
    public var episodeDecay: Float = 0.9
    /// Subset fraction after episode e >= 1: max(floor, shrink^e). Code 0.9 / 0.3; paper 0.85 / 0.2.
    public var subsetShrink: Float = 0.9
    public var subsetFloor: Float = 0.3
    /// Softmax inverse temperature tau: start x decay^e per episode e, never below the floor.
    public var temperatureStart: Float = 20
    public var temperatureDecay: Float = 0.8
    public var temperatureFloor: Float = 1
    /// Largest importance weight 1/(n p) (relative to a uniform draw) or 1/pi. The code adds 1e-8 to p,
    /// which caps it at 1e8/n, i.e. 2000 on CIFAR; a cap also keeps r finite in Float32.
    public var importanceWeightCap: Float = 2000
    /// UCB bonus c: utility = mean + c * mean(means) * sqrt(2 ln epochs / visits) (code: 1e-3).
    public var ucbBonus: Float = 1e-3
    /// Initial A and B of the Beta posterior of flips.
    public var betaPrior: Float = 2
    /// |loss change| is clipped here before normalisation (code: 10).
    public var lossChangeClip: Float = 10

    /// k': the diversity step keeps this fraction of the chosen subset.
    public var diversityFraction: Float = 0.4
    /// lambda of r + lambda G(S): start x decay per episode after the warm start.
    public var diversityWeight: Float = 1
    public var diversityWeightDecay: Float = 0.8
    /// Facility location is measured on this many ground samples drawn from the subset (bounds
    /// memory and time: one step costs ground x dimension per candidate).
    public var facilityGroundSample = 512
    /// Stochastic greedy evaluates (|S| / m) ln(1 / epsilon) random candidates per pick.
    public var stochasticGreedyEpsilon: Float = 0.1
    /// Pairs drawn to estimate sigma (mean pairwise distance) of the RBF similarity.
    public var sigmaPairs = 512

    public init() {}

    /// The paper's schedule: x0.85 per episode to a floor of 0.2 n.
    public mutating func usePaperSchedule() {
        subsetShrink = 0.85
        subsetFloor = 0.2
    }

    /// The paper's method (Algorithm 1, equations 1-3): r <- 0.95 a + 0.05 r from r = 1
    /// (paper-ema), the subset x0.85 per episode to 0.2 n, DIHCL-Exp sampling (exp3). The
    /// learning rate restarts a cosine in every episode: the caller sets that schedule.
    public mutating func usePaperPreset() {
        update = .exponentialAverage
        selection = .exp3
        usePaperSchedule()
    }

    /// The authors' released code as Leitner reproduces it (the defaults): observations summed
    /// and all history x0.9 per episode (episode-sum), the subset x0.9 per episode to 0.3 n,
    /// exp3 sampling with importance-weighted observations.
    public mutating func useCodePreset() {
        self = DIHCLOptions()
    }

    /// The episode boundaries of a run of `epochs` (warm start first, the run's end last).
    public func boundaries(epochs: Int) -> [Int] {
        DIHCLPolicy.scaleBoundaries(referenceBoundaries, warmStart: warmStartEpochs, epochs: epochs)
    }
}

/// DIHCL: keep a running hardness per sample, updated only from the training forward of the
/// samples that were trained (no extra inference), and train mostly on the hard ones.
public struct DIHCLPolicy: SelectionPolicy {
    public let sampleCount: Int
    public let epochs: Int
    public let options: DIHCLOptions
    /// Epochs at which an episode starts: [T0, ...]; the last entry is `epochs` (run end).
    public let boundaries: [Int]

    // Per-sample state (persisted, 32 bytes a record).
    var hardness: [Float]
    var previousLoss: [Float]
    var rateSumAtVisit: [Double]
    var betaA: [Float]
    var betaB: [Float]
    var visits: [UInt32]
    var previousCorrect: [UInt8]

    // Work buffers, allocated once.
    /// Importance denominator of each sample in the current epoch (exp3): n p_i or pi_i.
    var probability: [Float]
    /// Selection key of each sample (larger is chosen first).
    var keys: [Float]
    /// Utility each sample was ranked by (r, UCB score or Beta draw), for the diversity step.
    var utility: [Float]
    /// Sample indices, partitioned so the chosen subset comes first.
    var order: [Int32]

    /// Sum of the learning rates of all steps taken so far.
    var rateSum: Double = 0
    /// Episode whose start-of-episode work (history decay) has been done; -1 before the first plan.
    var currentEpisode = -1
    /// Selection probabilities of the current epoch are non-uniform importance weights.
    var importanceWeighting = false

    // Diversity (see DIHCL+Diversity.swift).
    var features: UnsafePointer<Float>? = nil
    var featureDimension = 0
    var featureSum: [Float] = []
    var centrality: [Float] = []
    var groundIndices: [Int32]
    var groundBest: [Float]
    /// The features the training loop hands over (`observeFeatures`), projected and kept here.
    public internal(set) var featureStore: FeatureStore? = nil
    /// Why a requested option could not be applied (e.g. diversity without features), or nil.
    public internal(set) var note: String? = nil

    public var id: PolicyID { .dihcl }
    public var stateStride: Int { 32 }

    public init(sampleCount: Int, epochs: Int, options: DIHCLOptions = DIHCLOptions()) {
        precondition(sampleCount > 0 && epochs > 0, "DIHCL needs samples and epochs")
        self.sampleCount = sampleCount
        self.epochs = epochs
        self.options = options
        boundaries = DIHCLPolicy.scaleBoundaries(options.referenceBoundaries,
                                                 warmStart: options.warmStartEpochs, epochs: epochs)
        let initialHardness: Float = options.update == .exponentialAverage ? 1 : 0
        hardness = [Float](repeating: initialHardness, count: sampleCount)
        previousLoss = [Float](repeating: 0, count: sampleCount)
        rateSumAtVisit = [Double](repeating: 0, count: sampleCount)
        betaA = [Float](repeating: options.betaPrior, count: sampleCount)
        betaB = [Float](repeating: options.betaPrior, count: sampleCount)
        visits = [UInt32](repeating: 0, count: sampleCount)
        previousCorrect = [UInt8](repeating: 0, count: sampleCount)
        probability = [Float](repeating: 1 / Float(sampleCount), count: sampleCount)
        keys = [Float](repeating: 0, count: sampleCount)
        utility = [Float](repeating: 0, count: sampleCount)
        order = [Int32](repeating: 0, count: sampleCount)
        let ground = options.diversity == .facilityLocation ? max(1, options.facilityGroundSample) : 0
        groundIndices = [Int32](repeating: 0, count: ground)
        groundBest = [Float](repeating: 0, count: ground)
    }

    // MARK: Schedule

    /// Rescales the reference boundaries (warm start first, run length last) to a run of `epochs`.
    /// The warm start keeps its own length T0 = min(warmStart, epochs); every later reference
    /// boundary b maps affinely from [b_first, b_last] onto [T0, epochs]:
    ///     b' = T0 + round((b - b_first) * (epochs - T0) / (b_last - b_first)),
    /// and boundaries that collide after rounding are dropped (a short run has fewer episodes).
    /// For 300 epochs and T0 = 5 this is the identity.
    public static func scaleBoundaries(_ reference: [Int], warmStart: Int, epochs: Int) -> [Int] {
        let start = min(max(warmStart, 0), epochs)
        var result = [start]
        guard let first = reference.first, let last = reference.last, last > first, epochs > start else {
            if epochs > start { result.append(epochs) }
            return result
        }
        let span = Double(epochs - start) / Double(last - first)
        for boundary in reference.dropFirst() {
            let scaled = start + Int((Double(boundary - first) * span).rounded())
            if scaled > result[result.count - 1] && scaled <= epochs { result.append(scaled) }
        }
        if result[result.count - 1] != epochs { result.append(epochs) }
        return result
    }

    /// Episode of an epoch: 0 is the warm start, e >= 1 the e-th selective episode.
    public func episode(ofEpoch epoch: Int) -> Int {
        var episode = 0
        for boundary in boundaries.dropLast() where epoch >= boundary { episode += 1 }
        return episode
    }

    /// True for the first epoch of an episode.
    func startsEpisode(_ epoch: Int) -> Bool {
        epoch == 0 || boundaries.dropLast().contains(epoch)
    }

    /// Fraction of the data selected in episode e: 1 in the warm start, then max(floor, shrink^e).
    public func subsetFraction(episode: Int) -> Float {
        if episode <= 0 { return 1 }
        return max(options.subsetFloor, DIHCLPolicy.power(options.subsetShrink, episode))
    }

    /// Samples trained in an epoch of episode e (before the diversity step): floor(fraction n), >= 1.
    public func subsetSize(episode: Int) -> Int {
        if episode <= 0 { return sampleCount }
        return min(sampleCount, max(1, Int(subsetFraction(episode: episode) * Float(sampleCount))))
    }

    /// Softmax inverse temperature of episode e: max(floor, start x decay^e).
    public func temperature(episode: Int) -> Float {
        max(options.temperatureFloor, options.temperatureStart * DIHCLPolicy.power(options.temperatureDecay, max(episode, 0)))
    }

    /// lambda of the diversity objective in episode e >= 1: weight x decay^(e - 1).
    public func diversityWeight(episode: Int) -> Float {
        options.diversityWeight * DIHCLPolicy.power(options.diversityWeightDecay, max(episode - 1, 0))
    }

    /// Dynamic instance hardness r(i).
    public func hardness(of index: Int) -> Float { hardness[index] }
    /// Beta posterior (A, B) of sample i's flips.
    public func betaParameters(of index: Int) -> (a: Float, b: Float) { (betaA[index], betaB[index]) }
    /// Training visits of sample i.
    public func visitCount(of index: Int) -> Int { Int(visits[index]) }

    // MARK: Observations

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        let rate = Float(max(learningRate, 1e-12))
        rateSum += learningRate
        for slot in 0..<indices.count {
            let sample = Int(indices[slot])
            let loss = losses[slot]
            let isCorrect: UInt8 = correct[slot] != 0 ? 1 : 0
            let firstVisit = visits[sample] == 0
            // Rates of the steps after the previous visit's step up to this one: as many steps as
            // the updates the loss change reflects (the previous step's to the one before this),
            // and the sum at a visit includes that visit's step, so a restore recovers it exactly.
            var pace = Float(rateSum - rateSumAtVisit[sample])
            if !(pace > 0) { pace = rate }
            let flipped: Float = firstVisit ? 0 : (isCorrect != previousCorrect[sample] ? 1 : 0)

            var observation: Float? = nil
            switch options.metric {
            case .loss:
                observation = loss / rate
            case .lossChange:
                if !firstVisit {
                    observation = min(abs(loss - previousLoss[sample]), options.lossChangeClip) / pace
                }
            case .flip:
                if !firstVisit { observation = flipped / pace }
            }
            if !firstVisit {
                betaA[sample] += flipped
                betaB[sample] += 1 - flipped
            }
            visits[sample] &+= 1

            if var value = observation {
                if importanceWeighting {
                    // exp3: an unbiased estimate divides by the sampling probability, taken relative
                    // to a uniform draw so warm-start and selective observations share a scale.
                    value *= min(options.importanceWeightCap, 1 / max(probability[sample], 1e-30))
                }
                accumulate(value, into: sample)
            }
            previousLoss[sample] = loss
            previousCorrect[sample] = isCorrect
            rateSumAtVisit[sample] = rateSum
        }
    }

    mutating func accumulate(_ observation: Float, into sample: Int) {
        if options.selection == .ucb {
            // UCB ranks by the mean observation; visits count observations since the first visit
            // for the change metrics, which have none on the first visit.
            let observed = options.metric == .loss ? visits[sample] : visits[sample] &- 1
            hardness[sample] += (observation - hardness[sample]) / Float(max(observed, 1))
            return
        }
        switch options.update {
        case .exponentialAverage:
            let weight = options.averageWeight
            hardness[sample] = weight * observation + (1 - weight) * hardness[sample]
        case .episodeSum:
            hardness[sample] += observation
        }
    }

    // MARK: State

    /// Record layout (little-endian): r f32 @0, previous loss f32 @4, lr-sum at last visit f64 @8,
    /// Beta A f32 @16, Beta B f32 @20, visits u32 @24, previous correctness u8 @28, 3 bytes zero.
    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        record.storeBytes(of: hardness[index].bitPattern.littleEndian, toByteOffset: 0, as: UInt32.self)
        record.storeBytes(of: previousLoss[index].bitPattern.littleEndian, toByteOffset: 4, as: UInt32.self)
        record.storeBytes(of: rateSumAtVisit[index].bitPattern.littleEndian, toByteOffset: 8, as: UInt64.self)
        record.storeBytes(of: betaA[index].bitPattern.littleEndian, toByteOffset: 16, as: UInt32.self)
        record.storeBytes(of: betaB[index].bitPattern.littleEndian, toByteOffset: 20, as: UInt32.self)
        record.storeBytes(of: visits[index].littleEndian, toByteOffset: 24, as: UInt32.self)
        record.storeBytes(of: previousCorrect[index], toByteOffset: 28, as: UInt8.self)
        for offset in 29..<32 { record.storeBytes(of: UInt8(0), toByteOffset: offset, as: UInt8.self) }
    }

    /// Restores a record. The global lr sum is not per-sample state: it is recovered as the largest
    /// lr-sum at a visit, which is the sum after the last step taken (that step's samples record it).
    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        hardness[index] = Float(bitPattern: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        previousLoss[index] = Float(bitPattern: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        rateSumAtVisit[index] = Double(bitPattern: UInt64(littleEndian: record.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        betaA[index] = Float(bitPattern: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
        betaB[index] = Float(bitPattern: UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 20, as: UInt32.self)))
        visits[index] = UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
        previousCorrect[index] = record.load(fromByteOffset: 28, as: UInt8.self)
        rateSum = max(rateSum, rateSumAtVisit[index])
    }
}

extension DIHCLPolicy {
    /// x^n for a small non-negative integer n, without libm.
    static func power(_ base: Float, _ exponent: Int) -> Float {
        var result: Float = 1
        var count = exponent
        while count > 0 {
            result *= base
            count -= 1
        }
        return result
    }
}
