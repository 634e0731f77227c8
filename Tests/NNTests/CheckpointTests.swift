import CSystem
import Testing
import TestSupport
import Kernels
import NN
import Platform

/// Optimizer buffers laid out like a model's parameters, filled with recognisable values.
final class FakeAdamState {
    let firstMoment: UnsafeMutablePointer<Float>
    let secondMoment: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int, seed: Float) {
        self.count = count
        firstMoment = .allocate(capacity: max(count, 1))
        secondMoment = .allocate(capacity: max(count, 1))
        for index in 0..<count {
            firstMoment[index] = seed + Float(index) * 0.001
            secondMoment[index] = seed * 2 + Float(index) * 0.002
        }
    }

    deinit {
        firstMoment.deallocate()
        secondMoment.deallocate()
    }

    var state: OptimizerState { .adamW(firstMoment: firstMoment, secondMoment: secondMoment) }
}

func parameterBits(_ model: Model) -> [UInt32] {
    (0..<model.parameterCount).map { model.parameters[$0].bitPattern } + (0..<model.bufferCount).map { model.buffers[$0].bitPattern }
}

@Suite(.serialized) struct CheckpointTests {
    /// Save a model with AdamW state, load into a differently initialised model: every
    /// parameter, running statistic, moment and metadata pair comes back bit for bit.
    @Test func roundTripOfSmallModel() throws {
        let directory = checkpointTestDirectory("ckpt-round")
        defer { removeTestDirectory(directory) }
        let path = directory + "/model.safetensors"
        let context = try KernelContext(threads: 1)
        let source = try Model(smallModel(), batch: 2, context: context)
        source.initialize(seed: 1)
        for index in 0..<source.bufferCount { source.buffers[index] = Float(index) * 0.25 + 0.5 }
        let sourceState = FakeAdamState(count: source.parameterCount, seed: 0.125)
        let metadata = [("epoch", "4"), ("step", "1200"), ("rng_state", "123456789"), ("learning_rate", "0.001"),
                        ("model_description", "small: conv, bn, relu, add, pools, fc")]
        try Checkpoint.save(model: source, optimizer: sourceState.state, metadata: metadata, path: path)

        let target = try Model(smallModel(), batch: 2, context: context)
        target.initialize(seed: 2)
        let targetState = FakeAdamState(count: target.parameterCount, seed: 9)
        #expect(parameterBits(target) != parameterBits(source))
        let loaded = try Checkpoint.load(path: path, into: target, optimizer: targetState.state)
        #expect(parameterBits(target) == parameterBits(source))
        for index in 0..<source.parameterCount {
            #expect(targetState.firstMoment[index] == sourceState.firstMoment[index])
            #expect(targetState.secondMoment[index] == sourceState.secondMoment[index])
        }
        for (key, value) in metadata { #expect(Checkpoint.value(key, in: loaded) == value, "\(key)") }
        #expect(Checkpoint.value("format", in: loaded) == "leitner-checkpoint")
        #expect(Checkpoint.value("format_version", in: loaded) == "1")
        #expect(Checkpoint.value("optimizer", in: loaded) == "adamw")
        #expect(Checkpoint.value("model", in: loaded) == "small")
        #expect(Checkpoint.value("parameter_count", in: loaded) == "\(source.parameterCount)")
        let onlyMetadata = try Checkpoint.readMetadata(path: path)
        #expect(onlyMetadata.map(\.0) == loaded.map(\.0) && onlyMetadata.map(\.1) == loaded.map(\.1))

        // Names and shapes as a PyTorch state_dict, optimizer state beside each parameter.
        let reader = try SafeTensorsReader(path: path)
        let tensors = source.tensors()
        let trainable = tensors.filter(\.trainable)
        #expect(reader.entries.count == tensors.count + 2 * trainable.count)
        #expect(reader.header.entry(named: "conv0.weight")?.shape == [6, 2, 3, 3])
        #expect(reader.header.entry(named: "bn0.running_var")?.shape == [6])
        #expect(reader.header.entry(named: "optimizer.fc1.weight.exp_avg_sq")?.shape == [5, 12])
        let moment = try reader.floats("optimizer.conv1.bias.exp_avg")
        let bias = trainable.first { $0.name == "conv1.bias" }!
        #expect(moment == Array(UnsafeBufferPointer(start: sourceState.firstMoment + bias.offset, count: bias.count)))

        // Weights only: the optimizer tensors in the file are ignored.
        let weightsOnly = try Model(smallModel(), batch: 2, context: context)
        try Checkpoint.load(path: path, into: weightsOnly)
        #expect(parameterBits(weightsOnly) == parameterBits(source))
    }

    /// Unknown, missing, mis-shaped and mis-typed tensors are all listed in one error, and the
    /// model is left untouched.
    @Test func mismatchListsEveryProblem() throws {
        let directory = checkpointTestDirectory("ckpt-mismatch")
        defer { removeTestDirectory(directory) }
        let path = directory + "/other.safetensors"
        let context = try KernelContext(threads: 1)
        let model = try Model(smallModel(), batch: 2, context: context)
        model.initialize(seed: 5)
        var sources: [SafeTensorsSource] = []
        let wide = [Float](repeating: 1, count: 1000)
        try wide.withUnsafeBufferPointer { extra in
            for tensor in model.tensors() {
                switch tensor.name {
                case "conv1.bias": continue  // missing
                case "fc0.weight":  // mis-shaped: transposed
                    sources.append(SafeTensorsSource(name: tensor.name, shape: [tensor.shape[1], tensor.shape[0]], pointer: UnsafePointer(tensor.pointer)))
                default:
                    sources.append(SafeTensorsSource(name: tensor.name, shape: tensor.shape, pointer: UnsafePointer(tensor.pointer)))
                }
            }
            sources.append(SafeTensorsSource(name: "head.weight", shape: [3, 4], pointer: extra.baseAddress!))  // unknown
            try SafeTensors.write(path: path, tensors: sources, metadata: [])
        }
        let target = try Model(smallModel(), batch: 2, context: context)
        target.initialize(seed: 6)
        let before = parameterBits(target)
        let adam = FakeAdamState(count: target.parameterCount, seed: 1)
        do {
            try Checkpoint.load(path: path, into: target, optimizer: adam.state)
            Issue.record("loading a mismatched file succeeded")
        } catch {
            #expect(error.kind == .mismatch)
            let text = error.description
            #expect(text.contains(path), "\(text)")
            #expect(text.contains("missing: conv1.bias"), "\(text)")
            #expect(text.contains("unknown: head.weight F32 [3, 4]"), "\(text)")
            #expect(text.contains("mis-shaped: fc0.weight is [\(sourcesShape(model, "fc0.weight").reversed().map(String.init).joined(separator: ", "))] in the file"), "\(text)")
            #expect(text.contains("missing: optimizer.conv0.weight.exp_avg"), "\(text)")
            let trainable = model.tensors().filter(\.trainable).count
            #expect(error.problems.count == 3 + 2 * trainable, "\(error.problems.count) problems:\n\(text)")
        }
        #expect(parameterBits(target) == before, "a refused load changed the model")
    }

    /// A checkpoint from a newer format version is refused by name, not misread.
    @Test func refusesOtherFormatVersion() throws {
        let directory = checkpointTestDirectory("ckpt-version")
        defer { removeTestDirectory(directory) }
        let path = directory + "/future.safetensors"
        try SafeTensors.write(path: path, tensors: [], metadata: [("format", Checkpoint.format), ("format_version", "2")])
        let model = try Model(smallModel(), batch: 1, context: try KernelContext(threads: 1))
        do {
            try Checkpoint.load(path: path, into: model)
            Issue.record("a version 2 checkpoint was loaded")
        } catch {
            #expect(error.kind == .header && error.description.contains("format version 2"), "\(error)")
        }
    }

    /// A failed save leaves the previous checkpoint byte-identical and names what failed.
    @Test func failedSaveLeavesPreviousFileIntact() throws {
        let directory = checkpointTestDirectory("ckpt-atomic")
        defer { removeTestDirectory(directory) }
        let path = directory + "/run.safetensors"
        let context = try KernelContext(threads: 1)
        let model = try Model(smallModel(), batch: 2, context: context)
        model.initialize(seed: 1)
        try Checkpoint.save(model: model, metadata: [("epoch", "1")], path: path)
        let original = fileBytes(path)
        #expect(original.count > 1000)
        model.initialize(seed: 2)

        // 1. The temporary file cannot be created (a directory is in the way; fails even as root).
        try FileSystem.makeDirectory(path + ".tmp")
        do {
            try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path)
            Issue.record("save succeeded with a directory at the temporary path")
        } catch {
            #expect(error.kind == .io && error.description.contains("open " + path + ".tmp"), "\(error)")
        }
        #expect(fileBytes(path) == original)
        #expect(rmdir(path + ".tmp") == 0)

        // 2. The device fills up mid-write: the temporary path leads to /dev/full (ENOSPC).
        if FileSystem.exists("/dev/full") {
            #expect(symlink("/dev/full", path + ".tmp") == 0)
            do {
                try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path)
                Issue.record("save succeeded onto /dev/full")
            } catch {
                #expect(error.kind == .io && error.description.contains("write " + path + ".tmp"), "\(error)")
                #expect(error.system?.code == ENOSPC, "\(error)")
            }
            #expect(fileBytes(path) == original)
            #expect(!isSymbolicLink(path + ".tmp"), "the temporary file was not removed")
        }

