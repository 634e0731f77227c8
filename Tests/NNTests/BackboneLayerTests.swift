import AllocCounting
import Testing
import Kernels
import NN
import Platform

/// Tiny blocks of the three torchvision backbones in Leitner's text form (the same texts as
/// tools/make-torch-fixture's, at their test sizes).
enum BackboneBlocks {
    /// MobileNetV2's inverted residual: expansion 1x1 + BN + ReLU6, depthwise 3x3 + BN + ReLU6,
    /// projection 1x1 + BN, residual add; then a classifier with dropout, as torchvision's.
    static let mobileNetV2 = """
    input 4x6x6
    classes 5
    conv 12 k1 nobias as=expand
    bn as=expand_bn
    relu6
    dwconv k3 p1 nobias as=dw
    bn as=dw_bn
    relu6
    conv 4 k1 nobias as=project
    bn as=project_bn
    add input as=residual
    gap
    dropout 0.2
    linear 5 as=classifier
    """

    /// MobileNetV3's block: expansion + BN + hardswish, depthwise + BN + hardswish,
    /// squeeze-excitation as torchvision writes it (pool to C x 1 x 1, fc1 conv 1x1 + ReLU, fc2
    /// conv 1x1 + hardsigmoid, per-channel product), projection + BN, residual; head linear +
    /// hardswish + dropout + linear as torchvision's classifier. (BackboneTrainingTests has the
    /// other SE form: gap, linear, linear, a flat scale.)
    static let mobileNetV3 = """
    input 4x6x6
    classes 5
    conv 8 k1 nobias as=expand
    bn as=expand_bn
    hardswish as=expand_act
    dwconv k3 p1 nobias as=dw
    bn as=dw_bn
    hardswish as=dw_act
    avgpool 6 as=se_pool
    conv 4 k1 as=se_fc1
    relu
    conv 8 k1 as=se_fc2
    hardsigmoid as=se_gate
    mul se_gate from=dw_act as=se
    conv 4 k1 nobias as=project
    bn as=project_bn
    add input as=residual
    gap
    linear 6 as=head
    hardswish
    dropout 0.2
    linear 5 as=classifier
    """

    /// ResNet-18's basic block with a downsample: conv 3x3 s2 + BN + ReLU, conv 3x3 + BN,
    /// shortcut conv 1x1 s2 + BN, add, ReLU.
    static let resNet18 = """
    input 3x6x6
    classes 5
    conv 6 k3 s2 p1 nobias as=conv1
    bn as=bn1
    relu
    conv 6 k3 p1 nobias as=conv2
    bn as=bn2
    conv 6 k1 s2 nobias from=input as=downsample
    bn as=downsample_bn
    add bn2 as=residual
    relu
    gap
    linear 5 as=fc
    """

    static func description(_ name: String) throws -> ModelDescription {
        switch name {
        case "mobilenet_v2": return try ModelDescription.parse(mobileNetV2, name: name)
        case "mobilenet_v3": return try ModelDescription.parse(mobileNetV3, name: name)
        default: return try ModelDescription.parse(resNet18, name: name)
        }
    }
}

@Suite(.serialized) struct BackboneLayerTests {
    static let blocks = ["mobilenet_v2", "mobilenet_v3", "resnet18"]

    /// The text form of every new kind round-trips, with names, `from=` and the SE scale.
    @Test(arguments: blocks)
    func textRoundTrips(name: String) throws {
        let description = try BackboneBlocks.description(name)
        let again = try ModelDescription.parse(description.text, name: name)
        #expect(again.text == description.text)
        #expect(again.layers.map(\.kind) == description.layers.map(\.kind))
        #expect(again.layers.map(\.inputs) == description.layers.map(\.inputs))
        #expect(again.layers.map(\.probability) == description.layers.map(\.probability))
        #expect(try again.shapes() == description.shapes())
    }

