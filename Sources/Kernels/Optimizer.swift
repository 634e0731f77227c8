import Platform

// Hyperparameters are Double, as PyTorch holds them in Python floats: each coefficient an
// update uses (1 - dampening, 1 - lr*wd, 1 - b2, the bias corrections) is formed in Double and
// rounded to Float once. 1 - 0.999 rounded that way is 1e-3 to one ulp; 1 - Float(0.999) is
// off by 1.3e-5 relative, which a second moment carries for the whole run.

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics (maximize = false):
///     g = grad + weightDecay * w
///     if momentum != 0:
///         buf = firstStep ? g : momentum * buf + (1 - dampening) * g
///         g = nesterov ? g + momentum * buf : buf
///     w -= lr * g
/// - Shapes: weights, gradients, momentumBuffer [count]. momentumBuffer may be nil when
///   momentum is 0 (it is then never touched).
public enum SGD {
    /// The test oracle for `step`; arithmetic in `T`.
    public static func naiveStep<T: BinaryFloatingPoint>(
        weights: UnsafeMutablePointer<T>, momentumBuffer: UnsafeMutablePointer<T>?, gradients: UnsafePointer<T>,
        count: Int, learningRate: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
        nesterov: Bool = false, firstStep: Bool
    ) {
        precondition(momentum == 0 || momentumBuffer != nil, "SGD with momentum needs a momentum buffer")
        let lr = T(learningRate), mu = T(momentum), decay = T(weightDecay), keep = T(1 - dampening)
        for index in 0..<count {
            var g = gradients[index] + decay * weights[index]
            if momentum != 0, let buffer = momentumBuffer {
                buffer[index] = firstStep ? g : mu * buffer[index] + keep * g
                g = nesterov ? g + mu * buffer[index] : buffer[index]
            }
            weights[index] -= lr * g
        }
    }

    /// One SGD step over a parameter tensor; see the type's formula.
    public static func step(
        weights: UnsafeMutablePointer<Float>, momentumBuffer: UnsafeMutablePointer<Float>?, gradients: UnsafePointer<Float>,
        count: Int, learningRate: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
        nesterov: Bool = false, firstStep: Bool
    ) {
        precondition(momentum == 0 || momentumBuffer != nil, "SGD with momentum needs a momentum buffer")
        let width = FloatVector.scalarCount
        let lrScalar = Float(learningRate), muScalar = Float(momentum)
        let decayScalar = Float(weightDecay), keepScalar = Float(1 - dampening)
        let lr = FloatVector(repeating: lrScalar)
        let decay = FloatVector(repeating: decayScalar)
        let mu = FloatVector(repeating: muScalar)
        let keep = FloatVector(repeating: keepScalar)
        var index = 0
        // Separate multiply and add (no addingProduct) so each lane rounds as the twin does.
        guard momentum != 0, let buffer = momentumBuffer else {
            while index + width <= count {
                let w = weights.loadVector(at: index)
                let g = gradients.loadVector(at: index) + decay * w
                weights.storeVector(w - lr * g, at: index)
                index += width
            }
            while index < count {
                let g = gradients[index] + decayScalar * weights[index]
                weights[index] -= lrScalar * g
                index += 1
            }
            return
        }
        while index + width <= count {
            let w = weights.loadVector(at: index)
            let g = gradients.loadVector(at: index) + decay * w
            let b = firstStep ? g : mu * buffer.loadVector(at: index) + keep * g
            buffer.storeVector(b, at: index)
            let direction = nesterov ? g + mu * b : b
            weights.storeVector(w - lr * direction, at: index)
            index += width
        }
        while index < count {
            let g = gradients[index] + decayScalar * weights[index]
            let b = firstStep ? g : muScalar * buffer[index] + keepScalar * g
            buffer[index] = b
            weights[index] -= lrScalar * (nesterov ? g + muScalar * b : b)
            index += 1
        }
    }
}

