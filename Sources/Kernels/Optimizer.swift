import CSystem

/// Stochastic gradient descent with PyTorch's `torch.optim.SGD` semantics (maximize = false):
///     g = grad + weightDecay * w
///     if momentum != 0:
///         buf = firstStep ? g : momentum * buf + (1 - dampening) * g
///         g = nesterov ? g + momentum * buf : buf
///     w -= lr * g
/// - Shapes: weights, gradients, momentumBuffer [count]. momentumBuffer may be nil when
///   momentum is 0 (it is then never touched).
public enum SGD {
    /// The test oracle for `step`.
    public static func naiveStep<T: BinaryFloatingPoint>(
        weights: UnsafeMutablePointer<T>, momentumBuffer: UnsafeMutablePointer<T>?, gradients: UnsafePointer<T>,
        count: Int, learningRate: T, momentum: T = 0, dampening: T = 0, weightDecay: T = 0,
        nesterov: Bool = false, firstStep: Bool
    ) {
        precondition(momentum == 0 || momentumBuffer != nil, "SGD with momentum needs a momentum buffer")
        for index in 0..<count {
            var g = gradients[index] + weightDecay * weights[index]
            if momentum != 0, let buffer = momentumBuffer {
                buffer[index] = firstStep ? g : momentum * buffer[index] + (1 - dampening) * g
                g = nesterov ? g + momentum * buffer[index] : buffer[index]
            }
            weights[index] -= learningRate * g
        }
    }

    /// One SGD step over a parameter tensor; see the type's formula.
    public static func step(
        weights: UnsafeMutablePointer<Float>, momentumBuffer: UnsafeMutablePointer<Float>?, gradients: UnsafePointer<Float>,
        count: Int, learningRate: Float, momentum: Float = 0, dampening: Float = 0, weightDecay: Float = 0,
        nesterov: Bool = false, firstStep: Bool
    ) {
        precondition(momentum == 0 || momentumBuffer != nil, "SGD with momentum needs a momentum buffer")
        let width = FloatVector.scalarCount
        let lr = FloatVector(repeating: learningRate)
        let decay = FloatVector(repeating: weightDecay)
        let mu = FloatVector(repeating: momentum)
        let keep = FloatVector(repeating: 1 - dampening)
        var index = 0
        guard momentum != 0, let buffer = momentumBuffer else {
            while index + width <= count {
                let w = weights.loadVector(at: index)
                let g = gradients.loadVector(at: index) + decay * w
                weights.storeVector(w - lr * g, at: index)
                index += width
            }
            while index < count {
                let g = gradients[index] + weightDecay * weights[index]
                weights[index] -= learningRate * g
                index += 1
            }
            return
        }
        // Separate multiply and add (no addingProduct) so each lane rounds as the twin does.
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
            let g = gradients[index] + weightDecay * weights[index]
            let b = firstStep ? g : momentum * buffer[index] + (1 - dampening) * g
            buffer[index] = b
            weights[index] -= learningRate * (nesterov ? g + momentum * b : b)
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
/// which equals w -= lr * mhat / (sqrt(vhat) + eps). The bias corrections are computed in
/// Double, as PyTorch does in Python floats. `step` is t, starting at 1.
/// - Shapes: weights, gradients, firstMoment (m), secondMoment (v) [count].
public enum AdamW {
    /// lr / (1 - b1^t) and sqrt(1 - b2^t), in Double then rounded once.
    @inline(__always)
    static func corrections(learningRate: Double, beta1: Double, beta2: Double, step: Int) -> (stepSize: Double, root2: Double) {
        precondition(step >= 1, "AdamW step numbers start at 1 (got \(step))")
        let correction1 = 1 - pow(beta1, Double(step))
        let correction2 = 1 - pow(beta2, Double(step))
        return (learningRate / correction1, correction2.squareRoot())
    }

    /// The test oracle for `step`.
    public static func naiveStep<T: BinaryFloatingPoint>(
        weights: UnsafeMutablePointer<T>, firstMoment: UnsafeMutablePointer<T>, secondMoment: UnsafeMutablePointer<T>,
        gradients: UnsafePointer<T>, count: Int, learningRate: T, beta1: T = 0.9, beta2: T = 0.999,
        epsilon: T = 1e-8, weightDecay: T = 0.01, step: Int
    ) {
        let (stepSize, root2) = corrections(learningRate: Double(learningRate), beta1: Double(beta1),
                                            beta2: Double(beta2), step: step)
        for index in 0..<count {
            let g = gradients[index]
            weights[index] *= 1 - learningRate * weightDecay
            firstMoment[index] = beta1 * firstMoment[index] + (1 - beta1) * g
            secondMoment[index] = beta2 * secondMoment[index] + (1 - beta2) * g * g
            let denominator = secondMoment[index].squareRoot() / T(root2) + epsilon
            weights[index] -= T(stepSize) * firstMoment[index] / denominator
        }
    }

    /// One AdamW step over a parameter tensor; see the type's formula.
    public static func step(
        weights: UnsafeMutablePointer<Float>, firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
        gradients: UnsafePointer<Float>, count: Int, learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
        epsilon: Float = 1e-8, weightDecay: Float = 0.01, step: Int
    ) {
        let (stepSize, root2) = corrections(learningRate: Double(learningRate), beta1: Double(beta1),
                                            beta2: Double(beta2), step: step)
        let width = FloatVector.scalarCount
        let decayFactor = 1 - learningRate * weightDecay
        let decay = FloatVector(repeating: decayFactor)
        let b1 = FloatVector(repeating: beta1)
        let oneMinusB1 = FloatVector(repeating: 1 - beta1)
        let b2 = FloatVector(repeating: beta2)
        let oneMinusB2 = FloatVector(repeating: 1 - beta2)
        let inverseRoot2 = FloatVector(repeating: Float(1 / root2))
        let eps = FloatVector(repeating: epsilon)
        let size = FloatVector(repeating: Float(stepSize))
        var index = 0
        while index + width <= count {
            let g = gradients.loadVector(at: index)
            let m = b1 * firstMoment.loadVector(at: index) + oneMinusB1 * g
            let v = b2 * secondMoment.loadVector(at: index) + oneMinusB2 * g * g
            firstMoment.storeVector(m, at: index)
            secondMoment.storeVector(v, at: index)
            let denominator = v.squareRoot() * inverseRoot2 + eps
            weights.storeVector(weights.loadVector(at: index) * decay - size * m / denominator, at: index)
            index += width
        }
        let inverseRoot2Scalar = Float(1 / root2)
        let sizeScalar = Float(stepSize)
        while index < count {
            let g = gradients[index]
            let m = beta1 * firstMoment[index] + (1 - beta1) * g
            let v = beta2 * secondMoment[index] + (1 - beta2) * g * g
            firstMoment[index] = m
            secondMoment[index] = v
            weights[index] = weights[index] * decayFactor - sizeScalar * m / (v.squareRoot() * inverseRoot2Scalar + epsilon)
            index += 1
        }
    }
}
