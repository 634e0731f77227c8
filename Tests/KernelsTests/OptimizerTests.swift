import Testing
import Kernels

/// SGD and AdamW against hand-computed PyTorch steps and independent Double recurrences, and
/// their SIMD paths against the naive twins. (PyTorch is not required: the formulas of
/// torch.optim.SGD / torch.optim.AdamW are restated in each test.)
@Suite struct OptimizerTests {
    // MARK: SGD, hand-computed

    /// torch.optim.SGD: g = grad + wd*w; buf = (first ? g : mu*buf + (1-dampening)*g);
    /// g = nesterov ? g + mu*buf : buf; w -= lr*g.
    static func sgdTwoSteps(momentum: Double, dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool,
                            fast: Bool) -> (Float, Float) {
        var w: [Float] = [1]
        var buffer: [Float] = [123]  // must be ignored on the first step
        var after: [Float] = []
        for step in 0..<2 {
            if fast {
                SGD.step(weights: &w, momentumBuffer: &buffer, gradients: [0.5], count: 1, learningRate: 0.1,
                         momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, firstStep: step == 0)
            } else {
                SGD.naiveStep(weights: &w, momentumBuffer: &buffer, gradients: [Float(0.5)], count: 1, learningRate: 0.1,
                              momentum: momentum, dampening: dampening, weightDecay: weightDecay, nesterov: nesterov, firstStep: step == 0)
            }
            after.append(w[0])
        }
        return (after[0], after[1])
    }

    @Test func sgdHandComputedSteps() {
        for fast in [true, false] {
            // Momentum 0.9, w = 1, g = 0.5, lr = 0.1: buf = 0.5, w = 0.95; buf = 0.45 + 0.5 = 0.95, w = 0.855.
            let (a1, a2) = Self.sgdTwoSteps(momentum: 0.9, nesterov: false, fast: fast)
            #expect(abs(a1 - 0.95) < 1e-6 && abs(a2 - 0.855) < 1e-6, "momentum: \(a1) \(a2)")
            // Nesterov: step 1 d = 0.5 + 0.9*0.5 = 0.95, w = 0.905; step 2 buf = 0.95,
            // d = 0.5 + 0.855 = 1.355, w = 0.7695.
            let (b1, b2) = Self.sgdTwoSteps(momentum: 0.9, nesterov: true, fast: fast)
            #expect(abs(b1 - 0.905) < 1e-6 && abs(b2 - 0.7695) < 1e-6, "nesterov: \(b1) \(b2)")
            // Dampening 0.5 is not applied on the first step (buf = g): w = 0.95;
            // then buf = 0.45 + 0.25 = 0.7, w = 0.88.
            let (c1, c2) = Self.sgdTwoSteps(momentum: 0.9, dampening: 0.5, nesterov: false, fast: fast)
            #expect(abs(c1 - 0.95) < 1e-6 && abs(c2 - 0.88) < 1e-6, "dampening: \(c1) \(c2)")
            // Weight decay 0.1 without momentum: g = 0.5 + 0.1 = 0.6, w = 0.94; g = 0.5 + 0.094, w = 0.8806.
            let (d1, d2) = Self.sgdTwoSteps(momentum: 0, weightDecay: 0.1, nesterov: false, fast: fast)
            #expect(abs(d1 - 0.94) < 1e-6 && abs(d2 - 0.8806) < 1e-6, "weight decay: \(d1) \(d2)")
        }
        // Without momentum the buffer may be nil.
        var w: [Float] = [1, 2]
        SGD.step(weights: &w, momentumBuffer: nil, gradients: [1, -1], count: 2, learningRate: 0.5, firstStep: true)
        #expect(w == [0.5, 2.5])
    }

