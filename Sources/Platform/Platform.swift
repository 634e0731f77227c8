/// Platform: the thin Swift layer over the CSystem module map (files, mapped memory, threads,
/// clocks, console). Everything else in Leitner reaches the operating system through here.
public enum Platform {
    /// The vector instruction set the kernels were compiled for, for reports.
    public static var vectorISA: String {
        #if arch(x86_64)
        return "AVX2+FMA (haswell)"
        #elseif arch(arm64)
        return "NEON (aarch64)"
        #else
        return "scalar"
        #endif
    }
}
