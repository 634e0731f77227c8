import Data
import Energy
import NN
import Platform
import Train
import Select

/// `leitner train`: trains a model on a dataset and writes the metrics log and checkpoints.
enum TrainCommand {
    static let spec = CommandSpec(
        name: "train",
        summary: """
        Trains a model. With no options: cnn-s on Fashion-MNIST (the full set from
        /usr/share/datasets/fashion-mnist when the Debian package dataset-fashion-mnist is
        installed, otherwise the subset shipped in data/fashion-mnist-subset), 15 epochs,
        batch 64, SGD with Nesterov momentum 0.9, lr 0.05, cosine schedule, weight decay 5e-4.
        Writes OUT/metrics.jsonl (one JSON line per epoch) and OUT/checkpoint.safetensors.
        Energy per epoch comes from the first meter that works (--meter): hwmon, RAPL, the
        Pi 5 PMIC, else a power-model estimate, which every report marks as an estimate.
        """,
        positionals: "",
        options: TrainOptions.specs + DataOptions.selectionSpecs + PolicyOptions.specs + EnergyOptions.specs)

    /// Parses the options shared by train-like commands into a configuration.
    static func config(_ options: ParsedOptions) throws(UsageError) -> TrainConfig {
        typealias O = TrainOptions
        let description: ModelDescription
        let modelName = try options.value(O.model)
        let modelFile = try options.value(O.modelFile)
        if let file = modelFile {
            do { description = try ModelDescription.read(file: file) }
            catch { throw UsageError(message: "leitner: --model-file: \(error.message)") }
        } else {
            do { description = try ModelZoo.description(named: modelName) }
            catch { throw UsageError(message: "leitner: \(error.message)") }
        }
        var config = TrainConfig(model: description)
        config.modelName = modelFile ?? modelName
        config.epochs = try options.value(O.epochs)
        config.batch = try options.value(O.batch)
        var boardThreads = O.defaultThreads
        if let boardName = try options.value(O.board) {
            let board: BoardProfile
            do { board = try BoardProfile.load(boardName) }
            catch { throw UsageError(message: "leitner: \(error.description)") }
            boardThreads = board.threads(onlineCores: SystemInfo.onlineCores())
            config.board = board
        }
        config.threads = try options.value(O.threads) ?? boardThreads
        switch try options.value(O.optimizer) {
        case .sgd:
            let momentum = try options.value(O.momentum)
            config.optimizer = .sgd(momentum: momentum, nesterov: !options.isSet(O.noNesterov) && momentum > 0,
                                    weightDecay: try options.value(O.weightDecay) ?? O.sgd.weightDecay)
            config.learningRate = try options.value(O.learningRate) ?? O.sgd.learningRate
        case .adamw:
            config.optimizer = .adamw(beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
                                      weightDecay: try options.value(O.weightDecay) ?? O.adamw.weightDecay)
            config.learningRate = try options.value(O.learningRate) ?? O.adamw.learningRate
        }
        config.schedule = try options.value(O.schedule)
        // DIHCL's paper preset includes the paper's learning rate: a cosine restarted in every episode.
        if options.isGiven(PolicyOptions.dihPreset), try options.value(PolicyOptions.dihPreset) {
            if !options.isGiven(O.schedule) {
                config.schedule = .perEpisode(boundaries: [], minimum: 0)
            } else if case .perEpisode = config.schedule {
            } else {
                throw UsageError(message: "leitner: --dih-preset paper sets --schedule episodes (a cosine per DIHCL episode, as the paper): leave --schedule out or give episodes[:MIN]")
            }
        }
        config.warmupEpochs = try options.value(O.warmup)
        let padding = try options.value(O.cropPadding)
        switch try options.value(O.augment) {
        case .none: config.augment = AugmentConfig()
        case .flip: config.augment = AugmentConfig(flip: true)
        case .crop: config.augment = AugmentConfig(cropPadding: padding)
        case .cropAndFlip: config.augment = AugmentConfig(cropPadding: padding, flip: true)
        }
        config.seed = UInt64(try options.value(O.seed))
        config.outputDirectory = try options.value(O.out)
        config.resume = options.isSet(O.resume)
        config.replaceExisting = options.isSet(O.force)
        config.replaceWeights = try options.value(O.replaceWeights)
        if config.replaceWeights != nil && !config.resume {
            throw UsageError(message: "leitner: --replace-weights replaces the weights of the run --resume continues: give --resume (a fresh run starts from its seed, or from finetune --from)")
        }
        if config.resume && config.replaceExisting {
            throw UsageError(message: "leitner: --resume continues the run in --out, --force moves it aside: give one of them")
        }
        config.trainLimit = try trainSubset(options)
        config.testLimit = try options.value(O.testLimit) ?? 0
        if let megabytes = try options.value(O.memoryBudgetMB) {
            config.memoryBudgetBytes = megabytes << 20
        } else if let board = config.board {
            config.memoryBudgetBytes = board.memoryBudgetBytes
        }
        config.stopAfterEpoch = try options.value(O.stopAfterEpoch) ?? 0
        config.onNaN = try options.value(O.onNaN)
        if options.isSet(O.noProgress) { config.progress = false }
        config.lossDumpDirectory = try options.value(O.dumpLosses)
        config.exactParts = try options.value(O.exactParts) ?? 0
        if options.isSet(O.syncBN) {
            // Without the MPI trait there is only ever one rank: the option could do nothing.
            guard Cluster.isBuiltWithMPI else {
                throw UsageError(message: "leitner: --sync-bn synchronises batch norm across MPI ranks, and this binary was built without MPI (swift build -c release --traits MPI; see docs/several-boards.md)")
            }
            config.syncBatchNorm = true
        }
        (config.precision, config.precisionNote) = Precision.resolveHere(try options.value(O.precision))
        if config.precision == .fp16 {
            if config.syncBatchNorm || config.exactParts > 0 {
                throw UsageError(message: "leitner: --precision fp16 does not combine with --sync-bn or --exact-parts yet (one loss scale and skip decision across ranks and parts is not built)")
            }
        }
        config.energy = try EnergyOptions.settings(options)
        if !options.isGiven(EnergyOptions.powerModel), let board = config.board {
            // The board profile's power model unless --power-model overrides it.
            config.energy.powerModel = PowerModel(idleWatts: board.idleWatts, activeWattsPerCore: board.activeWattsPerCore,
                                                  name: "board " + board.name)
        }
        // Options that would do nothing in this combination are refused with the reason.
        let given = options.givenNames
        func refuse(_ option: String, _ reason: String) throws(UsageError) {
            if given.contains(option) { throw UsageError(message: "leitner: --\(option) does nothing \(reason)") }
        }
        if case .adamw = config.optimizer {
            try refuse(O.momentum.spec.name, "with --optimizer adamw (its betas are fixed at 0.9, 0.999)")
            try refuse(O.noNesterov.spec.name, "with --optimizer adamw")
        } else if try options.value(O.momentum) == 0 {
            try refuse(O.noNesterov.spec.name, "with --momentum 0")
        }
        if config.augment.cropPadding == 0 { try refuse(O.cropPadding.spec.name, "without crop in --augment") }
        if try options.value(DataOptions.memoryMB) == nil {
            try refuse(DataOptions.throttle.spec.name, "without --data-memory-mb (only a streamed pack is read while training)")
        }
        if config.energy.choice == .none {
            for spec in EnergyOptions.specs where spec.name != EnergyOptions.meter.spec.name {
                try refuse(spec.name, "with --meter none")
            }
        }
        if config.threads > SystemInfo.onlineCores() {
            Console.error("leitner: warning: --threads \(config.threads) is more than the \(SystemInfo.onlineCores()) cores online; expect it to be slower than \(SystemInfo.onlineCores())")
        }
        // The data half of what `--resume` must find unchanged (RunIdentity).
        config.runFacts.add("data", try options.value(DataOptions.data) ?? "default")
        config.runFacts.add("classes", try options.value(DataOptions.classes) ?? "all")
        config.runFacts.add("per-class", (try options.value(DataOptions.perClass)).map { "\($0)" } ?? "all")
        config.runFacts.add("test-limit", config.testLimit > 0 ? "\(config.testLimit)" : "all")
        return config
    }

