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

    /// Runs `body.run(start:count:)` over 0 ..< total split into one range per thread, each
    /// start a multiple of 64 (so bit masks split on word boundaries), when total is at least
    /// 64 Ki elements; else once over everything on the caller. For per-element kernels (ReLU,
    /// elementwise add): the result does not depend on the split.
    @inlinable @inline(__always)
    public func forEachRange<Body: RangeTask>(_ total: Int, _ body: Body) {
        let parts = total >= 64 * 1024 ? threads : 1
        if parts == 1 { body.run(start: 0, count: total); return }
        pool.run(tasks: parts, threads: parts, RangeSplit(body: body, total: total, blocks: (total + 63) / 64, parts: parts))
    }
}

/// The body of `KernelContext.forEachRange`: processes elements start ..< start + count.
public protocol RangeTask {
    func run(start: Int, count: Int)
}

/// `forEachRange`'s split: part p of `parts` takes whole 64-element blocks.
@usableFromInline
struct RangeSplit<Body: RangeTask>: ParallelTask {
    @usableFromInline let body: Body
    @usableFromInline let total: Int, blocks: Int, parts: Int

    @inlinable
    init(body: Body, total: Int, blocks: Int, parts: Int) {
        self.body = body
        self.total = total
        self.blocks = blocks
        self.parts = parts
    }

    @inlinable
    func run(task part: Int) {
        let start = min(total, blocks * part / parts * 64)
        let end = min(total, blocks * (part + 1) / parts * 64)
        if end > start { body.run(start: start, count: end - start) }
    }
}
