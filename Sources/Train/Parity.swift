import Data
import Kernels
import NN
import Platform

/// A fixed run for checking Leitner against another framework (tools/compare-pytorch): the
/// first `steps x batch` training samples in file order, no augmentation, SGD with a constant
/// rate. Writes OUT/initial.safetensors (weights before training), OUT/gradients1.safetensors
/// (every parameter's gradient of the first step, named like the weights), OUT/final.safetensors
/// and OUT/losses.txt (the mean batch loss of every step, one per line, as %.9g-like text).
public enum ParityRun {
    public static func run(config: TrainConfig, train: Dataset, steps: Int, output: String) throws(TrainError) {
        var config = config
        config.trainLimit = 0
        config.testLimit = 0
        let needed = steps * config.batch
        guard needed <= train.count else { throw TrainError("parity: \(steps) steps of \(config.batch) need \(needed) samples, the set has \(train.count)") }
        let trainer = try Trainer(config: config, train: train, test: train.prefix(config.batch))
        let model = trainer.model
        do { try FileSystem.makeDirectories(output) } catch { throw TrainError(error) }
        let tensors = model.tensors()
        func save(_ name: String, gradients: Bool) throws(TrainError) {
            let sources = tensors.compactMap { tensor -> SafeTensorsSource? in
                if gradients {
                    guard tensor.trainable else { return nil }
                    return SafeTensorsSource(name: tensor.name, shape: tensor.shape, pointer: model.gradients + tensor.offset)
                }
                return SafeTensorsSource(name: tensor.name, shape: tensor.shape, pointer: tensor.pointer)
            }
            do { try SafeTensors.write(path: output + "/" + name, tensors: sources, metadata: [("model_description", config.model.text)]) }
            catch { throw TrainError(error.description) }
        }
        try save("initial.safetensors", gradients: false)
        let assembler = BatchAssembler(dataset: train)
        // The trainer's training order (in its index arena) holds the whole set.
        let order = trainer.order
        EpochOrder.sequential(count: needed, into: UnsafeMutableBufferPointer(start: order, count: needed))
        var losses = ""
        for step in 0..<steps {
            assembler.assemble(indices: UnsafeBufferPointer(start: order + step * config.batch, count: config.batch),
                               input: model.input, labels: model.labels)
            model.forwardBackward(batch: config.batch)
            var sum = 0.0
            for sample in 0..<config.batch { sum += Double(model.losses[sample]) }
            losses += "\(sum / Double(config.batch))\n"
            if step == 0 { try save("gradients1.safetensors", gradients: true) }
            trainer.optimizer.step(learningRate: config.learningRate)
        }
        if let failure = assembler.failure { throw TrainError(failure) }
        try save("final.safetensors", gradients: false)
        do {
            let file = try FileHandle.create(output + "/losses.txt")
            try file.write(losses)
            try file.close()
        } catch { throw TrainError(error) }
    }
}
