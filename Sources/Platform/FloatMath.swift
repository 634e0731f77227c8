import CSystem

/// libm's transcendental functions, wrapped once (Embedded Swift's standard library has none).
/// Each overload inlines to the C function of its own precision (`expf` for Float, `exp` for
/// Double), so a call site computes exactly what the raw libm call computed.
public enum FloatMath {
    @inlinable @inline(__always) public static func exp(_ x: Float) -> Float { expf(x) }
    @inlinable @inline(__always) public static func exp(_ x: Double) -> Double { CSystem.exp(x) }

    /// e^x - 1, accurate where x is near 0.
    @inlinable @inline(__always) public static func expm1(_ x: Float) -> Float { expm1f(x) }
    @inlinable @inline(__always) public static func expm1(_ x: Double) -> Double { CSystem.expm1(x) }

    @inlinable @inline(__always) public static func log(_ x: Float) -> Float { logf(x) }
    @inlinable @inline(__always) public static func log(_ x: Double) -> Double { CSystem.log(x) }

    @inlinable @inline(__always) public static func sqrt(_ x: Float) -> Float { sqrtf(x) }
    @inlinable @inline(__always) public static func sqrt(_ x: Double) -> Double { CSystem.sqrt(x) }

    @inlinable @inline(__always) public static func pow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
    @inlinable @inline(__always) public static func pow(_ x: Double, _ y: Double) -> Double { CSystem.pow(x, y) }

    @inlinable @inline(__always) public static func cos(_ x: Float) -> Float { cosf(x) }
    @inlinable @inline(__always) public static func cos(_ x: Double) -> Double { CSystem.cos(x) }
}
