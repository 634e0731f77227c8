import Platform

/// Penultimate features of every sample, stored compactly: a row of D features is projected to
/// k = min(D, `width`) numbers by a fixed Gaussian random matrix scaled by 1/sqrt(k)
/// (Johnson-Lindenstrauss: distances and inner products are kept up to a small relative error,
/// which is all centrality and facility location read), k Floats per sample (128 bytes at k = 32;
/// 7.7 MB for 60,000 samples). Rows of samples not yet trained are zero. Allocated once, before
/// training; `observe` writes rows in place.
public final class FeatureStore {
    public static let width = 32
    public let sampleCount: Int
    public let inputDimension: Int
    public let dimension: Int
    public let rows: UnsafeMutablePointer<Float>
    /// [dimension, inputDimension] row-major; empty when dimension == inputDimension (a copy).
    let projection: [Float]

    public init(sampleCount: Int, inputDimension: Int, seed: UInt64 = 0xD1C1_F00D) {
        self.sampleCount = sampleCount
        self.inputDimension = inputDimension
        dimension = min(inputDimension, FeatureStore.width)
        rows = .allocate(capacity: max(sampleCount * dimension, 1))
        rows.initialize(repeating: 0, count: max(sampleCount * dimension, 1))
        if dimension == inputDimension {
            projection = []
        } else {
            var generator = SeededGenerator(seed: seed)
            let scale = 1 / FloatMath.sqrt(Float(dimension))
            var matrix = [Float](repeating: 0, count: dimension * inputDimension)
            for index in 0..<matrix.count {
                // Box-Muller: a standard normal from two uniforms.
                let u = max(generator.uniform(0, 1), 1e-12), v = generator.uniform(0, 1)
                matrix[index] = scale * FloatMath.sqrt(-2 * FloatMath.log(u)) * FloatMath.cos(2 * Float.pi * v)
            }
            projection = matrix
        }
    }

    deinit { rows.deallocate() }

    /// Stores sample `sample`'s projected row from `row` (inputDimension Floats).
    public func observe(sample: Int, row: UnsafePointer<Float>) {
        let destination = rows + sample * dimension
        if projection.isEmpty {
            for column in 0..<dimension { destination[column] = row[column] }
            return
        }
        projection.withUnsafeBufferPointer { matrix in
            for output in 0..<dimension {
                let weights = matrix.baseAddress! + output * inputDimension
                var sum: Float = 0
                for column in 0..<inputDimension { sum += weights[column] * row[column] }
                destination[output] = sum
            }
        }
    }
}

extension DIHCLPolicy {
    public var wantsFeatures: Bool { options.diversity != .none }

    /// Allocates the feature store for features of `dimension` (before training).
    public mutating func prepareFeatures(dimension: Int) {
        guard options.diversity != .none, dimension > 0 else { return }
        if let store = featureStore, store.inputDimension == dimension { return }
        let store = FeatureStore(sampleCount: sampleCount, inputDimension: dimension)
        featureStore = store
        setFeatures(UnsafePointer(store.rows), dimension: store.dimension)
    }

    /// The penultimate features of a trained batch, projected into the store.
    public mutating func observeFeatures(indices: UnsafeBufferPointer<Int32>, rows: UnsafePointer<Float>, dimension: Int) {
        guard let store = featureStore, store.inputDimension == dimension else { return }
        for slot in 0..<indices.count { store.observe(sample: Int(indices[slot]), row: rows + slot * dimension) }
    }

    /// Hands the policy penultimate features: `sampleCount` rows of `dimension` Floats, row i for
    /// sample i. The caller owns the buffer, keeps it alive while the policy plans, and may refresh
    /// its contents between epochs. Only the diversity step reads it.
    public mutating func setFeatures(_ features: UnsafePointer<Float>, dimension: Int) {
        precondition(dimension > 0, "DIHCL: feature dimension must be positive")
        self.features = features
        if featureSum.count != dimension { featureSum = [Float](repeating: 0, count: dimension) }
        featureDimension = dimension
        if options.diversity == .centrality && centrality.count != sampleCount {
            centrality = [Float](repeating: 0, count: sampleCount)
        }
        note = nil
    }

    /// Keeps m = k' |S| of the subset S = order[0..<count] maximising sum u(i) + lambda G(S') and
    /// moves them to order[0..<m]; returns m (or `count` when there is no diversity step).
    /// u is the utility the subset was ranked by, divided by its mean over S so lambda is unitless.
    mutating func applyDiversity(count: Int, episode: Int, generator: inout SeededGenerator) -> Int {
        guard options.diversity != .none else { return count }
        guard let features = features else {
            note = "DIHCL: diversity needs features (setFeatures) and none were set; selecting without diversity"
            return count
        }
        let kept = max(1, min(count, Int(options.diversityFraction * Float(count))))
        var utilityTotal: Double = 0
        for position in 0..<count { utilityTotal += Double(abs(utility[Int(order[position])])) }
        let utilityMean = Float(utilityTotal / Double(count))
        let utilityScale: Float = utilityMean > 0 && utilityMean.isFinite ? 1 / utilityMean : 0
        let lambda = diversityWeight(episode: episode)
        switch options.diversity {
        case .none:
            return count
        case .centrality:
            selectByCentrality(features, count: count, kept: kept, utilityScale: utilityScale, lambda: lambda)
        case .facilityLocation:
            selectByFacilityLocation(features, count: count, kept: kept, utilityScale: utilityScale,
                                     lambda: lambda, generator: &generator)
        }
        return kept
    }

