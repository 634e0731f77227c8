/// The one SIMD width every hand-vectorized kernel is written against.
/// AVX2 has 16 registers of 8 floats; NEON has 32 registers of 4 floats.
#if arch(x86_64)
public typealias FloatVector = SIMD8<Float>
/// 32-bit integer lanes of the same count (dropout's counter-based generator).
public typealias WordVector = SIMD8<UInt32>
#else
public typealias FloatVector = SIMD4<Float>
public typealias WordVector = SIMD4<UInt32>
#endif

/// Lanes in `FloatVector`.
public let floatVectorWidth = FloatVector.scalarCount

extension UnsafePointer where Pointee == Float {
    /// Unaligned vector load of `FloatVector.scalarCount` floats at `self + offset`.
    @inline(__always)
    public func loadVector(at offset: Int) -> FloatVector {
        UnsafeRawPointer(self + offset).loadUnaligned(as: FloatVector.self)
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// Unaligned vector load of `FloatVector.scalarCount` floats at `self + offset`.
    @inline(__always)
    public func loadVector(at offset: Int) -> FloatVector {
        UnsafeRawPointer(self + offset).loadUnaligned(as: FloatVector.self)
    }

    /// Unaligned vector store at `self + offset`.
    @inline(__always)
    public func storeVector(_ value: FloatVector, at offset: Int) {
        UnsafeMutableRawPointer(self + offset).storeBytes(of: value, as: FloatVector.self)
    }
}
