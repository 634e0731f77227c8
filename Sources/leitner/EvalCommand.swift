import Data
import NN
import Platform
import Train

/// `leitner eval`: test loss and accuracy of a checkpoint.
enum EvalCommand {
    static let spec = CommandSpec(
        name: "eval",
        summary: """
        Evaluates a checkpoint written by 'leitner train' on the test set: loss, accuracy and
        throughput. The model comes from the checkpoint's metadata.
        """,
        positionals: "CHECKPOINT",
        options: [
            OptionSpec("data", value: "DIR", help: "directory with the t10k-* IDX files", default: "Fashion-MNIST"),
            OptionSpec("batch", value: "N", help: "batch size", default: "256"),
            OptionSpec("threads", value: "N", help: "threads", default: "2"),
        ])

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.count == 1 else {
            throw UsageError(message: "leitner eval: give one checkpoint file (see leitner eval --help)")
        }
        let path = options.positionals[0]
        let metadata: [(String, String)]
        do { metadata = try Checkpoint.readMetadata(path: path) } catch {
            Console.error("leitner eval: " + error.description)
            return 1
        }
        guard let text = Checkpoint.value("model_description", in: metadata) else {
            Console.error("leitner eval: \(path) has no model_description metadata (not written by leitner train?)")
            return 1
        }
        let description: ModelDescription
        do { description = try ModelDescription.parse(text, name: Checkpoint.value("model", in: metadata) ?? "model") } catch {
            Console.error("leitner eval: \(path): " + error.message)
            return 1
        }
        var config = TrainConfig(model: description)
        config.batch = try options.int("batch", default: 256, range: 1...65_536)
        config.threads = try options.int("threads", default: 2, range: 1...256)
        guard let data = TrainCommand.loadData(options) else { return 1 }
        do throws(TrainError) {
            let trainer = try Trainer(config: config, train: data.test, test: data.test)
            do { try Checkpoint.load(path: path, into: trainer.model) } catch { throw TrainError(error.description) }
            let started = Clock.seconds()
            let result = trainer.evaluate()
            let seconds = Clock.seconds() - started
            print("checkpoint: \(path) (model \(description.name), epoch \(Checkpoint.value("epoch", in: metadata) ?? "?"))")
            print("test: \(data.test.count) samples, loss \(Format.fixed(result.loss, 4)), accuracy \(Format.fixed(100 * result.accuracy, 2))% (\(Format.fixed(Double(data.test.count) / max(seconds, 1e-9), 0)) samples/s)")
            return 0
        } catch {
            Console.error("leitner eval: " + error.message)
            return 1
        }
    }
}