    /// Centrality c_i = sum_j <f_i, f_j> = f_i . (F^T 1), O(n d); modular, so the best subset is the
    /// top m of u_i + lambda c_i / mean|c|.
    mutating func selectByCentrality(_ features: UnsafePointer<Float>, count: Int, kept: Int,
                                     utilityScale: Float, lambda: Float) {
        let dimension = featureDimension
        for column in 0..<dimension { featureSum[column] = 0 }
        for sample in 0..<sampleCount {
            let row = features + sample * dimension
            for column in 0..<dimension { featureSum[column] += row[column] }
        }
        var total: Double = 0
        for sample in 0..<sampleCount {
            let row = features + sample * dimension
            var dot: Float = 0
            for column in 0..<dimension { dot += row[column] * featureSum[column] }
            centrality[sample] = dot
            total += Double(abs(dot))
        }
        let mean = Float(total / Double(sampleCount))
        let centralityScale: Float = mean > 0 && mean.isFinite ? lambda / mean : 0
        for position in 0..<count {
            let sample = Int(order[position])
            keys[sample] = utilityScale * utility[sample] + centralityScale * centrality[sample]
        }
        DIHCLSampling.selectLargest(kept, keys: keys, order: &order, in: 0..<count)
    }

    /// Facility location G(S') = (m / |R|) sum_{j in R} max_{i in S'} sim(i, j) over a random ground
    /// sample R of S (the m / |R| factor puts G on the scale of sum u, about m), with
    /// sim = exp(-|f_i - f_j|^2 / (2 sigma^2)), sigma = mean pairwise distance on random pairs.
    /// Stochastic greedy: each of the m picks evaluates (|S| / m) ln(1 / epsilon) random candidates
    /// left in S and keeps the best marginal gain u_i + lambda (G(S' + i) - G(S')).
    mutating func selectByFacilityLocation(_ features: UnsafePointer<Float>, count: Int, kept: Int,
                                           utilityScale: Float, lambda: Float,
                                           generator: inout SeededGenerator) {
        let dimension = featureDimension
        // Ground sample R: a partial Fisher–Yates shuffle of S (S as a set is unchanged).
        let groundCount = min(groundIndices.count, count)
        for position in 0..<groundCount {
            order.swapAt(position, position + generator.below(count - position))
            groundIndices[position] = order[position]
            groundBest[position] = 0
        }
        var distanceTotal: Double = 0
        let pairs = max(1, options.sigmaPairs)
        for _ in 0..<pairs {
            let first = Int(order[generator.below(count)])
            let second = Int(order[generator.below(count)])
            distanceTotal += Double(FloatMath.sqrt(DIHCLPolicy.squaredDistance(features, first, second, dimension)))
        }
        let sigma = Float(distanceTotal / Double(pairs))
        let inverseWidth: Float = sigma > 0 ? 1 / (2 * sigma * sigma) : 0
        let coverageScale = lambda * Float(kept) / Float(max(groundCount, 1))
        let draws = max(1, Int((Float(count) / Float(kept) * FloatMath.log(1 / max(options.stochasticGreedyEpsilon, 1e-6))).rounded(.up)))

        for step in 0..<kept {
            let remaining = count - step
            let evaluations = min(draws, remaining)
            var bestPosition = step
            var bestGain = -Float.infinity
            for trial in 0..<evaluations {
                let position = step + trial
                order.swapAt(position, position + generator.below(remaining - trial))
                let sample = Int(order[position])
                var coverage: Float = 0
                for ground in 0..<groundCount {
                    let distance = DIHCLPolicy.squaredDistance(features, sample, Int(groundIndices[ground]), dimension)
                    coverage += max(0, FloatMath.exp(-distance * inverseWidth) - groundBest[ground])
                }
                let gain = utilityScale * utility[sample] + coverageScale * coverage
                if gain > bestGain {
                    bestGain = gain
                    bestPosition = position
                }
            }
            order.swapAt(step, bestPosition)
            let chosen = Int(order[step])
            for ground in 0..<groundCount {
                let distance = DIHCLPolicy.squaredDistance(features, chosen, Int(groundIndices[ground]), dimension)
                groundBest[ground] = max(groundBest[ground], FloatMath.exp(-distance * inverseWidth))
            }
        }
    }

    /// |f_a - f_b|^2 over `dimension` columns.
    @inline(__always)
    static func squaredDistance(_ features: UnsafePointer<Float>, _ a: Int, _ b: Int, _ dimension: Int) -> Float {
        let rowA = features + a * dimension
        let rowB = features + b * dimension
        var total: Float = 0
        for column in 0..<dimension {
            let difference = rowA[column] - rowB[column]
            total += difference * difference
        }
        return total
    }
}
