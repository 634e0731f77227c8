import Data
import Kernels
import NN
import Platform

/// Class probabilities of new samples from a checkpoint (`leitner predict`): the model from
/// its metadata, its weights, forward in evaluation mode, softmax over the classes the run
/// trained on (a run trained with --classes keeps a wider head; its other outputs are no class).
public final class Predictor {
    public let facts: DataFacts
    public let model: ModelDescription
    /// The classes scored: the first `classCount` outputs of the head.
    public let classCount: Int
    let network: Model
    let context: KernelContext
    let batch: Int

    public init(checkpoint path: String, batch: Int, threads: Int) throws(TrainError) {
        let metadata: [(String, String)]
        do { metadata = try Checkpoint.readMetadata(path: path) } catch { throw TrainError(error.description) }
        guard let text = Checkpoint.value("model_description", in: metadata) else {
            throw TrainError("\(path) has no model_description metadata: predict reads checkpoints written by leitner train or finetune")
        }
        do { model = try ModelDescription.parse(text, name: Checkpoint.value("model", in: metadata) ?? "model") }
        catch { throw TrainError("\(path): " + error.message) }
        facts = try DataFacts(metadata: metadata, path: path)
        let input = model.input
        guard facts.channels == input.channels, facts.height == input.height, facts.width == input.width else {
            throw TrainError("\(path): data.shape \(facts.channels)x\(facts.height)x\(facts.width) is not the model's input \(input.channels)x\(input.height)x\(input.width)")
        }
        guard facts.classNames.count <= model.classes else {
            throw TrainError("\(path): data.classes names \(facts.classNames.count) classes but the model has \(model.classes) outputs")
        }
        classCount = facts.classNames.count
        self.batch = batch
        do { context = try KernelContext(threads: threads) } catch { throw TrainError(error) }
        do { network = try Model(model, batch: batch, context: context) } catch { throw TrainError(error) }
        do { try Checkpoint.load(path: path, into: network) } catch { throw TrainError(error.description) }
    }

    /// The samples of `data` ([N, C, H, W] uint8, normalised with the checkpoint's statistics
    /// whatever `data` says), `batch` at a time through the model's own buffers: [N, classCount]
    /// probabilities, row-major.
    public func probabilities(_ data: Dataset) throws(TrainError) -> [Double] {
        try outputs(data, keepingLogits: false).probabilities
    }

    /// `probabilities(data)` and, when `keepingLogits`, the head's raw outputs: [N, model.classes]
    /// row-major, every output of the head (a --classes run's unused ones too), as computed.
    public func outputs(_ data: Dataset, keepingLogits: Bool) throws(TrainError) -> (probabilities: [Double], logits: [Float]) {
        guard data.channels == facts.channels, data.height == facts.height, data.width == facts.width else {
            throw TrainError("\(data.name): samples are \(data.channels)x\(data.height)x\(data.width), the checkpoint's data.shape is \(facts.channels)x\(facts.height)x\(facts.width)")
        }
        let normalized: Dataset
        do { normalized = data.stream == nil ? try data.withNormalization(facts.normalization) : data } catch { throw TrainError(error) }
        let assembler = BatchAssembler(dataset: normalized)
        let indices = (0..<data.count).map { Int32($0) }
        var result = [Double](repeating: 0, count: data.count * classCount)
        let outputs = model.classes
        var kept = [Float](repeating: 0, count: keepingLogits ? data.count * outputs : 0)
        var done = 0
        while done < data.count {
            let size = min(batch, data.count - done)
            indices[done..<done + size].withUnsafeBufferPointer { slice in
                assembler.assemble(indices: slice, input: network.input, labels: network.labels)
            }
            if let failure = assembler.failure { throw TrainError(failure) }
            network.forward(batch: size, training: false)
            let logits = network.logits
            if keepingLogits {
                for index in 0..<size * outputs { kept[done * outputs + index] = logits[index] }
            }
            for sample in 0..<size {
                // Softmax, shifted by the largest logit so that exp never overflows.
                let row = logits + sample * outputs
                var largest = -Double.infinity
                for index in 0..<classCount { largest = max(largest, Double(row[index])) }
                var total = 0.0
                let base = (done + sample) * classCount
                for index in 0..<classCount {
                    let value = FloatMath.exp(Double(row[index]) - largest)
                    result[base + index] = value
                    total += value
                }
                for index in 0..<classCount { result[base + index] /= total }
            }
            done += size
        }
        return (result, kept)
    }
}
