/// Whether a GEMM operand is used as stored or transposed.
public enum Transpose {
    case none
    case transposed
}

/// Single-precision matrix multiply, row-major:
/// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N].
/// op(A) is A (stored M x K, leading dimension lda) or A^T (A stored K x M).
/// op(B) is B (stored K x N, leading dimension ldb) or B^T (B stored N x K).
/// - Shapes: M rows of C, N columns of C, K the reduced dimension.
public enum GEMM {
    /// The test oracle and fallback: a plain triple loop, accumulating in the type `T`.
    /// Generic so that tests can run it in Double.
    public static func naive<T: BinaryFloatingPoint>(
        transA: Transpose, transB: Transpose, m: Int, n: Int, k: Int,
        alpha: T, a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
        beta: T, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        for row in 0..<m {
            for column in 0..<n {
                var sum: T = 0
                for inner in 0..<k {
                    let left = transA == .none ? a[row * lda + inner] : a[inner * lda + row]
                    let right = transB == .none ? b[inner * ldb + column] : b[column * ldb + inner]
                    sum += left * right
                }
                let index = row * ldc + column
                c[index] = beta == 0 ? alpha * sum : alpha * sum + beta * c[index]
            }
        }
    }
}
