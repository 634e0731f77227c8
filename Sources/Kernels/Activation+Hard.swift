/// The piecewise-linear activations of MobileNetV2/V3, as PyTorch defines and differentiates
/// them (aten/src/ATen/native/cpu/Activation.cpp, checked against torch 2.13 at the kinks):
///
///     relu6(x)       = min(max(x, 0), 6)            d/dx = 1 on (0, 6), else 0 (0 at x = 0 and 6)
///     hardsigmoid(x) = min(max(x + 3, 0), 6) / 6    d/dx = 1/6 on (-3, 3), else 0 (0 at -3 and 3)
///     hardswish(x)   = x * min(max(x + 3, 0), 6) / 6
///                    d/dx = 0 for x <= -3, x / 3 + 1/2 for -3 < x < 3, 1 for x >= 3
///
/// The Float forwards round exactly like PyTorch's float32 kernels (a division by 6, not a
/// product with 1/6, and x * r before the division). NaN propagates through every forward and
/// every backward passes a gradient at NaN as PyTorch's comparisons do. Every fast path has a
/// generic naive twin (also the Double oracle of the finite-difference tests).
/// - Shapes: `count` elements, any layout.
public enum ReLU6 {
    /// The test oracle. `output` may be the same buffer as `input`.
    public static func naiveForward<T: BinaryFloatingPoint>(output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, count: Int) {
        for index in 0..<count {
            let value = input[index]
            output[index] = value < 0 ? 0 : (value > 6 ? 6 : value)
        }
    }

    /// y = min(max(x, 0), 6). `output` may be the same buffer as `input` (in place).
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), six = FloatVector(repeating: 6)
        var index = 0
        while index + width <= count {
            let value = input.loadVector(at: index)
            // Blends rather than min/max, so NaN passes exactly as in the twin.
            output.storeVector(value.replacing(with: zero, where: value .< zero).replacing(with: six, where: value .> six), at: index)
            index += width
        }
        while index < count {
            let value = input[index]
            output[index] = value < 0 ? 0 : (value > 6 ? 6 : value)
            index += 1
        }
    }

    /// The test oracle for `backward`. Reads the output: y is in (0, 6) exactly when x is
    /// (the clamp is exact), so the forward may run in place.
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOutput: UnsafePointer<T>, output: UnsafePointer<T>, count: Int
    ) {
        for index in 0..<count where !(output[index] <= 0 || output[index] >= 6) {
            dInput[index] += dOutput[index]
        }
    }

    /// dInput += dOutput where 0 < y < 6.
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, output: UnsafePointer<Float>, count: Int
    ) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), six = FloatVector(repeating: 6)
        var index = 0
        while index + width <= count {
            let y = output.loadVector(at: index)
            let passed = dOutput.loadVector(at: index).replacing(with: zero, where: y .<= zero .| y .>= six)
            dInput.storeVector(dInput.loadVector(at: index) + passed, at: index)
            index += width
        }
        while index < count {
            if !(output[index] <= 0 || output[index] >= 6) { dInput[index] += dOutput[index] }
            index += 1
        }
    }

    /// The test oracle for `backwardInPlace`.
    public static func naiveBackwardInPlace<T: BinaryFloatingPoint>(gradient: UnsafeMutablePointer<T>, output: UnsafePointer<T>, count: Int) {
        for index in 0..<count where output[index] <= 0 || output[index] >= 6 { gradient[index] = 0 }
    }

    /// gradient = 0 where y <= 0 or y >= 6: the backward when the input's gradient shares the
    /// output gradient's buffer (as `ReLU.backwardInPlace`).
    public static func backwardInPlace(gradient: UnsafeMutablePointer<Float>, output: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), six = FloatVector(repeating: 6)
        var index = 0
        while index + width <= count {
            let y = output.loadVector(at: index)
            gradient.storeVector(gradient.loadVector(at: index).replacing(with: zero, where: y .<= zero .| y .>= six), at: index)
            index += width
        }
        while index < count {
            if output[index] <= 0 || output[index] >= 6 { gradient[index] = 0 }
            index += 1
        }
    }
}

/// hardsigmoid(x) = min(max(x + 3, 0), 6) / 6 (see `ReLU6` for the definitions at the kinks).
/// Backward reads the input x (y saturates in float before x reaches 3), so it never runs in place.
/// - Shapes: `count` elements, any layout.
public enum HardSigmoid {
    /// The test oracle.
    public static func naiveForward<T: BinaryFloatingPoint>(output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, count: Int) {
        for index in 0..<count {
            let shifted = input[index] + 3
            output[index] = (shifted < 0 ? 0 : (shifted > 6 ? 6 : shifted)) / 6
        }
    }

