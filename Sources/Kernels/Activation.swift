/// Rectified linear unit, y = max(x, 0), on any layout (it is elementwise).
/// - Shapes: `count` elements, any layout.
public enum ReLU {
    /// The test oracle. `output` may be the same buffer as `input` (in place).
    /// NaN maps to 0, as `x > 0 ? x : 0` does; the fast path matches it.
    public static func naiveForward<T: BinaryFloatingPoint>(
        output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, count: Int
    ) {
        for index in 0..<count {
            let value = input[index]
            output[index] = value > 0 ? value : 0
        }
    }

    /// y = max(x, 0). `output` may be the same buffer as `input` (in place): every element is
    /// read before it is written and no element is read after its own write.
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0)
        var index = 0
        while index + width <= count {
            let value = input.loadVector(at: index)
            // A blend rather than pointwiseMax, so NaN gives 0 exactly like the twin.
            output.storeVector(zero.replacing(with: value, where: value .> zero), at: index)
            index += width
        }
        while index < count {
            let value = input[index]
            output[index] = value > 0 ? value : 0
            index += 1
        }
    }

    /// In-place y = max(x, 0).
    @inline(__always)
    public static func forwardInPlace(_ values: UnsafeMutablePointer<Float>, count: Int) {
        forward(output: values, input: values, count: count)
    }

    /// The test oracle for `backward`.
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOutput: UnsafePointer<T>, output: UnsafePointer<T>, count: Int
    ) {
        for index in 0..<count where output[index] > 0 {
            dInput[index] += dOutput[index]
        }
    }

    /// The test oracle for `backwardInPlace`.
    public static func naiveBackwardInPlace<T: BinaryFloatingPoint>(
        gradient: UnsafeMutablePointer<T>, output: UnsafePointer<T>, count: Int
    ) {
        for index in 0..<count where !(output[index] > 0) { gradient[index] = 0 }
    }

    /// gradient = gradient where y > 0, else 0: the backward when the input's gradient shares
    /// the output gradient's buffer (the ReLU is its input's only consumer, so dInput would
    /// be zero before `+=` and the mask can overwrite instead of accumulating).
    public static func backwardInPlace(gradient: UnsafeMutablePointer<Float>, output: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0)
        var index = 0
        while index + width <= count {
            let passed = zero.replacing(with: gradient.loadVector(at: index), where: output.loadVector(at: index) .> zero)
            gradient.storeVector(passed, at: index)
            index += width
        }
        while index < count {
            if !(output[index] > 0) { gradient[index] = 0 }
            index += 1
        }
    }

    /// dInput += dOutput where the forward output y > 0. Uses y rather than x so that the
    /// forward may run in place and overwrite x (y > 0 exactly when x > 0).
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, count: Int
    ) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0)
        var index = 0
        while index + width <= count {
            let gradient = dOutput.loadVector(at: index)
            let passed = zero.replacing(with: gradient, where: output.loadVector(at: index) .> zero)
            dInput.storeVector(dInput.loadVector(at: index) + passed, at: index)
            index += width
        }
        while index < count {
            if output[index] > 0 { dInput[index] += dOutput[index] }
            index += 1
        }
    }
}
