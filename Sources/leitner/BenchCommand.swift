import Bench

/// `leitner bench`: runs the kernel benchmarks and prints one table per section.
enum BenchCommand {
    static let spec = CommandSpec(
        name: "bench",
        summary: """
        Kernel benchmarks on this machine: time, GFLOP/s, fraction of one core's peak, ratio to
        the naive twin (and to OpenBLAS when built with --traits OpenBLAS). Each figure is the
        median of repeated runs sized by time, not by a fixed count.
        Sections: gemm, conv, data, stream (default: all); allreduce (only when named, under
        mpirun -np K with an MPI build: one gradient allreduce per reference model). data decodes a pack (--pack FILE,
        default the shipped subset's train.pack) and streams it into float batches; stream
        trains cnn-s epochs from that pack in memory and streamed through a source throttled
        like an SD card (20 MB/s + 2 ms per read), alternating --rounds times.
        Exits 1 when a section cannot run (a missing or corrupt pack).
        """,
        positionals: "[SECTION...]",
        options: [seconds.spec, threads.spec, rounds.spec, pack.spec])

    static let seconds = Option<Double>("seconds", "S", default: 0.4, range: 0.1...60, help: "time spent per measurement (at least 0.1: shorter ones time noise, not the kernel)")
    static let threads = Option<Int>("threads", "N", default: 2, range: 1...256, help: "threads for the multi-threaded columns")
    static let rounds = Option<Int>("rounds", "R", default: 5, range: 1...100, help: "stream: alternating rounds (in memory, then streamed)")
    static let pack = Option<String?>("pack", "FILE", shown: "data/fashion-mnist-subset/train.pack", help: "data, stream: the pack to read")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let seconds = try options.value(Self.seconds)
        let threads = try options.value(Self.threads)
        let packPath = try options.value(pack)
        var sections = options.positionals
        if sections.isEmpty || sections == ["all"] { sections = Benchmarks.sections }
        for section in sections where !(Benchmarks.sections + Benchmarks.namedSections).contains(section) {
            throw UsageError(message: "leitner bench: unknown section '\(section)' (known: \((Benchmarks.sections + Benchmarks.namedSections).joined(separator: ", ")))")
        }
        let rounds = try options.value(Self.rounds)
        return Benchmarks.run(sections: sections, seconds: seconds, threads: threads, rounds: rounds, packPath: packPath) ? 0 : 1
    }
}
