import Foundation
import Testing
import TestSupport
import Data
import NN
import Train
import Kernels
import Platform
import Select

/// Golden training traces: fixed seed, one thread, the shipped Fashion-MNIST subset. Each run
/// records every optimizer step's per-sample losses (their mean, and a hash of their bits) and a
/// hash of every tensor (parameters and batch-norm statistics) at the end, and compares them
/// with `Tests/Fixtures/golden/{avx2,avx512}/NAME.txt` character for character. A refactor must reproduce
/// them bit for bit; a change that is meant to move numbers regenerates them on purpose with
/// `tools/regenerate-golden` (LEITNER_WRITE_GOLDEN=1) and says why in its commit. How the AVX-512
/// and NEON paths relate to these files: Tests/Fixtures/golden/README.md.
///
@Suite(.serialized) struct GoldenTraceTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let goldenDirectory = root.appendingPathComponent("Tests/Fixtures/golden")

    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var model: String
        var policy: String
        var epochs: Int
        var samples: Int
        var augment: Bool
        var adamw = false
        var description: String { name }
    }

    /// 20 steps each (or fewer when the policy drops samples): 320 samples x 2 epochs at batch 32.
    static let cases: [Case] = [
        Case(name: "mlp-full", model: "mlp", policy: "full", epochs: 2, samples: 320, augment: true),
        Case(name: "mlp-adamw", model: "mlp", policy: "full", epochs: 2, samples: 320, augment: false, adamw: true),
        Case(name: "cnn-s-full", model: "cnn-s", policy: "full", epochs: 2, samples: 320, augment: true),
        Case(name: "resnet8-full", model: "resnet8", policy: "full", epochs: 2, samples: 320, augment: true),
        // Selective Backprop without augmentation: the scored view and the trained view are the
        // same pixels whichever way the loop gathers them.
        Case(name: "cnn-s-selective-backprop", model: "cnn-s", policy: "selective-backprop", epochs: 3, samples: 320, augment: false),
        // InfoBatch rescales the kept low-loss samples' loss by 2: the weights reach the loss.
        Case(name: "mlp-infobatch", model: "mlp", policy: "infobatch", epochs: 4, samples: 160, augment: true),
        Case(name: "mlp-ies", model: "mlp", policy: "ies", epochs: 16, samples: 96, augment: true),
    ]

    /// Forwards every call to the wrapped policy and records each trained step's losses.
    struct Recording: SelectionPolicy {
        var inner: AnyPolicy
        var lines: [String] = []
        /// Epoch and step lines so far (the step label, as the trace has always numbered them;
        /// the test-pass lines are not counted, so adding them moved no earlier line).
        var numbered = 0
        var id: PolicyID { inner.id }
        var stateStride: Int { inner.stateStride }
        var selectsWithinBatches: Bool { inner.selectsWithinBatches }
        var validationFraction: Double { inner.validationFraction }
        var lastEpochReentries: Int { inner.lastEpochReentries }
        mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
            inner.planEpoch(context, plan: plan, generator: &generator)
            let counts = plan.counts()
            numbered += 1
            lines.append("epoch \(context.epoch) lr \(context.learningRate) train \(counts.train) score \(counts.score) skip \(counts.skip)")
        }
        mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
                                     epoch: Int, learningRate: Double) {
            var sum = 0.0
            var hash = FNV()
            for slot in 0..<indices.count {
                sum += Double(losses[slot])
                hash.add(losses[slot].bitPattern)
                hash.add(UInt32(bitPattern: indices[slot]))
            }
            lines.append("step \(numbered) n \(indices.count) mean \(sum / Double(indices.count)) bits \(hash.hex) lr \(learningRate)")
            numbered += 1
            inner.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate)
        }
        mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>, epoch: Int) {
            inner.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch)
        }
        mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
            inner.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator)
        }
        mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool { inner.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy) }
        func encodeState(index: Int, into record: UnsafeMutableRawPointer) { inner.encodeState(index: index, into: record) }
        mutating func decodeState(index: Int, from record: UnsafeRawPointer) { inner.decodeState(index: index, from: record) }
    }

    /// 64-bit FNV-1a over 32-bit words.
    struct FNV {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func add(_ word: UInt32) {
            for shift in stride(from: 0, to: 32, by: 8) {
                value ^= UInt64((word >> UInt32(shift)) & 0xff)
                value = value &* 0x0000_0100_0000_01b3
            }
        }
        var hex: String { String(value, radix: 16) }
    }

    static func policy(_ name: String, sampleCount: Int, epochs: Int) -> AnyPolicy {
        switch name {
        case "full": return .full(FullPolicy(sampleCount: sampleCount))
        case "selective-backprop": return .selectiveBackprop(SelectiveBackpropPolicy(sampleCount: sampleCount))
        case "infobatch": return .infoBatch(InfoBatchPolicy(sampleCount: sampleCount))
        case "ies": return .ies(IESPolicy(sampleCount: sampleCount, threshold: 0.1, rescoreEvery: 2))
        default: fatalError("no golden policy \(name)")
        }
    }

    /// The trace of one case: the planned epochs, every step, and the final tensors' hash.
    static func trace(_ golden: Case, wideKernels: Bool) throws -> String {
        let directory = root.appendingPathComponent("data/fashion-mnist-subset").path
        let train = try PackFile.open(directory + "/train.pack").loadDataset(normalization: .fashionMNIST)
        var config = TrainConfig(model: try ModelZoo.description(named: golden.model))
        config.modelName = golden.model
        config.epochs = golden.epochs
        config.batch = 32
        config.threads = 1
        config.seed = 7
        config.trainLimit = golden.samples
        config.testLimit = 32
        config.progress = false
        config.outputDirectory = temporaryDirectory("golden-\(golden.name)")
        // (not LEITNER_SIMD: the environment is shared with the tests running alongside)
        config.wideKernels = wideKernels
        if golden.augment { config.augment = AugmentConfig(cropPadding: 2, flip: true) }
        if golden.adamw {
            config.optimizer = .adamw(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-2)
            config.learningRate = 1e-3
        }
        let trainer = try Trainer(config: config, train: train, test: train)
        var recording = Recording(inner: policy(golden.policy, sampleCount: trainer.train.count, epochs: golden.epochs))
        var progress = ProgressDisplay(enabled: false)
        for _ in 0..<golden.epochs {
            _ = trainer.trainEpoch(policy: &recording, progress: &progress)
            _ = recording.endEpoch(epoch: trainer.epoch - 1, validationAccuracy: nil)
            // The test pass after each epoch (eval mode, no augmentation): its mean loss exactly.
            let test = trainer.evaluate()
            recording.lines.append("test after epoch \(trainer.epoch - 1) loss \(test.loss) bits \(String(test.loss.bitPattern, radix: 16)) accuracy \(test.accuracy)")
        }
        var hash = FNV()
        var text = "# golden trace \(golden.name): model \(golden.model), policy \(golden.policy), \(golden.samples) samples, \(golden.epochs) epochs, batch 32, seed 7, 1 thread\n"
        for line in recording.lines { text += line + "\n" }
        for tensor in trainer.model.tensors() {
            for index in 0..<tensor.count { hash.add(tensor.pointer[index].bitPattern) }
        }
        text += "steps \(trainer.step) tensors \(hash.hex)\n"
        return text
    }

    @Test(arguments: cases) func traceMatchesGolden(golden: Case) throws {
        // AVX-512 takes the direct weight gradient for every 3x3 layer where AVX2 takes it only
        // up to 16 input channels: conv models sum in a different order, so each kernel family
        // has its own files. The AVX2 ones are checked on every x86_64 machine.
        var variants = ["avx2"]
        if Requirement.hasAVX512 { variants.append("avx512") }
        for variant in variants {
            let directory = Self.goldenDirectory.appendingPathComponent(variant)
            let path = directory.appendingPathComponent(golden.name + ".txt").path
            let text = try Self.trace(golden, wideKernels: variant == "avx512")
            if ProcessInfo.processInfo.environment["LEITNER_WRITE_GOLDEN"] == "1" {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                continue
            }
            let expected = try #require(try? String(contentsOfFile: path, encoding: .utf8), "missing golden file \(path)")
            let expectedLines = expected.split(separator: "\n"), actualLines = text.split(separator: "\n")
            #expect(expectedLines.count == actualLines.count, "\(golden.name) [\(variant)]: \(actualLines.count) lines, golden has \(expectedLines.count)")
            if let first = zip(expectedLines, actualLines).enumerated().first(where: { $0.element.0 != $0.element.1 }) {
                Issue.record("\(golden.name) [\(variant)]: line \(first.offset + 1) differs\n  golden: \(first.element.0)\n  now:    \(first.element.1)")
            }
        }
    }
}
