/// Blocking constants of the packed GEMM (`GEMM.simd`), BLIS/Goto style.
///
/// Loop nest of one participant (it owns a contiguous, NR-aligned range of C's columns, or an
/// MR-aligned range of C's rows when M > N):
///
///     for jc in its columns, step NC          B panel  KC x NC   (L2: packBCacheFloats)
///       for pc in 0..<K, step KC              (beta applies on the first K block only)
///         for ic in its rows, step MC         A block  MC x KC   (L2: blockM * blockK floats)
///           pack A block -> MR-row micro-panels, k-major, zero-padded
///           for jr in panel, step NR          B micro-panel KC x NR (L1)
///             (first ic only: pack it -> NR-column micro-panel, k-major, zero-padded)
///             for ir in block, step MR        micro-kernel: MR x NR tile of C in registers
///
/// When all of the participant's rows fit one A block (small M, the conv shapes), the order is
/// pc -> pack A once -> for each NR columns: pack that B micro-panel, run the MR tiles down it,
/// so A is packed once per K block and B exactly once, right before use.
///
/// KC is a maximum: K is split into equal blocks (K = 288 is one block, not 256 + 32).
/// MC = (blockM * blockK) / kc rounded down to MR (a short K gives a tall A block), again split
/// evenly; NC = packBCacheFloats / kc rounded down to NR. None of this depends on the thread
/// count and every element of C is summed over the K blocks in order by the same micro-kernel,
/// so the result is bit-for-bit identical for 1, 2, 3 threads.
extension GEMM {
    #if arch(x86_64)
    /// Micro-tile rows. AVX2 (16 ymm registers of 8 floats): 6 x 16 tile =
    /// 6 rows x 2 vectors = 12 accumulators + 2 B vectors + 1 A broadcast = 15 of 16 registers.
    public static let microRows = 6
    /// Micro-tile columns (2 x SIMD8).
    public static let microColumns = 16
    /// Maximum K block: the B micro-panel (KC x NR x 4 B = 24 KiB at 384) stays in the 32 KiB L1d.
    public static let blockK = 384
    /// M block at K = KC: the packed A block (MC x KC x 4 B = 216 KiB) stays in L2 (1 MiB).
    public static let blockM = 144
    /// Maximum N block (the buffer bound); the used NC is packBCacheFloats / kc, at most this.
    public static let blockN = 2048
    /// Floats of packed B panel to keep in L2 next to the A block (384 KiB): NC = this / kc.
    public static let packBCacheFloats = 96 * 1024
    #else
    /// Micro-tile rows. NEON (32 q registers of 4 floats): 8 x 12 tile =
    /// 8 rows x 3 vectors = 24 accumulators + 3 B vectors + 2 A vectors (or broadcasts) = 29 of 32.
    public static let microRows = 8
    /// Micro-tile columns (3 x SIMD4).
    public static let microColumns = 12
    /// Maximum K block: the B micro-panel (KC x NR x 4 B = 12 KiB at 256) in a 32/64 KiB L1d.
    public static let blockK = 256
    /// M block at K = KC: the packed A block (MC x KC x 4 B = 128 KiB) in L2 (512 KiB-1 MiB).
    public static let blockM = 128
    /// Maximum N block (the buffer bound); the used NC is packBCacheFloats / kc, at most this.
    public static let blockN = 1020
    /// Floats of packed B panel to keep in L2 next to the A block (256 KiB): NC = this / kc.
    public static let packBCacheFloats = 64 * 1024
    #endif

    /// Floats of packed A block one participant needs.
    static var packAFloats: Int { blockM * blockK }
    /// Floats of packed B panel one participant needs: NC x kc is at most packBCacheFloats
    /// (or one NR x KC micro-panel when kc is large).
    static var packBFloats: Int { max(packBCacheFloats, microColumns * blockK) }
    /// Floats of the edge tile (one MR x NR micro-tile computed off to the side).
    static var edgeTileFloats: Int { microRows * microColumns }

    /// Floats of packing buffer each participant needs: packed A block + packed B panel + edge
    /// tile, each rounded up to 16 floats (64 bytes) so every part stays 64-byte aligned.
    public static let packFloatsPerThread =
        (blockM * blockK + 15) / 16 * 16 + (max(packBCacheFloats, microColumns * blockK) + 15) / 16 * 16
        + (microRows * microColumns + 15) / 16 * 16
}
