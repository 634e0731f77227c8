extension GEMM {
    /// Floats of packing buffer each thread needs (packed A block + packed B panel).
    /// Placeholder until the packed fast path lands.
    public static let packFloatsPerThread = 256 * 1024
}
