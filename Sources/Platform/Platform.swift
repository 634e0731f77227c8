/// Platform: the thin Swift layer over the CSystem module map (files, mapped memory, threads,
/// clocks, console, environment, zlib, CRC-32, libm) and the seeded generator. Everything else
/// in Leitner reaches the operating system and the C libraries through here.
public enum Platform {
    /// The vector instruction set the kernels were compiled for, for reports.
    public static var vectorISA: String {
        #if arch(x86_64)
        if SystemInfo.useAVX512() {
            return "AVX2+FMA (haswell), AVX-512 GEMM micro-kernels, packing and weight-gradient tiles (this CPU has AVX-512; LEITNER_SIMD=avx2 turns them off)"
        }
        return "AVX2+FMA (haswell)"
        #elseif arch(arm64)
        return "NEON (aarch64)"
        #else
        return "scalar"
        #endif
    }
}