    /// This process's command line with `--resume` (and without `--force`), for the message
    /// after an interruption.
    static func resumeCommand() -> String {
        var words: [String] = []
        for argument in Arguments.all() where argument != "--force" {
            let plain = !argument.isEmpty && argument.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == 0x2d || byte == 0x5f || byte == 0x2e || byte == 0x2f || byte == 0x3d || byte == 0x3a || byte == 0x2c
            }
            words.append(plain ? argument : "'" + argument.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'")
        }
        if !words.contains("--resume") { words.append("--resume") }
        return words.joined(separator: " ")
    }

    /// `--train-subset N`, or its older name `--train-limit N` (both given: they must agree).
    static func trainSubset(_ options: ParsedOptions) throws(UsageError) -> Int {
        let subset = try options.value(TrainOptions.trainSubset)
        let limit = try options.value(TrainOptions.trainLimit)
        if let subset, let limit, subset != limit {
            throw UsageError(message: "leitner: --train-subset \(subset) and --train-limit \(limit) disagree (--train-limit is the older name of --train-subset)")
        }
        return subset ?? limit ?? 0
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.isEmpty else {
            throw UsageError(message: "leitner train: unexpected argument '\(options.positionals[0])' (see leitner train --help)")
        }
        let config = try config(options)
        let policy = try options.value(PolicyOptions.policy)
        let settings = try PolicyOptions.settings(options)
        try PolicyOptions.checkRead(options, by: [policy], command: "train")
        let reporter = Reporter()
        guard let data = try DataOptions.load(options, reporter: reporter) else { return 1 }
        return train(config: config, policy: policy, settings: settings, data: data, reporter: reporter, command: "train")
    }

