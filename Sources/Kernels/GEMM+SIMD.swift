extension GEMM {
    /// The fast path: packed panels, register-blocked micro-kernel, multi-threaded.
    /// Same contract as `naive`. (Stub calling the naive twin until the packed path lands.)
    public static func simd(
        transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, context: KernelContext
    ) {
        naive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}