    /// Ten steps of momentum + Nesterov + weight decay + dampening on a vector, against the
    /// recurrence written out in Double.
    @Test func sgdMatchesDoubleRecurrence() {
        let count = 19
        var random = SeededRandom(seed: 1)
        var w = random.floats(count)
        var buffer = [Float](repeating: 0, count: count)
        var wD = w.map(Double.init)
        var bufD = [Double](repeating: 0, count: count)
        let lr = 0.05, mu = 0.9, dampening = 0.1, decay = 5e-4
        for step in 0..<10 {
            let g = random.floats(count)
            SGD.step(weights: &w, momentumBuffer: &buffer, gradients: g, count: count, learningRate: lr, momentum: mu,
                     dampening: dampening, weightDecay: decay, nesterov: true, firstStep: step == 0)
            for index in 0..<count {
                let d = Double(g[index]) + decay * wD[index]
                bufD[index] = step == 0 ? d : mu * bufD[index] + (1 - dampening) * d
                wD[index] -= lr * (d + mu * bufD[index])
            }
        }
        for index in 0..<count {
            #expect(abs(Double(w[index]) - wD[index]) < 1e-5, "index \(index): \(w[index]) vs \(wD[index])")
        }
    }

    // MARK: AdamW, hand-computed

    /// torch.optim.AdamW: w *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    /// mhat = m / (1 - b1^t); vhat = v / (1 - b2^t); w -= lr * mhat / (sqrt(vhat) + eps).
    @Test func adamWHandComputedSteps() {
        for fast in [true, false] {
            var w: [Float] = [1]
            var m: [Float] = [0]
            var v: [Float] = [0]
            func step(_ gradient: Float, _ t: Int) {
                if fast {
                    AdamW.step(weights: &w, firstMoment: &m, secondMoment: &v, gradients: [gradient], count: 1,
                               learningRate: 1e-3, weightDecay: 0.01, step: t)
                } else {
                    AdamW.naiveStep(weights: &w, firstMoment: &m, secondMoment: &v, gradients: [gradient], count: 1,
                                    learningRate: 1e-3, weightDecay: 0.01, step: t)
                }
            }
            // Step 1, g = 0.5: w = 1 - 1e-5 = 0.99999; mhat = 0.5, sqrt(vhat) = 0.5,
            // so w -= 1e-3 * 0.5 / (0.5 + 1e-8) = 0.00099999998 -> 0.99899000002.
            step(0.5, 1)
            #expect(abs(Double(w[0]) - 0.99899000002) < 1e-7, "AdamW step 1: \(w[0])")
            // Relative 1e-6: 1 - b2 is formed in Double (PyTorch), not as 1 - Float(0.999).
            #expect(abs(m[0] - 0.05) < 0.05e-6 && abs(v[0] - 0.00025) < 0.00025e-6, "m \(m[0]) v \(v[0])")
            // Step 2, g = -0.25, written out in Double.
            step(-0.25, 2)
            var expected = 0.99899000002 * (1 - 1e-3 * 0.01)
            let m2 = 0.9 * 0.05 + 0.1 * -0.25           // 0.02
            let v2 = 0.999 * 0.00025 + 0.001 * 0.0625   // 0.00031225
            let mhat = m2 / (1 - 0.9 * 0.9)
            let vhat = v2 / (1 - 0.999 * 0.999)
            expected -= 1e-3 * mhat / (vhat.squareRoot() + 1e-8)
            #expect(abs(Double(w[0]) - expected) < 1e-7, "AdamW step 2: \(w[0]) vs \(expected)")
            #expect(abs(Double(m[0]) - m2) < 1e-6 * abs(m2) && abs(Double(v[0]) - v2) < 1e-6 * v2, "m \(m[0]) v \(v[0])")
        }
    }

