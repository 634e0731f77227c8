import Platform

/// Random draws DIHCL needs: weighted sampling without replacement, Gamma and Beta variates.
public enum DIHCLSampling {
    /// Uniform in the open interval (0, 1) from the top 24 bits.
    @inline(__always)
    public static func openUniform(_ generator: inout SeededGenerator) -> Float {
        (Float(generator.next() >> 40) + 0.5) * (1.0 / 16_777_216.0)
    }

    /// Standard normal variate (Box–Muller, one of the pair).
    public static func standardNormal(_ generator: inout SeededGenerator) -> Float {
        let radius = FloatMath.sqrt(-2 * FloatMath.log(openUniform(&generator)))
        return radius * FloatMath.cos(2 * Float.pi * openUniform(&generator))
    }

    /// Gamma(shape, 1) variate: Marsaglia–Tsang squeeze for shape >= 1, and
    /// Gamma(a) = Gamma(a + 1) U^(1/a) below 1.
    public static func gamma(shape: Float, generator: inout SeededGenerator) -> Float {
        let shape = max(shape, 1e-3)
        if shape < 1 {
            let boost = FloatMath.pow(openUniform(&generator), 1 / shape)
            return gamma(shape: shape + 1, generator: &generator) * boost
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / FloatMath.sqrt(9 * d)
        while true {
            var x: Float
            var v: Float
            repeat {
                x = standardNormal(&generator)
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = openUniform(&generator)
            let xx = x * x
            if u < 1 - 0.0331 * xx * xx { return d * v }
            if FloatMath.log(u) < 0.5 * xx + d * (1 - v + FloatMath.log(v)) { return d * v }
        }
    }

    /// Beta(a, b) variate as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
    public static func beta(_ a: Float, _ b: Float, generator: inout SeededGenerator) -> Float {
        let x = gamma(shape: a, generator: &generator)
        let y = gamma(shape: b, generator: &generator)
        let total = x + y
        return total > 0 ? x / total : 0.5
    }

    /// Efraimidis–Spirakis key of an item of weight w = exp(logWeight), in log form: the order of
    /// u^(1/w) equals the order of ln(u)/w, i.e. of logWeight - ln(-ln u) (larger first). The log
    /// form never underflows, so softmax weights can be used as logits directly.
    @inline(__always)
    public static func efraimidisSpirakisKey(logWeight: Float, generator: inout SeededGenerator) -> Float {
        logWeight - FloatMath.log(-FloatMath.log(openUniform(&generator)))
    }

    /// Partitions `order[range]` so its first `count` entries are those with the largest
    /// `keys[order[p]]` (quickselect, Hoare partition, median-of-three pivot; no allocation).
    public static func selectLargest(_ count: Int, keys: [Float], order: inout [Int32], in range: Range<Int>) {
        guard count > 0 && count < range.count else { return }
        let target = range.lowerBound + count - 1
        var low = range.lowerBound
        var high = range.upperBound - 1
        while low < high {
            let middle = low + (high - low) / 2
            let a = keys[Int(order[low])], b = keys[Int(order[middle])], c = keys[Int(order[high])]
            let pivot = max(min(a, b), min(max(a, b), c))
            var i = low
            var j = high
            while i <= j {
                while keys[Int(order[i])] > pivot { i += 1 }
                while keys[Int(order[j])] < pivot { j -= 1 }
                if i <= j {
                    order.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // Now [low, j] >= pivot >= [i, high], and (j, i) holds only the pivot value.
            if target <= j {
                high = j
            } else if target >= i {
                low = i
            } else {
                break
            }
        }
    }

    /// Draws `count` of `weights.count` items without replacement, each draw proportional to the
    /// weights of the items left (Efraimidis–Spirakis: keys u^(1/w), take the top `count`).
    /// `keys` and `order` are work buffers of `weights.count`; the chosen items end in `order[0..<count]`.
    public static func sampleWithoutReplacement(weights: [Float], count: Int, keys: inout [Float],
                                                order: inout [Int32], generator: inout SeededGenerator) {
        for item in 0..<weights.count {
            let logWeight = FloatMath.log(max(weights[item], Float.leastNormalMagnitude))
            keys[item] = efraimidisSpirakisKey(logWeight: logWeight, generator: &generator)
            order[item] = Int32(item)
        }
        selectLargest(count, keys: keys, order: &order, in: 0..<weights.count)
    }
}

extension DIHCLPolicy {
    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        precondition(plan.sampleCount == sampleCount, "DIHCL: plan and policy sample counts differ")
        let episode = episode(ofEpoch: context.epoch)
        beginEpisode(episode, epoch: context.epoch)
        importanceWeighting = false
        if episode == 0 {
            plan.setAll(.train)
            return
        }
        let count = subsetSize(episode: episode)
        let temperature = temperature(episode: episode)
        switch options.selection {
        case .greedy:
            for sample in 0..<sampleCount {
                utility[sample] = hardness[sample]
                keys[sample] = hardness[sample]
            }
        case .proportional:
            for sample in 0..<sampleCount {
                utility[sample] = hardness[sample]
                let logWeight = FloatMath.log(max(hardness[sample], Float.leastNormalMagnitude))
                keys[sample] = DIHCLSampling.efraimidisSpirakisKey(logWeight: logWeight, generator: &generator)
            }
        case .exp3:
            for sample in 0..<sampleCount { utility[sample] = hardness[sample] }
            softmaxKeys(scale: temperature / meanUtility(), generator: &generator)
            importanceDenominators(subsetSize: count)
            importanceWeighting = true
        case .ucb:
            // utility = mean + c mean(means) sqrt(2 ln epochs / visits), then the exp3 softmax.
            let bonus = options.ucbBonus * meanOf(hardness) * FloatMath.sqrt(2 * FloatMath.log(Float(max(epochs, 2))))
            let firstObserved: UInt32 = options.metric == .loss ? 0 : 1
            for sample in 0..<sampleCount {
                let observed = visits[sample] > firstObserved ? visits[sample] - firstObserved : 1
                utility[sample] = hardness[sample] + bonus / FloatMath.sqrt(Float(observed))
            }
            softmaxKeys(scale: temperature / meanUtility(), generator: &generator)
        case .thompson:
            for sample in 0..<sampleCount {
                utility[sample] = DIHCLSampling.beta(betaA[sample], betaB[sample], generator: &generator)
            }
            softmaxKeys(scale: temperature, generator: &generator)
        }
        for sample in 0..<sampleCount { order[sample] = Int32(sample) }
        DIHCLSampling.selectLargest(count, keys: keys, order: &order, in: 0..<sampleCount)
        let kept = applyDiversity(count: count, episode: episode, generator: &generator)

        plan.setAll(.skip)
        for position in 0..<kept {
            plan.actions[Int(order[position])] = SampleAction.train.rawValue
        }
    }

    /// Start-of-episode work: the episode-sum update multiplies all history by the decay once per
    /// episode. A policy restored in the middle of an episode (first plan not at an episode start)
    /// has already had that episode's decay, so it only records the episode.
    mutating func beginEpisode(_ episode: Int, epoch: Int) {
        guard episode > currentEpisode else { return }
        let resumedMidEpisode = currentEpisode < 0 && !startsEpisode(epoch)
        currentEpisode = episode
        guard episode > 0, !resumedMidEpisode, options.update == .episodeSum else { return }
        let decay = options.episodeDecay
        for sample in 0..<sampleCount {
            hardness[sample] *= decay
            betaA[sample] *= decay
            betaB[sample] *= decay
        }
    }

    func meanOf(_ values: [Float]) -> Float {
        var total: Double = 0
        for value in values { total += Double(value) }
        return Float(total / Double(values.count))
    }

    /// mean(utility), or infinity when it is not positive (so tau / mean = 0: uniform sampling).
    func meanUtility() -> Float {
        let mean = meanOf(utility)
        return mean > 0 && mean.isFinite ? mean : .infinity
    }

    /// probability = softmax(scale utility); keys = Efraimidis–Spirakis keys with those logits.
    mutating func softmaxKeys(scale: Float, generator: inout SeededGenerator) {
        let scale = scale.isFinite ? scale : 0
        var largest = -Float.infinity
        for sample in 0..<sampleCount { largest = max(largest, scale * utility[sample]) }
        var total: Double = 0
        for sample in 0..<sampleCount {
            let logit = scale * utility[sample] - largest
            let weight = FloatMath.exp(logit)
            probability[sample] = weight
            total += Double(weight)
            keys[sample] = DIHCLSampling.efraimidisSpirakisKey(logWeight: logit, generator: &generator)
        }
        let inverse = Float(1 / total)
        for sample in 0..<sampleCount { probability[sample] *= inverse }
    }

    /// Turns the draw probabilities p into the exp3 importance denominators: n p, or the inclusion
    /// probability pi = 1 - exp(-t p) with t found by bisection so that sum pi = k.
    mutating func importanceDenominators(subsetSize count: Int) {
        switch options.importanceWeight {
        case .drawProbability:
            let scale = Float(sampleCount)
            for sample in 0..<sampleCount { probability[sample] *= scale }
        case .inclusionProbability:
            func expected(_ t: Double) -> Double {
                var total: Double = 0
                for sample in 0..<sampleCount { total -= FloatMath.expm1(-t * Double(probability[sample])) }
                return total
            }
            let target = Double(count)
            var low: Double = 0
            var high = Double(count)
            var doublings = 0
            while expected(high) < target && doublings < 200 {
                low = high
                high *= 2
                doublings += 1
            }
            for _ in 0..<50 {
                let middle = 0.5 * (low + high)
                if expected(middle) < target { low = middle } else { high = middle }
            }
            for sample in 0..<sampleCount {
                probability[sample] = Float(-FloatMath.expm1(-high * Double(probability[sample])))
            }
        }
    }
}
