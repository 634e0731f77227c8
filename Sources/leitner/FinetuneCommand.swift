import Data
import NN
import Platform
import Select
import Train

/// `leitner finetune`: `leitner train` starting from pretrained weights, with partial updates.
enum FinetuneCommand {
    static let spec = CommandSpec(
        name: "finetune",
        summary: """
        Fine-tunes pretrained weights on local data: 'leitner train' with every one of its
        options (policies, checkpoints, --resume, metrics log), starting from --from instead of
        a random initialisation. --from is a Leitner checkpoint or a PyTorch state_dict saved
        with safetensors.torch.save_file (names in docs/checkpoints.md). The model is --model,
        or the checkpoint's own description when --model and --model-file are not given. When
        the data's class count differs from the pretrained head's, the last linear layer is
        replaced by a new one (seeded PyTorch default initialisation) that is always trained.
        --update freezes the rest: frozen layers get no gradient, keep no activation only
        their gradients would read, and batch norm uses its pretrained running statistics
        (docs/finetune.md); the memory plan line shows the activation memory of the mode.
        """,
        positionals: "",
        options: [from.spec, update.spec] + TrainCommand.spec.options)

    static let from = Option<String?>("from", "FILE", help: "pretrained weights (safetensors; required)")
    static let update = Parsed<UpdateMode>("update", "MODE", default: .all, shown: "all", help: "what trains: " + UpdateMode.syntax,
                                           expected: UpdateMode.syntax) { UpdateMode(parsing: $0) }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.isEmpty else {
            throw UsageError(message: "leitner finetune: unexpected argument '\(options.positionals[0])' (see leitner finetune --help)")
        }
        guard let path = try options.value(from) else {
            throw UsageError(message: "leitner finetune: --from FILE is required (pretrained weights; see leitner finetune --help)")
        }
        let update = try options.value(Self.update)
        let metadata: [(String, String)]
        do { metadata = try Checkpoint.readMetadata(path: path) } catch {
            Console.error("leitner finetune: --from: " + error.description)
            return 1
        }
        let fileModel = !options.isGiven(TrainOptions.model) && !options.isGiven(TrainOptions.modelFile)
            ? Checkpoint.value("model_description", in: metadata) : nil
        var config = try TrainCommand.config(options)
        if let fileModel {
            config.modelName = Checkpoint.value("model", in: metadata) ?? "model"
            do { config.model = try ModelDescription.parse(fileModel, name: config.modelName) }
            catch { Console.error("leitner finetune: --from \(path): " + error.message); return 1 }
        }
        config.pretrained = path
        config.update = update
        let policy = try options.value(PolicyOptions.policy)
        let settings = try PolicyOptions.settings(options)
        try PolicyOptions.checkRead(options, by: [policy], command: "finetune")
        let reporter = Reporter()
        guard let data = try DataOptions.load(options, reporter: reporter) else { return 1 }
        do throws(TrainError) {
            print("pretrained: \(path) (model \(config.modelName)\(fileModel != nil ? ", description from the file" : ""))")
            print(try FineTune.fitHead(&config, classes: data.train.classCount))
        } catch {
            Console.error("leitner finetune: " + error.message)
            return 1
        }
        return TrainCommand.train(config: config, policy: policy, settings: settings, data: data, reporter: reporter, command: "finetune")
    }
}
