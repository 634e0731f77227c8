import CSystem

/// Clocks in nanoseconds and seconds.
public enum Clock {
    /// Monotonic time in nanoseconds (for durations).
    @inline(__always) public static func nanoseconds() -> Int64 { leitner_monotonic_ns() }
    /// Monotonic time in seconds.
    @inline(__always) public static func seconds() -> Double { Double(leitner_monotonic_ns()) * 1e-9 }
    /// Wall-clock time since the Unix epoch in seconds.
    public static func wallSeconds() -> Double { Double(leitner_realtime_ns()) * 1e-9 }
    /// CPU time of the calling thread in nanoseconds.
    public static func threadCPUNanoseconds() -> Int64 { leitner_thread_cpu_ns() }
    /// CPU seconds used by this process, all threads.
    public static func processCPUSeconds() -> Double { Double(leitner_process_cpu_ns()) * 1e-9 }
}

/// Process-level facts: peak RSS, cores, CPU capability.
public enum SystemInfo {
    /// Peak resident set size in bytes.
    public static func peakResidentBytes() -> Int { Int(leitner_peak_rss_kib()) * 1024 }
    /// Online CPU cores.
    public static func onlineCores() -> Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
    /// Clock ticks per second (the unit of /proc/stat's CPU times); 0 or less when unknown.
    public static func clockTicksPerSecond() -> Int { Int(sysconf(Int32(_SC_CLK_TCK))) }

    /// True when this is an x86_64 CPU with AVX-512 (F, CD, BW, DQ, VL) and the OS saves its
    /// registers: the GEMM then runs the KernelsAVX512 micro-kernel (same results, 16 lanes).
    public static func hasAVX512() -> Bool {
        #if arch(x86_64)
        return leitner_cpu_has_avx512() != 0
        #else
        return false
        #endif
    }

    /// True when this is an aarch64 CPU with half-precision arithmetic (ARMv8.2 FP16, scalar and
    /// NEON: HWCAP_FPHP and HWCAP_ASIMDHP): Cortex-A55/A76/A78, not the A72 of a Raspberry Pi 4.
    public static func hasHalfPrecisionArithmetic() -> Bool {
        #if arch(arm64)
        return leitner_cpu_has_fp16_arithmetic() != 0
        #else
        return false
        #endif
    }

    /// Whether the kernels should use AVX-512: the CPU has it and the environment variable
    /// LEITNER_SIMD is not `avx2` (which forces the AVX2 path, e.g. to compare the two).
    public static func useAVX512() -> Bool {
        if Environment.value("LEITNER_SIMD") == "avx2" { return false }
        return hasAVX512()
    }

    /// Checks that the CPU has the vector instructions the binary was built for.
    /// Returns nil when it has, or a message naming what is missing.
    public static func checkBuildTarget() -> String? {
        #if arch(x86_64)
        if leitner_cpu_has_avx2_fma() == 0 {
            return "this binary was built for x86_64 with AVX2 and FMA (haswell), but this CPU lacks them; rebuild without the target CPU flags in Package.swift"
        }
        return nil
        #else
        return nil  // aarch64: NEON and FMA are in the baseline
        #endif
    }
}

/// Ends the process with `code` (stdio buffers are flushed by exit(3)).
public func terminate(_ code: Int32) -> Never {
    exit(code)
}
