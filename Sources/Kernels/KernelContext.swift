import Platform

/// What a multi-threaded kernel needs: the pool, how many threads to use, and the GEMM packing
/// buffers (one per thread), all allocated once when the context is made.
public final class KernelContext {
    public let pool: ThreadPool
    /// Threads a kernel may use (at most `pool.threadCount`).
    public let threads: Int
    /// `threads * GEMM.packFloatsPerThread` floats, 64-byte aligned.
    public let gemmPack: UnsafeMutablePointer<Float>
    /// The GEMM runs the AVX-512 micro-kernel (KernelsAVX512) rather than the AVX2 one: same
    /// results bit for bit. Defaults to `SystemInfo.useAVX512()`; tests set both ways.
    public let wideKernels: Bool

    public init(threads: Int, wideKernels: Bool? = nil) throws(SystemError) {
        let count = max(threads, 1)
        self.wideKernels = (wideKernels ?? SystemInfo.useAVX512()) && SystemInfo.hasAVX512()
        pool = try ThreadPool(threads: count)
        self.threads = count
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: count * GEMM.packFloatsPerThread * MemoryLayout<Float>.stride, alignment: 64)
        gemmPack = raw.bindMemory(to: Float.self, capacity: count * GEMM.packFloatsPerThread)
    }

    deinit { gemmPack.deallocate() }

    /// The packing buffer of participant `index`.
    @inline(__always)
    public func packBuffer(_ index: Int) -> UnsafeMutablePointer<Float> {
        gemmPack + index * GEMM.packFloatsPerThread
    }
}