    /// Twenty AdamW steps on a vector against the textbook recurrence in Double.
    @Test func adamWMatchesDoubleRecurrence() {
        let count = 21
        var random = SeededRandom(seed: 2)
        var w = random.floats(count)
        var m = [Float](repeating: 0, count: count), v = m
        var wD = w.map(Double.init)
        var mD = [Double](repeating: 0, count: count), vD = mD
        let lr = 3e-3, b1 = 0.9, b2 = 0.99, eps = 1e-8, decay = 0.05
        var b1t = 1.0, b2t = 1.0
        for t in 1...20 {
            let g = random.floats(count)
            AdamW.step(weights: &w, firstMoment: &m, secondMoment: &v, gradients: g, count: count, learningRate: lr,
                       beta1: b1, beta2: b2, epsilon: eps, weightDecay: decay, step: t)
            b1t *= b1
            b2t *= b2
            for index in 0..<count {
                let gd = Double(g[index])
                wD[index] *= 1 - lr * decay
                mD[index] = b1 * mD[index] + (1 - b1) * gd
                vD[index] = b2 * vD[index] + (1 - b2) * gd * gd
                wD[index] -= lr * (mD[index] / (1 - b1t)) / ((vD[index] / (1 - b2t)).squareRoot() + eps)
            }
        }
        for index in 0..<count {
            #expect(abs(Double(w[index]) - wD[index]) < 1e-5, "index \(index): \(w[index]) vs \(wD[index])")
        }
    }

    // MARK: SIMD against the twins

    @Test func sgdMatchesTwin() {
        struct Config { let momentum: Double, dampening: Double, decay: Double, nesterov: Bool, first: Bool }
        let configs = [
            Config(momentum: 0, dampening: 0, decay: 0, nesterov: false, first: true),
            Config(momentum: 0, dampening: 0, decay: 5e-4, nesterov: false, first: false),
            Config(momentum: 0.9, dampening: 0, decay: 5e-4, nesterov: false, first: true),
            Config(momentum: 0.9, dampening: 0, decay: 5e-4, nesterov: false, first: false),
            Config(momentum: 0.9, dampening: 0.1, decay: 1e-2, nesterov: true, first: false),
            Config(momentum: 0.5, dampening: 0, decay: 0, nesterov: true, first: true),
        ]
        for (seed, count) in (oddSizes + [1000]).enumerated() {
            var random = SeededRandom(seed: UInt64(seed))
            let gradients = random.floats(count)
            for config in configs {
                let shape = "count \(count) mu \(config.momentum) nesterov \(config.nesterov) first \(config.first)"
                checkAgainstTwin("SGD.step", shape: shape, seed: UInt64(seed), outputCounts: [count, count]) { outputs, fast in
                    if fast {
                        SGD.step(weights: outputs[0], momentumBuffer: outputs[1], gradients: gradients, count: count,
                                 learningRate: 0.1, momentum: config.momentum, dampening: config.dampening,
                                 weightDecay: config.decay, nesterov: config.nesterov, firstStep: config.first)
                    } else {
                        SGD.naiveStep(weights: outputs[0], momentumBuffer: outputs[1], gradients: gradients, count: count,
                                      learningRate: 0.1, momentum: config.momentum, dampening: config.dampening,
                                      weightDecay: config.decay, nesterov: config.nesterov, firstStep: config.first)
                    }
                }
            }
        }
    }

    @Test func adamWMatchesTwin() {
        for (seed, count) in (oddSizes + [1000]).enumerated() {
            var random = SeededRandom(seed: UInt64(seed))
            let gradients = random.floats(count)
            let initialV = random.floats(count, 0, 1)  // the second moment is never negative
            for t in [1, 7, 1000] {
                checkAgainstTwin("AdamW.step", shape: "count \(count) t \(t)", seed: UInt64(seed), outputCounts: [count, count, count],
                                 tolerance: 1e-5) { outputs, fast in
                    for index in 0..<count { outputs[2][index] = initialV[index] }
                    if fast {
                        AdamW.step(weights: outputs[0], firstMoment: outputs[1], secondMoment: outputs[2], gradients: gradients,
                                   count: count, learningRate: 1e-3, weightDecay: 0.01, step: t)
                    } else {
                        AdamW.naiveStep(weights: outputs[0], firstMoment: outputs[1], secondMoment: outputs[2], gradients: gradients,
                                        count: count, learningRate: 1e-3, weightDecay: 0.01, step: t)
                    }
                }
            }
        }
    }
}
