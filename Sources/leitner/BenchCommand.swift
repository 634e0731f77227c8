import Bench

/// `leitner bench`: runs the kernel benchmarks and prints one table per section.
enum BenchCommand {
    static let spec = CommandSpec(
        name: "bench",
        summary: """
        Kernel benchmarks on this machine: time, GFLOP/s, fraction of one core's peak, ratio to
        the naive twin (and to OpenBLAS when built with --traits OpenBLAS). Each figure is the
        median of repeated runs sized by time, not by a fixed count.
        Sections: gemm, conv, layers, data, stream (default: all); layers profiles one training
        step (forward, loss, backward) of each --models at --batch node by node on random data:
        ms per node and pass, share of the step, GFLOP/s and %peak of the conv and linear nodes; allreduce (only when named, under
        mpirun -np K with an MPI build: one gradient allreduce per reference model). data decodes a pack (--pack FILE,
        default the shipped subset's train.pack) and streams it into float batches; stream
        trains cnn-s epochs from that pack in memory and streamed through a source throttled
        like an SD card (20 MB/s + 2 ms per read), alternating --rounds times.
        Exits 1 when a section cannot run (a missing or corrupt pack).
        """,
        positionals: "[SECTION...]",
        options: [seconds.spec, threads.spec, rounds.spec, pack.spec, models.spec, batch.spec])

    static let seconds = Option<Double>("seconds", "S", default: 0.4, range: 0.1...60, help: "time spent per measurement (at least 0.1: shorter ones time noise, not the kernel)")
    static let threads = Option<Int>("threads", "N", default: 2, range: 1...256, help: "threads for the multi-threaded columns")
    static let rounds = Option<Int>("rounds", "R", default: 5, range: 1...100, help: "stream: alternating rounds (in memory, then streamed)")
    static let models = Parsed<[String]>(
        "models", "LIST", default: ["cnn-s", "resnet8"], shown: "cnn-s,resnet8", help: "layers: the models to profile: reference names, or model files (ending in .model, e.g. from tools/import-torch)",
        expected: "a comma-separated list of mlp, cnn-s, resnet8 or .model files") { text in
        let names = text.split(separator: ",").map(String.init)
        return names.allSatisfy { ["mlp", "cnn-s", "resnet8"].contains($0) || $0.hasSuffix(".model") } ? names : nil
    }
    static let batch = Option<Int>("batch", "N", default: 64, range: 1...4096, help: "layers: batch size of the profiled step")
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
        if !sections.contains("layers") && (options.isGiven(models) || options.isGiven(batch)) {
            throw UsageError(message: "leitner bench: --models and --batch are for the layers section, which is not in this run")
        }
        return Benchmarks.run(sections: sections, seconds: seconds, threads: threads, rounds: rounds, packPath: packPath,
                              models: try options.value(models), batch: try options.value(batch)) ? 0 : 1
    }
}