    @Test func dropoutProbabilityRoundTripsAndIsChecked() throws {
        for probability in ["0", "0.2", "0.5", "0.999", "1e-05", "0.1234567"] {
            let text = "input 1x4x4\nclasses 3\nflatten\ndropout \(probability)\nlinear 3\n"
            let description = try ModelDescription.parse(text, name: "p")
            #expect(description.layers[1].probability == Double(probability)!)
            #expect(try ModelDescription.parse(description.text, name: "p").layers[1].probability == Double(probability)!)
        }
        let refused: [(String, String)] = [
            ("dropout 1", "0 <= p < 1"), ("dropout 1.5", "0 <= p < 1"), ("dropout -0.1", "0 <= p < 1"),
            ("dropout", "needs a probability"), ("dropout nan", "unknown option"), ("dropout inf", "unknown option"),
            ("dropout 0.1 0.2", "one probability"), ("dropout 0.1 k3", "takes no option"),
            ("relu6 2", "takes no number"), ("hardswish bias", "has no bias"), ("hardsigmoid k3", "takes no option"),
            ("mul", "needs the name"),
        ]
        for (line, message) in refused {
            let text = "input 1x4x4\nclasses 3\nflatten\n\(line)\nlinear 3\n"
            do {
                _ = try ModelDescription.parse(text, name: "bad")
                Issue.record("'\(line)' was accepted")
            } catch {
                #expect(error.message.contains(message) && error.message.contains("line 4"), "'\(line)': \(error.message)")
            }
        }
        // A description built in Swift is checked too.
        var builder = ModelBuilder(name: "built", input: .spatial(1, 4, 4), classes: 3)
        builder.linear(builder.dropout(builder.flatten(ModelBuilder.input), probability: 1), out: 3)
        #expect(throws: ModelError.self) { _ = try builder.description.shapes() }
    }

    /// mul takes a flat C or a C x 1 x 1 scale of the tensor's channel count, and a spatial tensor.
    @Test func channelMulShapesAreChecked() throws {
        let head = "input 4x6x6\nclasses 3\nconv 8 k1 as=features\n"
        let tail = "gap\nlinear 3\n"
        let accepted = [
            "gap\nlinear 8\nhardsigmoid as=gate\nmul gate from=features\n",          // flat [N, C]
            "avgpool 6 as=pool\nconv 8 k1 as=gate\nmul gate from=features\n",         // C x 1 x 1 (conv k1 on a 1x1 map)
        ]
        for middle in accepted {
            let description = try ModelDescription.parse(head + middle + tail, name: "se")
            let shapes = try description.shapes()
            #expect(shapes[description.layers.firstIndex { $0.kind == .channelMul }!] == .spatial(8, 6, 6))
        }
        let refused: [(String, String)] = [
            ("gap\nlinear 4 as=gate\nmul gate from=features\n", "scale of 8 channels"),
            ("avgpool 3 as=gate\nmul gate from=features\n", "scale of 8 channels"),
            ("gap as=gate\nflatten as=flat\nmul gate from=flat\n", "scales a spatial"),
        ]
        for (middle, message) in refused {
            do {
                _ = try ModelDescription.parse(head + middle + tail, name: "se")
                Issue.record("accepted: \(middle)")
            } catch {
                #expect(error.message.contains(message), "\(middle): \(error.message)")
            }
        }
    }

    /// The shared activation layout (in-place ReLU6 and dropout, gradients scaled in place,
    /// the dropout mask in the Int32 region) gives bit-identical losses and gradients to
    /// separate buffers over two steps, on one and two threads, with dropout active.
    @Test(arguments: blocks, [1, 2])
    func sharedLayoutMatchesSeparateBuffers(name: String, threads: Int) throws {
        let context = try KernelContext(threads: threads)
        let batch = 5
        let description = try BackboneBlocks.description(name)
        let shared = try Model(description, batch: batch, context: context)
        let separate = try Model(description, batch: batch, context: context, sharedActivations: false)
        #expect(shared.plan.activations < separate.plan.activations)
        for model in [shared, separate] { model.initialize(seed: 5) }
        for step in 0..<2 {
            for model in [shared, separate] {
                fillBatch(model, batch: batch, seed: 40 + UInt64(step))
                model.dropoutSeed = 1000 + UInt64(step)
                model.forwardBackward(batch: batch)
            }
            for sample in 0..<batch {
                #expect(shared.losses[sample] == separate.losses[sample], "\(name) step \(step): loss of sample \(sample)")
            }
            var differing = 0, nonZero = 0
            for index in 0..<shared.parameterCount {
                if shared.gradients[index] != separate.gradients[index] { differing += 1 }
                if shared.gradients[index] != 0 { nonZero += 1 }
            }
            #expect(differing == 0, "\(name) step \(step): \(differing) of \(shared.parameterCount) gradients differ")
            #expect(nonZero > shared.parameterCount / 2, "\(name): only \(nonZero) gradients are non-zero")
            for model in [shared, separate] {
                for index in 0..<model.parameterCount { model.parameters[index] -= 0.01 * model.gradients[index] }
            }
        }
    }

