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
        options: [
            OptionSpec("model", value: "NAME", help: "reference model: " + ModelZoo.names.joined(separator: ", "), default: "cnn-s"),
            OptionSpec("model-file", value: "FILE", help: "a model description in the text form (see README)"),
            OptionSpec("data", value: "DIR", help: "directory with train.pack and test.pack, or {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]", default: "Fashion-MNIST"),
            OptionSpec("data-memory-mb", value: "MB", help: "stream the packs with at most this much data memory (prefetch thread, cache when the set fits)", default: "load all"),
            OptionSpec("data-throttle", value: "MBPS:MS", help: "with --data-memory-mb: slow reads down to MBPS MB/s plus MS ms per read (SD card experiments)", default: "none"),
            OptionSpec("epochs", value: "N", help: "epochs", default: "15"),
            OptionSpec("batch", value: "N", help: "batch size", default: "64"),
            OptionSpec("threads", value: "N", help: "threads", default: "2, or the board's"),
            OptionSpec("board", value: "NAME|FILE", help: "board profile (leitner boards): default threads, memory budget and power model", default: "none"),
            OptionSpec("optimizer", value: "sgd|adamw", help: "optimizer", default: "sgd"),
            OptionSpec("lr", value: "RATE", help: "base learning rate", default: "0.05 (sgd), 0.001 (adamw)"),
            OptionSpec("momentum", value: "M", help: "SGD momentum", default: "0.9"),
            OptionSpec("no-nesterov", help: "plain momentum instead of Nesterov"),
            OptionSpec("weight-decay", value: "W", help: "weight decay", default: "5e-4 (sgd), 0.01 (adamw)"),
            OptionSpec("schedule", value: "KIND", help: LearningRateSchedule.syntax, default: "cosine"),
            OptionSpec("warmup", value: "EPOCHS", help: "linear warm-up epochs", default: "0"),
            OptionSpec("augment", value: "KIND", help: "none | flip | crop | crop+flip (crop pads by --crop-padding)", default: "none"),
            OptionSpec("crop-padding", value: "P", help: "padding of the random crop", default: "2"),
            OptionSpec("seed", value: "N", help: "random seed (initialisation, shuffling, augmentation)", default: "1"),
            OptionSpec("out", value: "DIR", help: "output directory", default: "runs/latest"),
            OptionSpec("resume", help: "continue from OUT/checkpoint.safetensors"),
            OptionSpec("train-subset", value: "N", help: "train on the first N training samples only (quick experiments)", default: "all"),
            OptionSpec("train-limit", value: "N", help: "the same as --train-subset (older name)"),
            OptionSpec("test-limit", value: "N", help: "use only the first N test samples", default: "all"),
            OptionSpec("memory-budget-mb", value: "MB", help: "refuse a memory plan above this many MiB", default: "none"),
            OptionSpec("stop-after-epoch", value: "N", help: "stop after epoch N as if interrupted (continue with --resume)", default: "none"),
            OptionSpec("on-nan", value: "stop|backoff", help: "a NaN/Inf loss or weight: stop naming the last good checkpoint, or reload it with half the learning rate (at most \(NaNAction.maximumBackoffs) times)", default: "stop"),
            OptionSpec("no-progress", help: "no progress bar even on a terminal"),
            OptionSpec("dump-losses", value: "DIR", help: "after each epoch write every sample's loss and planned action to DIR/losses-EEEE.bin (docs/loss-dump.md; tools/check-ies-reference reads them)"),
        ] + dataSelectionSpecs + PolicyOptions.specs + EnergyOptions.specs)

    /// Class selection, shared by train, finetune and eval.
    static let dataSelectionSpecs = [
        OptionSpec("classes", value: "LIST", help: "keep only these classes (e.g. 5-9 or 0,2,4), train and test, labels renumbered 0..k-1 in this order", default: "all"),
        OptionSpec("per-class", value: "N", help: "train on the first N training samples of each kept class", default: "all"),
    ]

    /// Parses the options shared by train-like commands into a configuration.
    static func config(_ options: ParsedOptions) throws(UsageError) -> TrainConfig {
        let description: ModelDescription
        let modelName = options.string("model", default: "cnn-s")
        if let file = options.values["model-file"] {
            guard let bytes = try? FileSystem.readAll(file) else { throw UsageError(message: "leitner: cannot read --model-file \(file)") }
            do { description = try ModelDescription.parse(String(decoding: bytes, as: UTF8.self), name: file) }
            catch { throw UsageError(message: "leitner: \(error.message)") }
        } else {
            do { description = try ModelZoo.description(named: modelName) }
            catch { throw UsageError(message: "leitner: \(error.message)") }
        }
        var config = TrainConfig(model: description)
        config.modelName = options.values["model-file"] ?? modelName
        config.epochs = try options.int("epochs", default: 15, range: 1...100_000)
        config.batch = try options.int("batch", default: 64, range: 1...65_536)
        var boardThreads = 2
        if let boardName = options.values["board"] {
            let board: BoardProfile
            do { board = try BoardProfile.load(boardName) }
            catch { throw UsageError(message: "leitner: \(error.description)") }
            boardThreads = board.threads(onlineCores: SystemInfo.onlineCores())
            config.board = board
        }
        config.threads = try options.int("threads", default: boardThreads, range: 1...256)
        let optimizer = options.string("optimizer", default: "sgd")
        switch optimizer {
        case "sgd":
            let momentum = try options.double("momentum", default: 0.9, range: 0...0.999_999)
            config.optimizer = .sgd(momentum: momentum, nesterov: !options.flag("no-nesterov") && momentum > 0,
                                    weightDecay: try options.double("weight-decay", default: 5e-4, range: 0...1))
            config.learningRate = try options.double("lr", default: 0.05, range: 1e-9...100)
        case "adamw":
            config.optimizer = .adamw(beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
                                      weightDecay: try options.double("weight-decay", default: 0.01, range: 0...1))
            config.learningRate = try options.double("lr", default: 0.001, range: 1e-9...100)
        default:
            throw UsageError(message: "leitner: --optimizer must be sgd or adamw, got '\(optimizer)'")
        }
        let schedule = options.string("schedule", default: "cosine")
        guard let kind = LearningRateSchedule.parseKind(schedule) else {
            throw UsageError(message: "leitner: --schedule '\(schedule)' is not one of \(LearningRateSchedule.syntax)")
        }
        config.schedule = kind
        config.warmupEpochs = try options.double("warmup", default: 0, range: 0...100_000)
        let padding = try options.int("crop-padding", default: 2, range: 1...64)
        switch options.string("augment", default: "none") {
        case "none": config.augment = AugmentConfig()
        case "flip": config.augment = AugmentConfig(flip: true)
        case "crop": config.augment = AugmentConfig(cropPadding: padding)
        case "crop+flip", "flip+crop": config.augment = AugmentConfig(cropPadding: padding, flip: true)
        case let other: throw UsageError(message: "leitner: --augment must be none, flip, crop or crop+flip, got '\(other)'")
        }
        config.seed = UInt64(try options.int("seed", default: 1, range: 0...Int.max))
        config.outputDirectory = options.string("out", default: "runs/latest")
        config.resume = options.flag("resume")
        config.trainLimit = try trainSubset(options)
        config.testLimit = try options.int("test-limit", default: 0, range: 0...Int.max)
        if options.values["memory-budget-mb"] != nil {
            config.memoryBudgetBytes = try options.int("memory-budget-mb", default: 0, range: 1...1 << 30) << 20
        } else if let board = config.board {
            config.memoryBudgetBytes = board.memoryBudgetBytes
        }
        config.stopAfterEpoch = try options.int("stop-after-epoch", default: 0, range: 0...Int.max)
        switch options.string("on-nan", default: "stop") {
        case "stop": config.onNaN = .stop
        case "backoff": config.onNaN = .backoff
        case let other: throw UsageError(message: "leitner: --on-nan must be stop or backoff, got '\(other)'")
        }
        if options.flag("no-progress") { config.progress = false }
        config.lossDumpDirectory = options.values["dump-losses"]
        config.energy = try EnergyOptions.settings(options)
        if options.values["power-model"] == nil, let board = config.board {
            // The board profile's power model unless --power-model overrides it.
            config.energy.powerModel = PowerModel(idleWatts: board.idleWatts, activeWattsPerCore: board.activeWattsPerCore,
                                                  name: "board " + board.name)
        }
        return config
    }

    /// `--train-subset N`, or its older name `--train-limit N` (both given: they must agree).
    static func trainSubset(_ options: ParsedOptions) throws(UsageError) -> Int {
        let subset = try options.int("train-subset", default: 0, range: 0...Int.max)
        let limit = try options.int("train-limit", default: 0, range: 0...Int.max)
        if options.values["train-subset"] != nil && options.values["train-limit"] != nil && subset != limit {
            throw UsageError(message: "leitner: --train-subset \(subset) and --train-limit \(limit) disagree (--train-limit is the older name of --train-subset)")
        }
        return options.values["train-subset"] != nil ? subset : limit
    }

    /// Locates and loads the data the options name (default: Fashion-MNIST), applies
    /// --classes and --per-class, and says which.
    static func loadData(_ options: ParsedOptions) -> (train: Dataset, test: Dataset)? {
        guard let data = loadAllData(options) else { return nil }
        guard options.values["classes"] != nil || options.values["per-class"] != nil else { return data }
        let classText = options.string("classes", default: "0-\(data.train.classCount - 1)")
        guard let classes = Dataset.parseClasses(classText, classCount: data.train.classCount) else {
            Console.error("leitner: --classes must list distinct classes in 0...\(data.train.classCount - 1) as ranges or commas (e.g. 5-9 or 0,2,4), got '\(classText)'")
            return nil
        }
        do throws(DataError) {
            let perClass: Int
            do throws(UsageError) { perClass = try options.int("per-class", default: 0, range: 1...Int.max) }
            catch { Console.error(error.message); return nil }
            let train = try data.train.selectingClasses(classes, perClass: perClass)
            let test = try data.test.selectingClasses(classes)
            print("classes: \(classText) as labels 0-\(classes.count - 1); train \(train.count) samples\(perClass > 0 ? " (first \(perClass) per class)" : ""), test \(test.count)")
            return (train, test)
        } catch {
            Console.error("leitner: " + error.description)
            return nil
        }
    }

    static func loadAllData(_ options: ParsedOptions) -> (train: Dataset, test: Dataset)? {
        var budgetBytes: Int? = nil
        var throttle = PackSource.Throttle.none
        do throws(UsageError) {
            if options.values["data-memory-mb"] != nil {
                budgetBytes = try options.int("data-memory-mb", default: 0, range: 1...1 << 20) << 20
            }
            if let text = options.values["data-throttle"] {
                let parts = text.split(separator: ":")
                guard parts.count == 2, let rate = Double(parts[0]), rate > 0, let milliseconds = Double(parts[1]), milliseconds >= 0 else {
                    throw UsageError(message: "leitner: --data-throttle must be MBPS:MS, e.g. 20:2, got '\(text)'")
                }
                throttle = PackSource.Throttle(bytesPerSecond: rate * 1e6, latencySeconds: milliseconds / 1000)
            }
        } catch {
            Console.error(error.message)
            return nil
        }
        do throws(DataError) {
            let files = try DatasetLocator.fashionMNIST(dataDirectory: options.values["data"])
            print("data: " + files.description)
            if let budgetBytes {
                guard let trainPack = files.trainPack, let testPack = files.testPack else {
                    Console.error("leitner: --data-memory-mb streams packs, but \(files.directory) holds IDX files; convert them with 'leitner pack idx IMAGES LABELS --out DIR/train.pack' (and test.pack)")
                    return nil
                }
                let data = try streamPacks(train: trainPack, test: testPack, budgetBytes: budgetBytes,
                                           normalization: FashionMNIST.normalization, throttle: throttle)
                for (name, set) in [("train", data.train), ("test", data.test)] {
                    let stream = set.stream!
                    print("data memory: \(name) \(stream.cacheMode ? "cached after its first read" : "streamed") in \(stream.plannedBytes >> 10) KiB (\(stream.pack.uncompressedBytes >> 10) KiB decompressed, \(stream.pack.fileBytes >> 10) KiB packed; budget \(budgetBytes >> 20) MiB)")
                }
                return data
            }
            return try FashionMNIST.load(files)
        } catch {
            Console.error("leitner: " + error.description)
            return nil
        }
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.isEmpty else {
            throw UsageError(message: "leitner train: unexpected argument '\(options.positionals[0])' (see leitner train --help)")
        }
        let config = try config(options)
        try checkPolicy(options)
        guard let data = loadData(options) else { return 1 }
        return try train(options, config: config, data: data, command: "train")
    }

    /// The --policy name, checked before any data is loaded.
    static func checkPolicy(_ options: ParsedOptions) throws(UsageError) {
        let policyName = options.string("policy", default: "full")
        guard PolicyOptions.names.contains(policyName) else {
            throw UsageError(message: "leitner: unknown --policy '\(policyName)' (known: \(PolicyOptions.names.joined(separator: ", ")))")
        }
    }

    /// Runs the training session with the policy the options name (train and finetune).
    static func train(_ options: ParsedOptions, config: TrainConfig, data: (train: Dataset, test: Dataset),
                      command: String) throws(UsageError) -> Int32 {
        let policyName = options.string("policy", default: "full")
        let sampleCount = config.trainLimit > 0 ? min(config.trainLimit, data.train.count) : data.train.count
        print("policy: \(policyName)")
        let outcome = try PolicyOptions.withPolicy(
            options, name: policyName, sampleCount: sampleCount, epochs: config.epochs,
            runner: SessionRunner(config: config, train: data.train, test: data.test))
        switch outcome {
        case .success: return 0
        case .failure(let error):
            Console.error("leitner \(command): " + error.message)
            return 1
        }
    }
}

/// Trains one run with the given policy; returns the epochs' metrics.
struct SessionRunner: PolicyRunner {
    let config: TrainConfig
    let train: Dataset
    let test: Dataset
    /// A running energy recorder to share (energy-run); nil: the session opens its own.
    var recorder: EnergyRecorder? = nil

    func run<P: SelectionPolicy>(_ policy: inout P) throws(TrainError) -> [EpochMetrics] {
        let session = try TrainingSession(config: config, train: train, test: test, validationFraction: policy.validationFraction)
        session.recorder = recorder
        // Always wrapped (a no-op without a directory): one specialization per policy.
        var wrapped = try LossDumpingPolicy(policy, sampleCount: session.trainer.train.count, directory: config.lossDumpDirectory)
        if let directory = config.lossDumpDirectory { print("loss dump: \(directory)/losses-EEEE.bin after each epoch") }
        try session.run(policy: &wrapped)
        policy = wrapped.inner
        return session.history
    }
}
