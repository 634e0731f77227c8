import Data
import NN
import Platform
import Train

/// `leitner eval`: test loss and accuracy of a checkpoint.
enum EvalCommand {
    static let spec = CommandSpec(
        name: "eval",
        summary: """
        Evaluates a checkpoint written by 'leitner train' or 'leitner finetune', or a PyTorch
        state_dict saved with safetensors.torch.save_file, on the test set: loss, accuracy and
        throughput. The model comes from the checkpoint's metadata, else from --model with its
        head sized to the data's classes.
        """,
        positionals: "[CHECKPOINT]",
        options: [from.spec, model.spec, DataOptions.data.spec, batch.spec, threads.spec] + DataOptions.selectionSpecs)

    static let from = Option<String?>("from", "FILE", help: "the weights (instead of the CHECKPOINT argument)")
    static let model = Option<String>("model", "NAME", default: "cnn-s",
                                      help: "for files without Leitner metadata: " + ModelZoo.names.joined(separator: ", "))
    static let batch = Option<Int>("batch", "N", default: 256, range: 1...65_536, help: "batch size")
    static let threads = Option<Int>("threads", "N", default: 2, range: 1...256, help: "threads")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let files = options.positionals + (try options.value(from).map { [$0] } ?? [])
        let modelName = try options.value(model)
        let batch = try options.value(Self.batch)
        let threads = try options.value(Self.threads)
        guard files.count == 1 else {
            throw UsageError(message: "leitner eval: give one checkpoint file, as an argument or with --from (see leitner eval --help)")
        }
        let path = files[0]
        let metadata: [(String, String)]
        do { metadata = try Checkpoint.readMetadata(path: path) } catch {
            Console.error("leitner eval: " + error.description)
            return 1
        }
        var description: ModelDescription
        if let text = Checkpoint.value("model_description", in: metadata) {
            do { description = try ModelDescription.parse(text, name: Checkpoint.value("model", in: metadata) ?? "model") } catch {
                Console.error("leitner eval: \(path): " + error.message)
                return 1
            }
        } else {
            do { description = try ModelZoo.description(named: modelName) }
            catch { throw UsageError(message: "leitner eval: \(error.message)") }
        }
        guard let data = DataOptions.load(options, reporter: Reporter()) else { return 1 }
        if Checkpoint.value("model_description", in: metadata) == nil {
            // A bare state_dict: the head gets the data's class count; a file whose head
            // differs is then reported as mis-shaped by the load.
            var sized = TrainConfig(model: description)
            sized.pretrained = path
            do throws(TrainError) { _ = try FineTune.fitHead(&sized, classes: data.test.classCount) }
            catch { Console.error("leitner eval: " + error.message); return 1 }
            description = sized.model
        }
        var config = TrainConfig(model: description)
        config.batch = batch
        config.threads = threads
        do throws(TrainError) {
            let trainer = try Trainer(config: config, train: data.test, test: data.test)
            do { try Checkpoint.load(path: path, into: trainer.model) } catch { throw TrainError(error.description) }
            let started = Clock.seconds()
            let result = trainer.evaluate()
            let seconds = Clock.seconds() - started
            if let failure = trainer.dataFailure { throw TrainError(failure) }
            print("checkpoint: \(path) (model \(description.name), epoch \(Checkpoint.value("epoch", in: metadata) ?? "?"))")
            print("test: \(data.test.count) samples, loss \(Format.fixed(result.loss, 4)), accuracy \(Format.fixed(100 * result.accuracy, 2))% (\(Format.fixed(Double(data.test.count) / max(seconds, 1e-9), 0)) samples/s)")
            return 0
        } catch {
            Console.error("leitner eval: " + error.message)
            return 1
        }
    }
}