    /// Along one random direction, (L(p + h d) - L(p - h d)) / 2h against <dL/dp, d> for every
    /// block in training mode (batch statistics, dropout with a fixed key, so both forwards draw
    /// the same mask).
    @Test(arguments: blocks)
    func wholeBlockDirectionalDerivative(name: String) throws {
        let context = try KernelContext(threads: 1)
        let batch = 6
        let model = try Model(try BackboneBlocks.description(name), batch: batch, context: context)
        model.initialize(seed: 3)
        fillBatch(model, batch: batch, seed: 4)
        model.dropoutSeed = 77
        model.forwardBackward(batch: batch)
        let (numeric, analytic) = directionalDerivatives(model, batch: batch, over: [(0, model.parameterCount)])
        let relative = abs(numeric - analytic) / max(abs(analytic), 1e-12)
        print("\(name): directional derivative numeric \(numeric), analytic \(analytic), relative error \(relative)")
        #expect(relative < 2e-2 && abs(analytic) > 1e-4, "\(name): numeric \(numeric), analytic \(analytic)")
    }

    /// Dropout: identity at evaluation; in training the same seed draws the same mask on one
    /// and two threads, another seed another mask, and about p of the elements are zero.
    @Test func dropoutIsSeededAndIdentityAtEvaluation() throws {
        let text = "input 1x64x64\nclasses 3\nflatten as=flat\ndropout 0.25 as=drop\nlinear 3\n"
        let description = try ModelDescription.parse(text, name: "drop")
        let batch = 8
        var outputs: [[Float]] = []
        for (threads, seed) in [(1, 5), (2, 5), (1, 6)] {
            let model = try Model(description, batch: batch, context: try KernelContext(threads: threads), sharedActivations: false)
            model.initialize(seed: 1)
            fillBatch(model, batch: batch, seed: 2)
            model.dropoutSeed = UInt64(seed)
            model.forward(batch: batch, training: true)
            let count = batch * 64 * 64
            func tensors() -> [[Float]] { (0..<2).map { Array(UnsafeBufferPointer(start: model.output(ofNode: $0), count: count)) } }
            outputs.append(tensors()[1])
            let trained = tensors()
            let zeros = trained[1].filter { $0 == 0 }.count
            #expect(abs(Double(zeros) / Double(count) - 0.25) < 0.02, "dropped \(zeros) of \(count)")
            #expect(zip(trained[1], trained[0]).allSatisfy { $0 == 0 || $0 == $1 * Float(1 / 0.75) }, "kept values are not x / (1 - p)")
            model.forward(batch: batch, training: false)
            let evaluated = tensors()
            #expect(evaluated[1] == evaluated[0], "dropout at evaluation is not the identity")
        }
        #expect(outputs[0] == outputs[1], "the mask depends on the thread count")
        #expect(outputs[0] != outputs[2], "another seed drew the same mask")
    }

    /// A training step of each block allocates nothing (dropout draws, masks and SE included).
    @Test(arguments: blocks)
    func trainingStepPerformsNoHeapAllocation(name: String) throws {
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let context = try KernelContext(threads: 2)
        let batch = 8
        let model = try Model(try BackboneBlocks.description(name), batch: batch, context: context)
        model.initialize(seed: 5)
        fillBatch(model, batch: batch, seed: 6)
        let optimizer = try Optimizer(.sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4), model: model)
        var seed: UInt64 = 0
        func step() {
            seed += 1
            model.dropoutSeed = seed
            model.forwardBackward(batch: batch)
            optimizer.step(learningRate: 0.01)
        }
        for _ in 0..<3 { step() }
        let (_, calls) = tracker.counting { for _ in 0..<50 { step() } }
        #expect(calls.isZero, "\(name): 50 training steps made \(calls); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
    }
}
