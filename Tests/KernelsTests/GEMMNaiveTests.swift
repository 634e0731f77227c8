import Testing
import Kernels

@Suite struct GEMMNaiveTests {
    /// The naive twin itself is checked against hand-computed products.
    @Test func naiveMatchesHandComputedProduct() {
        // A = [[1,2,3],[4,5,6]] (2x3), B = [[1,0],[0,1],[1,1]] (3x2): A*B = [[4,5],[10,11]]
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let b: [Float] = [1, 0, 0, 1, 1, 1]
        var c: [Float] = [100, 100, 100, 100]
        GEMM.naive(transA: .none, transB: .none, m: 2, n: 2, k: 3, alpha: 1, a: a, lda: 3, b: b, ldb: 2,
                   beta: 0.5, c: &c, ldc: 2)
        #expect(c == [54, 55, 60, 61])
        // A^T stored 3x2 and B^T stored 2x3 give the same product.
        let aT: [Float] = [1, 4, 2, 5, 3, 6]
        let bT: [Float] = [1, 0, 1, 0, 1, 1]
        var d: [Float] = [0, 0, 0, 0]
        GEMM.naive(transA: .transposed, transB: .transposed, m: 2, n: 2, k: 3, alpha: 2, a: aT, lda: 2, b: bT, ldb: 3,
                   beta: 0, c: &d, ldc: 2)
        #expect(d == [8, 10, 20, 22])
    }
}