    /// Trains with the policy the options name (train and finetune); the exit code.
    static func train(config: TrainConfig, policy: PolicyKind, settings: PolicySettings, data: (train: Dataset, test: Dataset),
                      reporter: Reporter, command: String) -> Int32 {
        print("policy: \(policy.name)")
        do throws(TrainError) {
            _ = try Training.run(config, policy: policy, settings: settings, train: data.train, test: data.test, reporter: reporter)
            return 0
        } catch {
            Console.error("leitner \(command): " + error.message)
            if error.interrupted {
                Console.error("continue it with: " + resumeCommand())
                return 128 + StopRequest.signal
            }
            return 1
        }
    }
}

/// The options of `leitner train` (besides data, policy and energy), each declared once.
enum TrainOptions {
    /// Threads without --threads or --board.
    static let defaultThreads = 2
    /// Learning rate and weight decay by optimizer, when --lr and --weight-decay are not given.
    static let sgd = (learningRate: 0.05, weightDecay: 5e-4)
    static let adamw = (learningRate: 0.001, weightDecay: 0.01)

    enum Optimizer: Equatable { case sgd, adamw }
    enum Augment: Equatable { case none, flip, crop, cropAndFlip }

    static let model = Option<String>("model", "NAME", default: "cnn-s", help: "reference model: " + ModelZoo.names.joined(separator: ", "))
    static let modelFile = Option<String?>("model-file", "FILE", help: "a model description in the text form (see README)")
    static let epochs = Option<Int>("epochs", "N", default: 15, range: 1...100_000, help: "epochs")
    static let batch = Option<Int>("batch", "N", default: 64, range: 1...65_536, help: "batch size")
    static let threads = Option<Int?>("threads", "N", range: 1...256, shown: "\(defaultThreads), or the board's", help: "threads")
    static let board = Option<String?>("board", "NAME|FILE", shown: "none",
                                       help: "board profile (leitner boards): default threads, memory budget and power model")
    static let optimizer = Choice<Optimizer>("optimizer", "sgd|adamw", names: ["sgd", "adamw"], values: [.sgd, .adamw], default: .sgd,
                                             help: "optimizer")
    static let learningRate = Option<Double?>("lr", "RATE", range: 1e-9...100,
                                              shown: "\(sgd.learningRate) (sgd), \(adamw.learningRate) (adamw)", help: "base learning rate")
    static let momentum = Option<Double>("momentum", "M", default: 0.9, range: 0...0.999_999, help: "SGD momentum")
    static let noNesterov = Flag("no-nesterov", help: "plain momentum instead of Nesterov")
    static let weightDecay = Option<Double?>("weight-decay", "W", range: 0...1,
                                             shown: "\(sgd.weightDecay) (sgd), \(adamw.weightDecay) (adamw)", help: "weight decay")
    static let schedule = Parsed<LearningRateSchedule.Kind>(
        "schedule", "KIND", default: .cosine(minimum: 0), shown: "cosine", help: LearningRateSchedule.syntax,
        expected: "one of " + LearningRateSchedule.syntax, parse: LearningRateSchedule.parseKind)
    static let warmup = Option<Double>("warmup", "EPOCHS", default: 0, range: 0...100_000, help: "linear warm-up epochs")
    static let augment = Choice<Augment>(
        "augment", "KIND", names: ["none", "flip", "crop", "crop+flip", "flip+crop"], values: [Augment.none, .flip, .crop, .cropAndFlip, .cropAndFlip],
        default: .none, help: "none | flip | crop | crop+flip (crop pads by --crop-padding)")
    static let cropPadding = Option<Int>("crop-padding", "P", default: 2, range: 1...64, help: "padding of the random crop")
    static let seed = Option<Int>("seed", "N", default: 1, range: 0...Int.max, help: "random seed (initialisation, shuffling, augmentation)")
    static let out = Option<String>("out", "DIR", default: "runs/latest", help: "output directory")
    static let resume = Flag("resume", help: "continue from OUT/checkpoint.safetensors")
    static let replaceWeights = Option<String?>(
        "replace-weights", "FILE",
        help: "with --resume: the model's weights from FILE (safetensors, model tensors by name), the run's optimizer state, epoch, step and selection state kept (federated rounds: docs/federated.md)")
    static let force = Flag("force", help: "OUT holds another run: move it aside to OUT.previous-N and start afresh")
    static let trainSubset = Option<Int?>("train-subset", "N", range: 0...Int.max, shown: "all",
                                          help: "train on the first N training samples only (quick experiments)")
    static let trainLimit = Option<Int?>("train-limit", "N", range: 0...Int.max, shown: nil, help: "the same as --train-subset (older name)")
    static let testLimit = Option<Int?>("test-limit", "N", range: 0...Int.max, shown: "all", help: "use only the first N test samples")
    static let memoryBudgetMB = Option<Int?>("memory-budget-mb", "MB", range: 1...1 << 30, shown: "none",
                                             help: "refuse a memory plan above this many MiB")
    static let stopAfterEpoch = Option<Int?>("stop-after-epoch", "N", range: 0...Int.max, shown: "none",
                                             help: "stop after epoch N as if interrupted (continue with --resume)")
    static let onNaN = Choice<NaNAction>(
        "on-nan", "stop|backoff", names: ["stop", "backoff"], values: [.stop, .backoff], default: .stop,
        help: "a NaN/Inf loss or weight: stop naming the last good checkpoint, or reload it with half the learning rate (at most \(NaNAction.maximumBackoffs) times)")
    static let noProgress = Flag("no-progress", help: "no progress bar even on a terminal")
    static let dumpLosses = Option<String?>(
        "dump-losses", "DIR",
        help: "after each epoch write every sample's loss and planned action to DIR/losses-EEEE.bin (docs/loss-dump.md; tools/check-ies-reference reads them)")

