import Foundation
import Testing
import Kernels
import NN
import Platform

/// The end-to-end gradient test: Leitner against PyTorch in float64, offline.
///
/// Tests/Fixtures/torch/{cnn-s,resnet8}.safetensors were written by PyTorch (regenerate with
/// `tools/make-torch-fixture gradients`; `tools/make-torch-fixture --check` verifies that a
/// fresh run gives the checked-in tensors; needs torch, not needed here). Each holds the
/// preset's topology made small (input 1x12x12; cnn-s widths 4/8/16, resnet8 stages 3/6/12),
/// its initial tensors under Leitner's names, an 8-sample batch, and PyTorch's float64 results:
/// the step-1 gradient of the mean cross-entropy for every trainable tensor (batch norm in
/// training mode), the mean losses before each of 3 plain SGD steps (lr 0.05, no momentum, no
/// weight decay) and the running statistics after them. Leitner runs the same in Float.
///
/// Criterion, per tensor: |g - g_ref| <= 1e-5 * max |g_ref| for every element. Normalised by
/// the tensor's own largest gradient, so a wrong head bias or batch-norm beta (a few small
/// numbers beside thousands of conv weights) fails as surely as a wrong conv weight. The
/// float32 floor stored in the fixture (PyTorch float32 against float64, same criterion) is at
/// most 9.4e-7 on every tensor, so 1e-5 leaves a margin of 10 for summation-order differences.
@Suite struct TorchFixtureTests {
    static let gradientTolerance = 1e-5
    static let lossTolerance = 1e-5

    struct Fixture {
        let name: String
        let reader: SafeTensorsReader
        let description: ModelDescription

        func metadata(_ key: String) throws -> String {
            try #require(Checkpoint.value(key, in: reader.metadata), "\(name): no metadata \(key)")
        }

        /// The dropout seed of each training step (blocks with dropout), else nil: the fixture
        /// drew Leitner's masks under these seeds.
        var dropoutSeeds: [UInt64]? {
            Checkpoint.value("dropout_seeds", in: reader.metadata).map { text in
                text.split(whereSeparator: { !$0.isNumber }).compactMap { UInt64($0) }
            }
        }

