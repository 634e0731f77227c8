import Bench

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
        var sections = options.positionals
        if sections.isEmpty || sections == ["all"] { sections = Benchmarks.sections }
        for section in sections where !Benchmarks.sections.contains(section) {
            throw UsageError(message: "leitner bench: unknown section '\(section)' (known: \(Benchmarks.sections.joined(separator: ", ")))")
        }
        Benchmarks.run(sections: sections, seconds: seconds, threads: threads, packPath: packPath)
        return 0
    }
}
