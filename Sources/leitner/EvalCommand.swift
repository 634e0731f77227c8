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
        options: [from.spec, model.spec, DataOptions.data.spec, batch.spec, threads.spec, DataOptions.classes.spec])

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
        let checkpoint: Evaluation.Checkpointed
        do throws(TrainError) { checkpoint = try Evaluation.inspect(path) } catch {
            Console.error("leitner eval: " + error.message)
            return 1
        }
        let description: ModelDescription
        if let model = checkpoint.model {
            description = model
        } else {
            do { description = try ModelZoo.description(named: modelName) }
            catch { throw UsageError(message: "leitner eval: \(error.message)") }
        }
        // A run trained on some classes (train --classes 0-4 keeps the head's width and
        // renumbers the labels) is evaluated on those classes, numbered as in training: by
        // default, or when --classes names the same list. Another list would score renumbered
        // labels against outputs trained for other classes.
        let givenClasses = try options.value(DataOptions.classes)
        var source = try DataOptions.source(options)
        if let trained = checkpoint.classes {
            if let givenClasses, givenClasses != trained {
                throw UsageError(message: "leitner eval: the checkpoint was trained on classes \(trained) (labels 0..k-1 in that order); --classes \(givenClasses) would score other classes against its outputs: give --classes \(trained) or leave it out")
            }
            source.classes = trained
        }
        guard let data = DataOptions.load(source, reporter: Reporter()) else { return 1 }
        // A head of another width would score renumbered labels against the wrong outputs.
        if checkpoint.model != nil && checkpoint.classes == nil && data.test.classCount != description.classes {
            throw UsageError(message: "leitner eval: the checkpoint's model has \(description.classes) classes but the test data has \(data.test.classCount)\(givenClasses != nil ? " after --classes" : ""): evaluate on the classes it was trained on")
        }
        if let trained = checkpoint.classes, description.classes < data.test.classCount {
            throw UsageError(message: "leitner eval: the checkpoint's head has \(description.classes) outputs but it was trained on \(data.test.classCount) classes (\(trained))")
        }
        do throws(TrainError) {
            let result = try Evaluation.run(path, model: description, fitHead: checkpoint.model == nil, test: data.test,
                                            batch: batch, threads: threads)
            print("checkpoint: \(path) (model \(description.name), epoch \(checkpoint.epoch ?? "?")\(checkpoint.classes.map { ", trained on classes \($0)" } ?? ""))")
            print("test: \(result.samples) samples, loss \(Format.fixed(result.loss, 4)), accuracy \(Format.fixed(100 * result.accuracy, 2))% (\(Format.fixed(result.samplesPerSecond, 0)) samples/s)")
            return 0
        } catch {
            Console.error("leitner eval: " + error.message)
            return 1
        }
    }
}
