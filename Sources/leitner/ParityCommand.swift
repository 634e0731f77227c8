import Data
import NN
import Platform
import Train

/// `leitner parity`: the fixed run tools/compare-pytorch repeats in PyTorch.
enum ParityCommand {
    static let spec = CommandSpec(
        name: "parity",
        summary: """
        A fixed run for comparing with PyTorch (tools/compare-pytorch): the first STEPS x BATCH
        training samples in file order, no augmentation, constant learning rate, SGD. Writes
        OUT/initial.safetensors, OUT/gradients1.safetensors, OUT/final.safetensors, OUT/losses.txt;
        with --dump-activations also OUT/activations1.safetensors and OUT/output-gradients1.safetensors
        (step 1: every node's output and output gradient by node name, NCHW; memory: twice the
        batch's activations).
        Takes the model, data, batch, threads, optimizer, lr, momentum, weight decay and seed
        options of 'leitner train'.
        """,
        positionals: "",
        options: [TrainOptions.model.spec, TrainOptions.modelFile.spec, DataOptions.data.spec, TrainOptions.batch.spec, threads.spec,
                  TrainOptions.optimizer.spec, TrainOptions.learningRate.spec, TrainOptions.momentum.spec, TrainOptions.noNesterov.spec,
                  TrainOptions.weightDecay.spec, TrainOptions.seed.spec, TrainOptions.out.spec, steps.spec, dumpActivations.spec])

    /// One thread by default (train's default is two): the run PyTorch repeats.
    static let threads = Option<Int>("threads", "N", default: 1, range: 1...256, help: "threads")
    static let steps = Option<Int>("steps", "N", default: 20, range: 1...100_000, help: "optimizer steps")
    static let dumpActivations = Flag("dump-activations", help: "also write step 1's node outputs and output gradients")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        var config = try TrainCommand.config(options)
        config.schedule = .constant
        config.augment = AugmentConfig()
        config.threads = try options.value(threads)
        let steps = try options.value(Self.steps)
        let reporter = Reporter()
        guard let data = try DataOptions.load(options, reporter: reporter) else { return 1 }
        do throws(TrainError) {
            try ParityRun.run(config: config, train: data.train, steps: steps, output: config.outputDirectory,
                              dumpActivations: options.isSet(dumpActivations), reporter: reporter)
            print("parity: \(steps) steps written to \(config.outputDirectory)")
            return 0
        } catch {
            Console.error("leitner parity: " + error.message)
            return 1
        }
    }
}
