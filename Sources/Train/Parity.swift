import Data
import Kernels
import NN
import Platform

/// A fixed run for checking Leitner against another framework (tools/compare-pytorch): the
/// first `steps x batch` training samples in file order, no augmentation, SGD with a constant
/// rate. Writes OUT/initial.safetensors (weights before training), OUT/gradients1.safetensors
/// (every parameter's gradient of the first step, named like the weights), OUT/final.safetensors
/// and OUT/losses.txt (the mean batch loss of every step, one per line, as %.9g-like text).
/// With `dumpActivations`, also OUT/activations1.safetensors and
/// OUT/output-gradients1.safetensors: every node's output of step 1 and its output gradient,
/// named by node name, NCHW ([N, C, H, W], or [N, F] for flat nodes) like PyTorch's tensors.
/// They are copied as the training step computes them (`Model.observedForwardBackward`), so a
/// reference can follow Leitner's own decisions at ReLU kinks (tools/compare-pytorch).
public enum ParityRun {
    public static func run(config: TrainConfig, train: Dataset, steps: Int, output: String,
                           dumpActivations: Bool = false, reporter: Reporter = Reporter()) throws(TrainError) {
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
        let dump = dumpActivations ? try ActivationDump(model: model, batch: config.batch, reporter: reporter) : nil
        var losses = ""
        for step in 0..<steps {
            assembler.assemble(indices: UnsafeBufferPointer(start: order + step * config.batch, count: config.batch),
                               input: model.input, labels: model.labels)
            if step == 0, let dump {
                model.observedForwardBackward(batch: config.batch, forwardDone: { dump.copyOutput(ofNode: $0) },
                                              backwardReady: { dump.copyGradient(ofNode: $0) })
                try dump.write(output: output, modelText: config.model.text)
            } else {
                model.forwardBackward(batch: config.batch)
            }
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

/// Step 1's node outputs and output gradients, copied out of the training step into NCHW
/// buffers sized and allocated once before it (two floats per activation element of the batch).
final class ActivationDump {
    let model: Model
    let batch: Int
    let arena: Arena
    let outputs: [UnsafeMutablePointer<Float>]
    let gradients: [UnsafeMutablePointer<Float>]
    var gradientWritten: [Bool]

    init(model: Model, batch: Int, reporter: Reporter) throws(TrainError) {
        self.model = model
        self.batch = batch
        let counts = model.shapes.map { batch * $0.count }
        let bytes = counts.reduce(0) { $0 + 2 * Arena.rounded($1 * 4) }
        reporter.note("parity: dumping step 1's \(counts.count) node outputs and output gradients (\(bytes / (1 << 20)) MiB)")
        do throws(MemoryError) {
            arena = try Arena(name: "activation dump", capacityBytes: bytes)
            var outputs: [UnsafeMutablePointer<Float>] = [], gradients: [UnsafeMutablePointer<Float>] = []
            for (index, count) in counts.enumerated() {
                let name = model.description.layers[index].name
                outputs.append(try arena.floats(count, label: "output of " + name))
                gradients.append(try arena.floats(count, label: "output gradient of " + name))
            }
            self.outputs = outputs
            self.gradients = gradients
        } catch { throw TrainError(error.description) }
        gradientWritten = [Bool](repeating: false, count: counts.count)
    }

    /// CNHW (or [N, F] rows) to NCHW (or the same rows).
    private func copy(_ source: UnsafePointer<Float>, to target: UnsafeMutablePointer<Float>, node: Int) {
        let shape = model.shapes[node]
        if shape.isFlat {
            Elementwise.copy(target, source, count: batch * shape.count)
        } else {
            Layout.cnhwToRows(rows: target, cnhw: source, channels: shape.channels, batch: batch, height: shape.height, width: shape.width)
        }
    }

    func copyOutput(ofNode node: Int) { copy(model.output(ofNode: node), to: outputs[node], node: node) }

    func copyGradient(ofNode node: Int) {
        copy(model.outputGradient(ofNode: node), to: gradients[node], node: node)
        gradientWritten[node] = true
    }

    /// OUT/activations1.safetensors and OUT/output-gradients1.safetensors (nodes without a
    /// gradient, frozen ones, are left out of the second).
    func write(output: String, modelText: String) throws(TrainError) {
        var outputSources: [SafeTensorsSource] = [], gradientSources: [SafeTensorsSource] = []
        for (index, layer) in model.description.layers.enumerated() {
            let shape = model.shapes[index]
            let dims = shape.isFlat ? [batch, shape.count] : [batch, shape.channels, shape.height, shape.width]
            outputSources.append(SafeTensorsSource(name: layer.name, shape: dims, pointer: UnsafePointer(outputs[index])))
            if gradientWritten[index] {
                gradientSources.append(SafeTensorsSource(name: layer.name, shape: dims, pointer: UnsafePointer(gradients[index])))
            }
        }
        let metadata = [("model_description", modelText), ("step", "1"), ("layout", "NCHW")]
        do throws(SafeTensorsError) {
            try SafeTensors.write(path: output + "/activations1.safetensors", tensors: outputSources, metadata: metadata)
            try SafeTensors.write(path: output + "/output-gradients1.safetensors", tensors: gradientSources, metadata: metadata)
        } catch { throw TrainError(error.description) }
    }
}
