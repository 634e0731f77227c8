import Platform
import Kernels
import NN

/// The `leitner` executable: argument parsing and printing only.

let topHelp = """
usage: leitner COMMAND [options]

Leitner trains small neural networks on ARM64 boards with SIMD kernels, fixed memory arenas
and per-sample selection.

commands:
  train       train a model (default: cnn-s on Fashion-MNIST) and write metrics and checkpoints
  finetune    train from pretrained weights (Leitner or PyTorch safetensors), all or part of the parameters
  bench       kernel benchmarks: GEMM and conv GFLOP/s, fraction of peak, ratio to naive twins; data decoding
  pack        convert a dataset to a pack (gzip blocks + index); pack info, pack verify
  compare     the same run under several selection policies: table and SVG chart
  energy-run  idle baseline, then training: gross and net joules per epoch, CSV/JSONL, SVG
  eval        test loss and accuracy of a checkpoint
  predict     the top classes of images, image folders or pack records from a checkpoint
  parity      a fixed run for comparing with PyTorch (used by tools/compare-pytorch)
  boards      the board profiles this binary knows (train --board NAME uses one)
  doctor      this machine: CPU, cores, memory, matching board, storage read speed, energy sensors
  selftest    the kernel checks (fast paths against naive twins, gradients), inside the binary
  help        show this help

Run 'leitner COMMAND --help' (or 'leitner help COMMAND') for a command's options.
"""

func runMain() -> Int32 {
    Console.lineBufferStandardOutput()
    // SIGINT/SIGTERM stop a run at the next step with valid files; SIGPIPE is ignored.
    StopRequest.install()
    if let problem = SystemInfo.checkBuildTarget() {
        Console.error("leitner: " + problem)
        return 2
    }
    // Under mpirun: join the job (MPI build) or refuse to run K copies (default build).
    if let refusal = Cluster.start() {
        Console.error("leitner: " + refusal)
        return 2
    }
    defer { Cluster.finish() }
    let arguments = Arguments.all()
    guard arguments.count >= 2 else {
        print(topHelp)
        return 0
    }
    if Cluster.size > 1 {
        // Only training is data-parallel; any other command would run once per rank.
        let allreduceBench = arguments[1] == "bench" && arguments.count == 3 && arguments[2] == "allreduce"
        guard ["train", "finetune"].contains(arguments[1]) || allreduceBench else {
            Console.error("leitner: '\(arguments[1])' does not run on several ranks (\(Cluster.size) started by mpirun); only train and finetune do")
            return 2
        }
        if Cluster.rank != 0 { Console.silenceStandardOutput() }
    }
    return runCommand(arguments[1], arguments[2...])
}

/// The commands `leitner` knows, for `leitner help COMMAND`.
let commands = ["bench", "train", "finetune", "pack", "compare", "energy-run", "eval", "predict", "parity", "boards", "doctor", "selftest"]

/// Runs one command: its exit code (2 for a usage error, after the message).
func runCommand(_ command: String, _ rest: ArraySlice<String>) -> Int32 {
    // Only commands that read the stop flag between steps keep the SIGINT/SIGTERM handlers
    // (pack info and verify give them up in PackCommand); the others end at the first Ctrl-C.
    if !["train", "finetune", "compare", "energy-run", "parity", "pack"].contains(command) { StopRequest.uninstall() }
    do throws(UsageError) {
        switch command {
        case "bench": return try BenchCommand.run(rest)
        case "train": return try TrainCommand.run(rest)
        case "finetune": return try FinetuneCommand.run(rest)
        case "pack": return try PackCommand.run(rest)
        case "compare": return try CompareCommand.run(rest)
        case "energy-run": return try EnergyRunCommand.run(rest)
        case "eval": return try EvalCommand.run(rest)
        case "predict": return try PredictCommand.run(rest)
        case "parity": return try ParityCommand.run(rest)
        case "boards": return try BoardsCommand.run(rest)
        case "doctor": return try DoctorCommand.run(rest)
        case "selftest": return try SelftestCommand.run(rest)
        case "help", "--help", "-h":
            // `leitner help train` is `leitner train --help`.
            if let topic = rest.first {
                guard commands.contains(topic) else {
                    Console.error("leitner help: unknown command '\(topic)'\n\n" + topHelp)
                    return 2
                }
                return runCommand(topic, ["--help"])
            }
            print(topHelp)
            return 0
        default:
            Console.error("leitner: unknown command '\(command)'\n\n" + topHelp)
            return 2
        }
    } catch {
        Console.error(error.message)
        return 2
    }
}

terminate(runMain())