        // 3. The directory does not exist.
        let nowhere = directory + "/missing/run.safetensors"
        do {
            try Checkpoint.save(model: model, metadata: [], path: nowhere)
            Issue.record("save succeeded into a missing directory")
        } catch {
            #expect(error.kind == .io && error.description.contains("open " + nowhere + ".tmp"), "\(error)")
        }

        // 4. Refused before any I/O: a reserved metadata key.
        do {
            try Checkpoint.save(model: model, metadata: [("optimizer", "mine")], path: path)
            Issue.record("save accepted a reserved metadata key")
        } catch {
            #expect(error.kind == .invalidArgument && error.description.contains("reserved"), "\(error)")
        }
        #expect(fileBytes(path) == original)

        // A successful save replaces the file and leaves no temporary behind.
        try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path)
        #expect(fileBytes(path) != original)
        #expect(Checkpoint.value("epoch", in: try Checkpoint.readMetadata(path: path)) == "2")
        #expect(!FileSystem.exists(path + ".tmp"))
    }

    /// A whole checkpoint loads in Python's safetensors with the model's names and values.
    @Test(.enabled(if: Requirement.runs(Requirement.hasPythonSafeTensors), Requirement.pythonReason))
    func pythonLoadsCheckpoint() throws {
        try #require(Requirement.hasPythonSafeTensors, Requirement.pythonReason)
        let directory = checkpointTestDirectory("ckpt-python")
        defer { removeTestDirectory(directory) }
        let path = directory + "/model.safetensors"
        let context = try KernelContext(threads: 1)
        let model = try Model(smallModel(), batch: 2, context: context)
        model.initialize(seed: 8)
        let adam = FakeAdamState(count: model.parameterCount, seed: 0.5)
        try Checkpoint.save(model: model, optimizer: adam.state, metadata: [("epoch", "9")], path: path)
        var tensors: [(String, [Int], [Float])] = []
        for tensor in model.tensors() {
            tensors.append((tensor.name, tensor.shape, Array(UnsafeBufferPointer(start: tensor.pointer, count: tensor.count))))
            if tensor.trainable {
                tensors.append(("optimizer.\(tensor.name).exp_avg_sq", tensor.shape,
                                Array(UnsafeBufferPointer(start: adam.secondMoment + tensor.offset, count: tensor.count))))
            }
        }
        let referencePath = directory + "/reference.json"
        writeReference(referencePath, tensors: tensors, metadata: [("epoch", "9"), ("optimizer", "adamw"), ("format", "leitner-checkpoint")])
        let (status, output) = runSafeTensorsCheck([path, "--reference", referencePath])
        #expect(status == 0 && output.contains("OK verified"), "\(output)")
    }
}

func sourcesShape(_ model: Model, _ name: String) -> [Int] {
    model.tensors().first { $0.name == name }!.shape
}
