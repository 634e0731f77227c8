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

    /// Runs `body(start, count)` over 0 ..< total split into one range per thread, each start a
    /// multiple of 64 (so bit masks split on word boundaries), when total is at least 64 Ki
    /// elements; else once over everything on the caller. For per-element kernels (ReLU,
    /// elementwise add): the result does not depend on the split.
    @inline(__always)
    public func forEachRange(_ total: Int, _ body: (Int, Int) -> Void) {
        let parts = total >= 64 * 1024 ? threads : 1
        if parts == 1 { body(0, total); return }
        let blocks = (total + 63) / 64
        pool.run(tasks: parts, threads: parts) { part in
            let start = min(total, blocks * part / parts * 64)
            let end = min(total, blocks * (part + 1) / parts * 64)
            if end > start { body(start, end - start) }
        }
    }
}