/// AdamW with PyTorch's `torch.optim.AdamW` semantics (amsgrad = false, maximize = false),
/// in the order of its single-tensor implementation:
///     w *= 1 - lr * weightDecay                      (decoupled decay, before the moments)
///     m = b1 * m + (1 - b1) * g                      (PyTorch: m.lerp_(g, 1 - b1))
///     v = b2 * v + (1 - b2) * g^2
///     w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
/// which equals w -= lr * mhat / (sqrt(vhat) + eps), mhat = m / (1 - b1^t),
/// vhat = v / (1 - b2^t). `step` is t, starting at 1.
/// - Shapes: weights, gradients, firstMoment (m), secondMoment (v) [count].
public enum AdamW {
    /// The per-step scalars, formed in Double: 1 - lr*wd, 1 - b1, 1 - b2, lr / (1 - b1^t),
    /// 1 / sqrt(1 - b2^t).
    @inline(__always)
    static func coefficients(
        learningRate: Double, beta1: Double, beta2: Double, weightDecay: Double, step: Int
    ) -> (decay: Double, oneMinusB1: Double, oneMinusB2: Double, stepSize: Double, inverseRoot2: Double) {
        precondition(step >= 1, "AdamW step numbers start at 1 (got \(step))")
        let correction1 = 1 - FloatMath.pow(beta1, Double(step))
        let correction2 = 1 - FloatMath.pow(beta2, Double(step))
        return (1 - learningRate * weightDecay, 1 - beta1, 1 - beta2, learningRate / correction1,
                1 / correction2.squareRoot())
    }

    /// The test oracle for `step`; arithmetic in `T`.
    public static func naiveStep<T: BinaryFloatingPoint>(
        weights: UnsafeMutablePointer<T>, firstMoment: UnsafeMutablePointer<T>, secondMoment: UnsafeMutablePointer<T>,
        gradients: UnsafePointer<T>, count: Int, learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999,
        epsilon: Double = 1e-8, weightDecay: Double = 0.01, step: Int
    ) {
        let k = coefficients(learningRate: learningRate, beta1: beta1, beta2: beta2, weightDecay: weightDecay, step: step)
        let decay = T(k.decay), b1 = T(beta1), b2 = T(beta2), oneMinusB1 = T(k.oneMinusB1), oneMinusB2 = T(k.oneMinusB2)
        let stepSize = T(k.stepSize), inverseRoot2 = T(k.inverseRoot2), eps = T(epsilon)
        for index in 0..<count {
            let g = gradients[index]
            weights[index] *= decay
            firstMoment[index] = b1 * firstMoment[index] + oneMinusB1 * g
            secondMoment[index] = b2 * secondMoment[index] + oneMinusB2 * g * g
            let denominator = secondMoment[index].squareRoot() * inverseRoot2 + eps
            weights[index] -= stepSize * firstMoment[index] / denominator
        }
    }

    /// One AdamW step over a parameter tensor; see the type's formula.
    public static func step(
        weights: UnsafeMutablePointer<Float>, firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
        gradients: UnsafePointer<Float>, count: Int, learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999,
        epsilon: Double = 1e-8, weightDecay: Double = 0.01, step: Int
    ) {
        let k = coefficients(learningRate: learningRate, beta1: beta1, beta2: beta2, weightDecay: weightDecay, step: step)
        let decayScalar = Float(k.decay), b1Scalar = Float(beta1), b2Scalar = Float(beta2)
        let oneMinusB1Scalar = Float(k.oneMinusB1), oneMinusB2Scalar = Float(k.oneMinusB2)
        let stepSizeScalar = Float(k.stepSize), inverseRoot2Scalar = Float(k.inverseRoot2), epsScalar = Float(epsilon)
        let width = FloatVector.scalarCount
        let decay = FloatVector(repeating: decayScalar)
        let b1 = FloatVector(repeating: b1Scalar), oneMinusB1 = FloatVector(repeating: oneMinusB1Scalar)
        let b2 = FloatVector(repeating: b2Scalar), oneMinusB2 = FloatVector(repeating: oneMinusB2Scalar)
        let inverseRoot2 = FloatVector(repeating: inverseRoot2Scalar)
        let eps = FloatVector(repeating: epsScalar)
        let stepSize = FloatVector(repeating: stepSizeScalar)
        var index = 0
        while index + width <= count {
            let g = gradients.loadVector(at: index)
            let m = b1 * firstMoment.loadVector(at: index) + oneMinusB1 * g
            let v = b2 * secondMoment.loadVector(at: index) + oneMinusB2 * g * g
            firstMoment.storeVector(m, at: index)
            secondMoment.storeVector(v, at: index)
            let denominator = v.squareRoot() * inverseRoot2 + eps
            weights.storeVector(weights.loadVector(at: index) * decay - stepSize * m / denominator, at: index)
            index += width
        }
        while index < count {
            let g = gradients[index]
            let m = b1Scalar * firstMoment[index] + oneMinusB1Scalar * g
            let v = b2Scalar * secondMoment[index] + oneMinusB2Scalar * g * g
            firstMoment[index] = m
            secondMoment[index] = v
            weights[index] = weights[index] * decayScalar - stepSizeScalar * m / (v.squareRoot() * inverseRoot2Scalar + epsScalar)
            index += 1
        }
    }
}