    /// y = min(max(x + 3, 0), 6) / 6.
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), three = FloatVector(repeating: 3), six = FloatVector(repeating: 6)
        var index = 0
        while index + width <= count {
            let shifted = input.loadVector(at: index) + three
            let clamped = shifted.replacing(with: zero, where: shifted .< zero).replacing(with: six, where: shifted .> six)
            output.storeVector(clamped / six, at: index)
            index += width
        }
        while index < count {
            let shifted = input[index] + 3
            output[index] = (shifted < 0 ? 0 : (shifted > 6 ? 6 : shifted)) / 6
            index += 1
        }
    }

    /// The test oracle for `backward`.
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOutput: UnsafePointer<T>, input: UnsafePointer<T>, count: Int
    ) {
        let sixth: T = 1 / 6
        for index in 0..<count where input[index] > -3 && input[index] < 3 {
            dInput[index] += dOutput[index] * sixth
        }
    }

    /// dInput += dOutput / 6 where -3 < x < 3 (PyTorch multiplies by the constant 1/6).
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int
    ) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), three = FloatVector(repeating: 3)
        let sixth: Float = 1 / 6
        let sixths = FloatVector(repeating: sixth)
        var index = 0
        while index + width <= count {
            let x = input.loadVector(at: index)
            let passed = zero.replacing(with: dOutput.loadVector(at: index) * sixths, where: x .> -three .& x .< three)
            dInput.storeVector(dInput.loadVector(at: index) + passed, at: index)
            index += width
        }
        while index < count {
            if input[index] > -3 && input[index] < 3 { dInput[index] += dOutput[index] * sixth }
            index += 1
        }
    }

    /// The test oracle for `backwardInPlace`.
    public static func naiveBackwardInPlace<T: BinaryFloatingPoint>(gradient: UnsafeMutablePointer<T>, input: UnsafePointer<T>, count: Int) {
        let sixth: T = 1 / 6
        for index in 0..<count {
            gradient[index] = input[index] > -3 && input[index] < 3 ? gradient[index] * sixth : 0
        }
    }

    /// gradient = gradient / 6 where -3 < x < 3, else 0 (the input's gradient shares the buffer).
    public static func backwardInPlace(gradient: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), three = FloatVector(repeating: 3)
        let sixth: Float = 1 / 6
        let sixths = FloatVector(repeating: sixth)
        var index = 0
        while index + width <= count {
            let x = input.loadVector(at: index)
            gradient.storeVector(zero.replacing(with: gradient.loadVector(at: index) * sixths, where: x .> -three .& x .< three), at: index)
            index += width
        }
        while index < count {
            gradient[index] = input[index] > -3 && input[index] < 3 ? gradient[index] * sixth : 0
            index += 1
        }
    }
}

/// hardswish(x) = x * min(max(x + 3, 0), 6) / 6 (see `ReLU6` for the derivative at the kinks).
/// Backward reads the input x, so it never runs in place.
/// - Shapes: `count` elements, any layout.
public enum HardSwish {
    /// The test oracle.
    public static func naiveForward<T: BinaryFloatingPoint>(output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, count: Int) {
        for index in 0..<count {
            let value = input[index]
            let shifted = value + 3
            output[index] = value * (shifted < 0 ? 0 : (shifted > 6 ? 6 : shifted)) / 6
        }
    }

    /// y = x * min(max(x + 3, 0), 6) / 6.
    public static func forward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), three = FloatVector(repeating: 3), six = FloatVector(repeating: 6)
        var index = 0
        while index + width <= count {
            let value = input.loadVector(at: index)
            let shifted = value + three
            let clamped = shifted.replacing(with: zero, where: shifted .< zero).replacing(with: six, where: shifted .> six)
            output.storeVector(value * clamped / six, at: index)
            index += width
        }
        while index < count {
            let value = input[index]
            let shifted = value + 3
            output[index] = value * (shifted < 0 ? 0 : (shifted > 6 ? 6 : shifted)) / 6
            index += 1
        }
    }

    /// The test oracle for `backward`.
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOutput: UnsafePointer<T>, input: UnsafePointer<T>, count: Int
    ) {
        for index in 0..<count {
            let value = input[index]
            if value <= -3 { continue }
            dInput[index] += value < 3 ? dOutput[index] * (value / 3 + 0.5) : dOutput[index]
        }
    }

    /// dInput += dOutput * (0 for x <= -3, x / 3 + 1/2 below 3, 1 from 3 on).
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, count: Int
    ) {
        let width = FloatVector.scalarCount
        var index = 0
        while index + width <= count {
            let passed = gradientVector(dOutput.loadVector(at: index), input.loadVector(at: index))
            dInput.storeVector(dInput.loadVector(at: index) + passed, at: index)
            index += width
        }
        while index < count {
            let value = input[index]
            if !(value <= -3) { dInput[index] += value < 3 ? dOutput[index] * (value / 3 + 0.5) : dOutput[index] }
            index += 1
        }
    }

    /// The test oracle for `backwardInPlace`.
    public static func naiveBackwardInPlace<T: BinaryFloatingPoint>(gradient: UnsafeMutablePointer<T>, input: UnsafePointer<T>, count: Int) {
        for index in 0..<count {
            let value = input[index]
            gradient[index] = value <= -3 ? 0 : (value < 3 ? gradient[index] * (value / 3 + 0.5) : gradient[index])
        }
    }

    /// gradient = gradient * hardswish'(x) (the input's gradient shares the buffer).
    public static func backwardInPlace(gradient: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        let width = FloatVector.scalarCount
        var index = 0
        while index + width <= count {
            gradient.storeVector(gradientVector(gradient.loadVector(at: index), input.loadVector(at: index)), at: index)
            index += width
        }
        while index < count {
            let value = input[index]
            gradient[index] = value <= -3 ? 0 : (value < 3 ? gradient[index] * (value / 3 + 0.5) : gradient[index])
            index += 1
        }
    }

    /// dOutput * hardswish'(x) for one vector, with the twin's branch order.
    @inline(__always)
    static func gradientVector(_ dOutput: FloatVector, _ x: FloatVector) -> FloatVector {
        let zero = FloatVector(repeating: 0), three = FloatVector(repeating: 3), half = FloatVector(repeating: 0.5)
        let middle = dOutput * (x / three + half)
        return dOutput.replacing(with: middle, where: x .< three).replacing(with: zero, where: x .<= -three)
    }
}