    static let syncBN = Flag(
        "sync-bn", help: "under mpirun: batch-norm statistics over the global batch instead of each rank's part (PyTorch's SyncBatchNorm; one exchange per batch-norm layer and pass; not with --exact-parts; MPI builds only)")

    static let exactParts = Option<Int?>(
        "exact-parts", "P", range: 1...128, shown: "off",
        help: "compute each batch's gradient as P parts summed exactly: runs on any number of ranks dividing P (mpirun -np K) give bit-identical results")

    static let precision = Choice<Precision>(
        "precision", "fp32|fp16", names: ["fp32", "fp16"], values: [.fp32, .fp16], default: .fp32,
        help: "fp16: binary16 activations, gradients and compute weights with fp32 accumulation, master weights and optimizer, dynamic loss scaling (docs/precision.md); rounded in software for now (no speed gain); fp32 on a CPU without FP16 arithmetic (A72)")

    static let specs = [
        model.spec, modelFile.spec, DataOptions.data.spec, DataOptions.memoryMB.spec, DataOptions.throttle.spec, epochs.spec,
        batch.spec, threads.spec, board.spec, optimizer.spec, learningRate.spec, momentum.spec, noNesterov.spec,
        weightDecay.spec, schedule.spec, warmup.spec, augment.spec, cropPadding.spec, seed.spec, out.spec, resume.spec, replaceWeights.spec, force.spec,
        trainSubset.spec, trainLimit.spec, testLimit.spec, memoryBudgetMB.spec, stopAfterEpoch.spec, onNaN.spec,
        noProgress.spec, dumpLosses.spec, syncBN.spec, exactParts.spec, precision.spec,
    ]
}
