import Data
import NN
import Platform

/// Test loss and accuracy of a checkpoint (`leitner eval`): one written by train or finetune
/// (its metadata holds the model), or a PyTorch state_dict saved with safetensors.
public enum Evaluation {
    /// What a checkpoint says about itself: its model (nil for a bare state_dict) and epoch.
    public struct Checkpointed {
        public var model: ModelDescription?
        public var epoch: String?
        /// The classes the run trained on (`--classes`, relabelled 0..k-1), nil when all.
        public var classes: String?
    }

    public struct Result {
        public var samples: Int
        public var loss: Double
        public var accuracy: Double
        public var seconds: Double
        public var samplesPerSecond: Double { Double(samples) / max(seconds, 1e-9) }
    }

    /// Reads `path`'s metadata: the model description it was trained with, and its epoch.
    public static func inspect(_ path: String) throws(TrainError) -> Checkpointed {
        let metadata: [(String, String)]
        do { metadata = try Checkpoint.readMetadata(path: path) } catch { throw TrainError(error.description) }
        let classes = Checkpoint.value("run.classes", in: metadata)
        var result = Checkpointed(model: nil, epoch: Checkpoint.value("epoch", in: metadata),
                                  classes: classes == nil || classes == "all" ? nil : classes)
        if let text = Checkpoint.value("model_description", in: metadata) {
            do { result.model = try ModelDescription.parse(text, name: Checkpoint.value("model", in: metadata) ?? "model") }
            catch { throw TrainError("\(path): " + error.message) }
        }
        return result
    }

    /// Evaluates the weights in `path` as `model` on `test`, forward only, `batch` samples at a
    /// time on `threads` threads. `fitHead`: a bare state_dict, whose head first gets the
    /// data's class count (a file whose head differs is then reported as mis-shaped by the load).
    public static func run(_ path: String, model: ModelDescription, fitHead: Bool, test: Dataset,
                           batch: Int, threads: Int) throws(TrainError) -> Result {
        var description = model
        if fitHead {
            var sized = TrainConfig(model: description)
            sized.pretrained = path
            _ = try FineTune.fitHead(&sized, classes: test.classCount)
            description = sized.model
        }
        var config = TrainConfig(model: description)
        config.batch = batch
        config.threads = threads
        let trainer = try Trainer(config: config, train: test, test: test)
        do { try Checkpoint.load(path: path, into: trainer.model) } catch { throw TrainError(error.description) }
        let started = Clock.seconds()
        let result = trainer.evaluate()
        let seconds = Clock.seconds() - started
        if let failure = trainer.dataFailure { throw TrainError(failure) }
        return Result(samples: test.count, loss: result.loss, accuracy: result.accuracy, seconds: seconds)
    }
}
