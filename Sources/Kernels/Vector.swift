/// The one SIMD width every hand-vectorized kernel is written against.
/// AVX2 has 16 registers of 8 floats; NEON has 32 registers of 4 floats.
#if arch(x86_64)
public typealias FloatVector = SIMD8<Float>
#else
public typealias FloatVector = SIMD4<Float>
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