        /// The F64 tensor `tensor`.
        func doubles(_ tensor: String) throws -> [Double] {
            let entry = try #require(reader.header.entry(named: tensor), "\(name): no tensor \(tensor)")
            #expect(entry.dtype == .f64, "\(name): \(tensor) is \(entry.dtype.name)")
            let bytes = try reader.bytes(tensor)
            return (0..<(bytes.count / 8)).map { index in
                bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8 * index, as: Double.self) }
            }
        }

        /// The I64 tensor `tensor`.
        func integers(_ tensor: String) throws -> [Int64] {
            let entry = try #require(reader.header.entry(named: tensor), "\(name): no tensor \(tensor)")
            #expect(entry.dtype == .i64, "\(name): \(tensor) is \(entry.dtype.name)")
            let bytes = try reader.bytes(tensor)
            return (0..<(bytes.count / 8)).map { index in
                bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * index, as: Int64.self)) }
            }
        }
    }

    static func fixture(_ name: String) throws -> Fixture {
        let reader = try SafeTensorsReader(path: repositoryRoot() + "/Tests/Fixtures/torch/\(name).safetensors")
        let text = try #require(Checkpoint.value("description", in: reader.metadata))
        #expect(Checkpoint.value("format", in: reader.metadata) == "leitner-torch-gradient-fixture")
        return Fixture(name: name, reader: reader, description: try ModelDescription.parse(text, name: name))
    }

    /// A model with the fixture's initial tensors (every tensor read by name, shape checked)
    /// and its batch in `input` and `labels`. Returns the model and the batch size.
    static func model(_ fixture: Fixture, context: KernelContext) throws -> (Model, Int) {
        let input = try fixture.reader.floats("input")
        let labels = try fixture.integers("labels")
        let batch = labels.count
        let description = fixture.description
        let model = try Model(description, batch: batch, context: context)
        model.initialize(seed: 1)
        for tensor in model.tensors() {
            let entry = try #require(fixture.reader.header.entry(named: tensor.name), "\(fixture.name): no \(tensor.name)")
            #expect(entry.shape == tensor.shape, "\(fixture.name): \(tensor.name) is \(entry.shape), Leitner's \(tensor.shape)")
            try fixture.reader.read(tensor.name, into: tensor.pointer, count: tensor.count)
        }
        // PyTorch's NCHW batch into Leitner's CNHW.
        let channels = description.input.channels, plane = description.input.height * description.input.width
        #expect(input.count == batch * channels * plane)
        for sample in 0..<batch {
            for channel in 0..<channels {
                for offset in 0..<plane {
                    model.input[(channel * batch + sample) * plane + offset] = input[(sample * channels + channel) * plane + offset]
                }
            }
            model.labels[sample] = Int32(labels[sample])
        }
        return (model, batch)
    }

    /// Kernel paths: one thread with the machine's widest micro-kernels (AVX-512 where the CPU
    /// has it), and two threads with the AVX2 ones (NEON on aarch64 either way).
    static func contexts() throws -> [KernelContext] {
        [try KernelContext(threads: 1), try KernelContext(threads: 2, wideKernels: false)]
    }

    /// The fixture's models are the presets made small: the same nodes (names, kinds, inputs,
    /// kernels, strides, padding, bias), only the widths and the input size differ.
    @Test(arguments: ["cnn-s", "resnet8"])
    func fixtureModelIsThePresetMadeSmall(name: String) throws {
        let small = try Self.fixture(name).description
        let preset = try ModelZoo.description(named: name)
        #expect(small.input.channels == preset.input.channels && small.classes == preset.classes)
        try #require(small.layers.count == preset.layers.count, "\(name): \(small.layers.count) layers, the preset \(preset.layers.count)")
        for (ours, theirs) in zip(small.layers, preset.layers) {
            #expect(ours.name == theirs.name && ours.kind == theirs.kind && ours.inputs == theirs.inputs
                    && ours.kernel == theirs.kernel && ours.stride == theirs.stride && ours.padding == theirs.padding
                    && ours.bias == theirs.bias, "\(name): layer \(ours.name) differs from the preset's \(theirs.name)")
        }
    }

    /// Every trainable tensor's step-1 gradient against PyTorch float64, element by element,
    /// scaled by the tensor's largest reference gradient.
    /// The presets made small, and one block of each torchvision backbone (ReLU6, depthwise,
    /// hardswish, squeeze-excitation with hardsigmoid and the per-channel product, dropout with
    /// Leitner's masks, a 1x1 stride-2 downsample).
    static let fixtures = ["cnn-s", "resnet8", "mobilenet_v2-block", "mobilenet_v3-block", "resnet18-block"]

    /// The blocks checked against PyTorch are the ones BackboneLayerTests runs (layout,
    /// directional derivative, allocations).
    @Test func blockFixturesAreTheBlocksOfTheLayerTests() throws {
        for (fixture, block) in [("mobilenet_v2-block", "mobilenet_v2"), ("mobilenet_v3-block", "mobilenet_v3"), ("resnet18-block", "resnet18")] {
            #expect(try Self.fixture(fixture).description.text == BackboneBlocks.description(block).text, "\(fixture) differs from BackboneBlocks.\(block)")
        }
        #expect(try Self.fixture("mobilenet_v2-block").dropoutSeeds == [1001, 1002, 1003])
    }

    @Test(arguments: fixtures)
    func stepOneGradientsMatchPyTorchFloat64(name: String) throws {
        let fixture = try Self.fixture(name)
        let verbose = ProcessInfo.processInfo.environment["LEITNER_FIXTURE_VERBOSE"] != nil
        for context in try Self.contexts() {
            let (model, batch) = try Self.model(fixture, context: context)
            if let seeds = fixture.dropoutSeeds { model.dropoutSeed = seeds[0] }
            model.forwardBackward(batch: batch)
            let trainable = model.tensors().filter(\.trainable)
            let references = fixture.reader.entries.filter { $0.name.hasPrefix("gradient.") }
            #expect(references.count == trainable.count, "\(name): \(references.count) reference gradients, \(trainable.count) trainable tensors")
            var worst = (error: 0.0, tensor: "")
            for tensor in trainable {
                let reference = try fixture.doubles("gradient." + tensor.name)
                try #require(reference.count == tensor.count, "\(name): gradient.\(tensor.name) holds \(reference.count) values")
                let scale = reference.map(abs).max() ?? 0
                #expect(scale > 0, "\(name): \(tensor.name) has an all-zero reference gradient (a vacuous check)")
                var tensorWorst = (error: 0.0, index: 0)
                for index in 0..<tensor.count {
                    let value = Double(model.gradients[tensor.offset + index])
                    let error = abs(value - reference[index]) / scale
                    if !(error <= tensorWorst.error) { tensorWorst = (error.isNaN ? .infinity : error, index) }
                }
                let index = tensorWorst.index
                #expect(tensorWorst.error <= Self.gradientTolerance,
                        "\(name) \(context.threads) thread(s) wide \(context.wideKernels): \(tensor.name)\(tensor.shape) element \(index): Leitner \(model.gradients[tensor.offset + index]), PyTorch float64 \(reference[index]), |difference| / max |reference| = \(tensorWorst.error) > \(Self.gradientTolerance)")
                if verbose { print("\(name) wide \(context.wideKernels): \(tensor.name) \(tensor.shape) max|g| \(scale) error \(tensorWorst.error)") }
                if tensorWorst.error > worst.error { worst = (tensorWorst.error, tensor.name) }
            }
            print("\(name), \(context.threads) thread(s), wide kernels \(context.wideKernels): \(trainable.count) gradients, worst |g - g_ref| / max |g_ref| \(worst.error) (\(worst.tensor))")
        }
    }

    /// The mean loss before each of three plain SGD steps, and the batch-norm running
    /// statistics after the three training forwards (momentum 0.1, unbiased variance).
    @Test(arguments: fixtures)
    func threeSGDStepsMatchPyTorchFloat64(name: String) throws {
        let fixture = try Self.fixture(name)
        let learningRate = try #require(Double(try fixture.metadata("lr")))
        #expect(try fixture.metadata("momentum") == "0.0" && fixture.metadata("weight_decay") == "0.0")
        let references = try fixture.doubles("losses")
        let (model, batch) = try Self.model(fixture, context: try KernelContext(threads: 1))
        let optimizer = try Optimizer(.sgd(momentum: 0, nesterov: false, weightDecay: 0), model: model)
        var losses: [Double] = []
        for step in references.indices {
            if let seeds = fixture.dropoutSeeds { model.dropoutSeed = seeds[step] }
            model.forwardBackward(batch: batch)
            losses.append((0..<batch).reduce(0.0) { $0 + Double(model.losses[$1]) } / Double(batch))
            optimizer.step(learningRate: learningRate)
        }
        #expect(losses[0] != losses[2], "\(name): the steps changed nothing")
        for (step, (loss, reference)) in zip(losses, references).enumerated() {
            let error = abs(loss - reference) / abs(reference)
            #expect(error <= Self.lossTolerance, "\(name) step \(step + 1): Leitner \(loss), PyTorch float64 \(reference), relative \(error)")
        }
        var worst = 0.0
        for tensor in model.tensors() where !tensor.trainable {
            let reference = try fixture.doubles("step3." + tensor.name)
            let scale = reference.map(abs).max() ?? 0
            for index in 0..<tensor.count {
                let error = abs(Double(tensor.pointer[index]) - reference[index]) / scale
                worst = max(worst, error.isNaN ? .infinity : error)
                #expect(error <= Self.gradientTolerance, "\(name): \(tensor.name)[\(index)] after 3 steps: Leitner \(tensor.pointer[index]), PyTorch float64 \(reference[index])")
            }
        }
        let relative = zip(losses, references).map { abs($0 - $1) / abs($1) }.max()!
        print("\(name): losses \(losses), worst relative error \(relative); running statistics worst \(worst)")
    }
}
