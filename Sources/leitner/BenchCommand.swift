import Platform
import Kernels

/// `leitner bench`: runs the kernel benchmarks and prints one table per section.
enum BenchCommand {
    static let spec = CommandSpec(
        name: "bench",
        summary: """
        Kernel benchmarks on this machine: time, GFLOP/s, fraction of one core's peak, ratio to
        the naive twin (and to OpenBLAS when built with --traits OpenBLAS). Each figure is the
        median of repeated runs sized by time, not by a fixed count.
        Sections: gemm, conv, data (default: all). data decodes a pack (--pack FILE, default the
        shipped subset's train.pack) and streams it into float batches.
        """,
        positionals: "[SECTION...]",
        options: [seconds.spec, threads.spec, pack.spec])

    static let seconds = Option<Double>("seconds", "S", default: 0.4, range: 0.01...60, help: "time spent per measurement")
    static let threads = Option<Int>("threads", "N", default: 2, range: 1...256, help: "threads for the multi-threaded columns")
    static let pack = Option<String?>("pack", "FILE", shown: "data/fashion-mnist-subset/train.pack", help: "data: the pack to decode")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let seconds = try options.value(Self.seconds)
        let threads = try options.value(Self.threads)
        let packPath = try options.value(pack)
        let known = ["gemm", "conv", "data"]
        var sections = options.positionals
        if sections.isEmpty || sections == ["all"] { sections = known }
        for section in sections where !known.contains(section) {
            throw UsageError(message: "leitner bench: unknown section '\(section)' (known: \(known.joined(separator: ", ")))")
        }
        print("leitner bench: \(Platform.vectorISA), \(SystemInfo.onlineCores()) cores; one core's peak: measured \(BenchSupport.format(BenchSupport.peakGFLOPSPerCore(), decimals: 1)) GFLOP/s by an FMA loop (nominal \(BenchSupport.format(BenchSupport.nominalPeakGFLOPSPerCore(), decimals: 1)) at \(BenchSupport.format(BenchSupport.cpuGHz(), decimals: 2)) GHz); %peak columns use the measured figure")
        for section in sections {
            switch section {
            case "gemm": GEMMBench.run(seconds: seconds, threads: threads)
            case "conv": ConvBench.run(seconds: seconds, threads: threads)
            case "data": DataBench.run(seconds: max(seconds, 1), packPath: packPath)
            default: break
            }
        }
        return 0
    }
}
