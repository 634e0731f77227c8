import Platform
import Kernels
import KernelsAVX512

/// Shared pieces of `leitner bench`: timing sized by work, the machine's peak, table rows.
enum BenchSupport {
    /// Median seconds of one call of `body`, over as many calls as fit in about
    /// `targetSeconds` (at least `minimumRuns`), after one warm-up call. Sizing by time rather
    /// than by a fixed count keeps the bench usable on a slow board and a fast workstation.
    static func medianSeconds(targetSeconds: Double = 0.4, minimumRuns: Int = 5, _ body: () -> Void) -> Double {
        let warmStart = Clock.seconds()
        body()
        let first = max(Clock.seconds() - warmStart, 1e-7)
        let runs = max(minimumRuns, min(1000, Int(targetSeconds / first)))
        var samples = [Double](repeating: 0, count: runs)
        for index in 0..<runs {
            let start = Clock.seconds()
            body()
            samples[index] = Clock.seconds() - start
        }
        samples.sort()
        return samples[runs / 2]
    }

    /// GFLOP/s of one ~10 ms trial: twelve independent FMA chains on `FloatVector` (enough to
    /// cover FMA latency x units on AVX2 and NEON).
    static func fmaTrialGFLOPS() -> Double {
        let x = FloatVector(repeating: 0.999_999)
        var chains = InlineArray<12, FloatVector>(repeating: FloatVector(repeating: 1e-3))
        let iterations = 4_000_000
        let start = Clock.seconds()
        for _ in 0..<iterations {
            for chain in 0..<12 { chains[chain] = chains[chain].addingProduct(chains[chain], x) }
        }
        let rate = Double(iterations * 12 * FloatVector.scalarCount * 2) / (Clock.seconds() - start) / 1e9
        var total: Float = 0
        for chain in 0..<12 { total += chains[chain].sum() }
        // Keeps the chains alive; the sum is never this value.
        if total == 1.2345 { print("") }
        return rate
    }

    /// One core's peak fp32 GFLOP/s, measured on the widest unit the kernels use (512-bit FMAs
    /// where the AVX-512 kernels run, `FloatVector` elsewhere). The nominal clock in
    /// /proc/cpuinfo understates a core that boosts, so the measured figure is the honest
    /// denominator for "fraction of peak". The best of ~10 ms trials over at least a quarter of
    /// a second: a trial during which the core also ran another process reads low (half the
    /// rate with one other busy process: 47 against 93 GFLOP/s measured here), and one free
    /// moment is enough.
    static func measurePeakGFLOPS() -> Double {
        var best = 0.0
        let begin = Clock.seconds()
        var trials = 0
        while trials < 8 || Clock.seconds() - begin < 0.25 {
            trials += 1
            #if arch(x86_64)
            if SystemInfo.useAVX512() {
                best = max(best, widePeakGFLOPS(iterations: 4_000_000, seconds: { Clock.seconds() }))
                continue
            }
            #endif
            best = max(best, fmaTrialGFLOPS())
        }
        return best
    }

    /// The peak the "%peak" columns divide by: measured on first use, then kept for the run.
    private static var cachedPeak = 0.0
    /// The highest "%peak" any table printed in this run (`percentOfPeak`), for `peakCheck`.
    private static var highestPercent = 0.0

    static func peakGFLOPSPerCore() -> Double {
        if cachedPeak == 0 { cachedPeak = measurePeakGFLOPS() }
        return cachedPeak
    }

    /// `100 * gflops / peak` formatted for a "%peak" column, remembered for `peakCheck`.
    static func percentOfPeak(_ gflops: Double, peak: Double) -> String {
        let percent = 100 * gflops / peak
        if percent.isFinite { highestPercent = max(highestPercent, percent) }
        return format(percent, decimals: 0)
    }

    /// After the sections: when a "%peak" column was printed, probes the FMA peak again and says
    /// when those columns cannot be trusted. When other processes share the cores, the probe can
    /// run time-sliced and read half the core's rate while a kernel later runs alone at the full
    /// one: a column above 100% or a second probe well above the first means the denominator was
    /// too low (a second probe below the first only means the core was busier later). Nil otherwise.
    static func peakCheck() -> String? {
        guard highestPercent > 0 else { return nil }
        let first = cachedPeak, again = measurePeakGFLOPS()
        guard highestPercent > 100 || again > 1.15 * first else { return nil }
        return "note: the FMA probe read \(format(first, decimals: 1)) GFLOP/s before the tables and \(format(again, decimals: 1)) after them"
            + (highestPercent > 100 ? ", and a kernel ran at \(format(highestPercent, decimals: 0))% of the first" : "")
            + ": other work shared the cores during part of the run (the probe ran time-sliced), so the %peak columns "
            + "are not reliable; rerun on an idle machine"
    }

    /// The probe `peakGFLOPSPerCore` uses, for the header line.
    static var peakProbe: String {
        #if arch(x86_64)
        if SystemInfo.useAVX512() { return "a 512-bit FMA loop (the AVX-512 kernels run)" }
        return "a 256-bit FMA loop (AVX2: the widest unit the kernels use here)"
        #else
        return "a 128-bit NEON FMA loop"
        #endif
    }

    /// Nominal peak fp32 GFLOP/s of one core: FLOP per cycle (AVX2: 2 FMA units x 8 lanes x 2;
    /// AVX-512: 2 x 16 x 2, though some parts have one 512-bit unit; NEON on Cortex-A76: 16)
    /// times the clock read from the kernel.
    static func nominalPeakGFLOPSPerCore() -> Double {
        #if arch(x86_64)
        let flopsPerCycle = SystemInfo.useAVX512() ? 64.0 : 32.0
        #else
        let flopsPerCycle = 16.0
        #endif
        return flopsPerCycle * cpuGHz()
    }

    /// Clock in GHz: cpufreq's maximum when present, else /proc/cpuinfo's "cpu MHz", else 2.0.
    static func cpuGHz() -> Double {
        if let bytes = try? FileSystem.readAll("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", limit: 4096),
           let kHz = Double(String(decoding: bytes, as: UTF8.self).filter { $0 != "\n" }), kHz > 0 {
            return kHz / 1e6
        }
        if let bytes = try? FileSystem.readAll("/proc/cpuinfo", limit: 4 << 20) {
            let text = String(decoding: bytes, as: UTF8.self)
            for line in text.split(separator: "\n") where line.hasPrefix("cpu MHz") {
                if let colon = line.firstIndex(of: ":"),
                   let mhz = Double(line[line.index(after: colon)...].filter { $0 != " " && $0 != "\t" }), mhz > 0 {
                    return mhz / 1000
                }
            }
        }
        return 2.0
    }

    /// `value` with `decimals` digits after the point (Foundation-free).
    /// The median of `values` (the mean of the middle two for an even count); nan when empty.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func format(_ value: Double, decimals: Int = 2) -> String {
        Format.fixed(value, decimals)
    }

    /// Deterministic pseudo-random fill in [-1, 1) (no allocation, no global state).
    static func fill(_ pointer: UnsafeMutablePointer<Float>, count: Int, seed: UInt64) {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        for index in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            pointer[index] = Float(Int32(truncatingIfNeeded: state >> 32)) / Float(Int32.max)
        }
    }
}
