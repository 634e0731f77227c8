import Platform

/// Bench: the kernel and data benchmarks `leitner bench` runs on the board itself. Each
/// section prints its own table: time, GFLOP/s or MB/s, the fraction of one core's peak and
/// the ratio to the naive twin (and to OpenBLAS when built with the OpenBLAS trait).
public enum Benchmarks {
    /// The sections, in the order `run` takes them when given none.
    public static let sections = ["gemm", "conv", "layers", "data", "stream"]
    /// Sections only run when named: `allreduce` needs mpirun.
    public static let namedSections = ["allreduce"]

    /// Prints the machine line, then runs `sections` (each one of `Benchmarks.sections`):
    /// every measurement sized by `seconds`, multi-threaded columns on `threads` threads;
    /// `data` decodes the pack at `packPath` (nil: the shipped subset's train.pack); `stream`
    /// trains cnn-s from it in memory and streamed from a throttled source, `rounds` rounds.
    /// `layers` profiles a training step of each of `models` at `batch`, node by node.
    /// False when a section could not run (a missing or corrupt pack): the caller exits non-zero.
    public static func run(sections: [String], seconds: Double, threads: Int, rounds: Int, packPath: String?,
                           models: [String] = ["cnn-s", "resnet8"], batch: Int = 64) -> Bool {
        var ok = true
        if sections != ["allreduce"] { print("leitner bench: \(Platform.vectorISA), \(SystemInfo.onlineCores()) cores; one core's peak: measured \(BenchSupport.format(BenchSupport.peakGFLOPSPerCore(), decimals: 1)) GFLOP/s by \(BenchSupport.peakProbe) (nominal \(BenchSupport.format(BenchSupport.nominalPeakGFLOPSPerCore(), decimals: 1)) at \(BenchSupport.format(BenchSupport.cpuGHz(), decimals: 2)) GHz); %peak columns use the measured figure") }
        for section in sections {
            switch section {
            case "gemm": GEMMBench.run(seconds: seconds, threads: threads)
            case "conv": ConvBench.run(seconds: seconds, threads: threads)
            case "layers": ok = LayersBench.run(models: models, batch: batch, threads: threads, seconds: seconds) && ok
            case "data": ok = DataBench.run(seconds: max(seconds, 1), packPath: packPath) && ok
            case "stream": ok = StreamBench.run(rounds: rounds, threads: threads, packPath: packPath) && ok
            case "allreduce": ok = AllreduceBench.run(rounds: max(rounds, 20)) && ok
            default: break
            }
        }
        if let note = BenchSupport.peakCheck() {
            print("")
            print(note)
        }
        return ok
    }
}
