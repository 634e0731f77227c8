import Foundation
import Testing
import Data
import NN
import Train
import Kernels
import Platform
import Select

/// Trains everything and records, at each training step (before its update), the loss scale
/// the step used and a checksum of the master weights.
final class ScaleRecorder {
    var scales: [Float] = []
    var checksums: [UInt64] = []
}

struct RecordingPolicy: TrainsEverySample {
    let model: Model
    let recorder: ScaleRecorder
    mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
                                 epoch: Int, learningRate: Double) {
        recorder.scales.append(model.lossScale)
        var hash = GoldenTraceTests.FNV()
        for index in 0..<model.parameterCount { hash.add(model.parameters[index].bitPattern) }
        recorder.checksums.append(hash.value)
    }
}

func fp16Config(_ directory: String, epochs: Int) throws -> TrainConfig {
    var config = try tinyConfig(directory, epochs: epochs)
    config.precision = .fp16
    return config
}

@Suite(.serialized) struct PrecisionTrainingTests {
    /// An infinite gradient injected at step 3 skips that update (the master weights before
    /// step 4 equal those before step 3), halves the scale and is counted; every 4 finite
    /// steps in a row double it.
    @Test func lossScalingSkipsHalvesAndGrows() throws {
        let train = try syntheticSet(count: 200, seed: 5), test = try syntheticSet(count: 50, seed: 6)
        let session = try TrainingSession(config: try fp16Config(temporaryDirectory("fp16-scale"), epochs: 1), train: train, test: test)
        session.trainer.lossScaler!.growthInterval = 4
        session.trainer.injectedInfiniteGradientStep = 3
        let recorder = ScaleRecorder()
        var policy = RecordingPolicy(model: session.trainer.model, recorder: recorder)
        try session.run(policy: &policy)
        // 13 batches: 2 good, 1 skipped (x0.5), then x2 after every 4 good ones.
        let k: Float = 1024
        #expect(recorder.scales == [64 * k, 64 * k, 64 * k, 32 * k, 32 * k, 32 * k, 32 * k, 64 * k, 64 * k, 64 * k, 64 * k, 128 * k, 128 * k])
        #expect(recorder.checksums[2] != recorder.checksums[1], "step 2 updated")
        #expect(recorder.checksums[3] == recorder.checksums[2], "the skipped step 3 must not update the weights")
        #expect(recorder.checksums[4] != recorder.checksums[3])
        let scaler = try #require(session.trainer.lossScaler)
        #expect(scaler.scale == 128 * k && scaler.goodSteps == 2 && scaler.skippedSteps == 1)
        #expect(session.trainer.step == 12, "a skipped update is not an optimizer step")
        let metrics = try #require(session.history.last)
        #expect(metrics.fp16SkippedSteps == 1 && metrics.lossScale == Double(128 * k))
        let log = try String(contentsOfFile: session.metricsPath, encoding: .utf8)
        #expect(log.contains("\"fp16_skipped_steps\":1,\"loss_scale\":131072"), "\(log)")
    }

    /// fp16: two epochs in one go equal one epoch, a stop and a resumed epoch bit for bit (the
    /// loss scale and its good-step count come back from the checkpoint); the checkpoint holds
    /// the fp32 master weights and loads into an fp32 model.
    @Test func resumeContinuesExactlyInFP16() throws {
        let train = try syntheticSet(count: 200, seed: 5), test = try syntheticSet(count: 50, seed: 6)
        func session(_ config: TrainConfig) throws -> TrainingSession {
            let session = try TrainingSession(config: config, train: train, test: test)
            session.trainer.lossScaler!.growthInterval = 5
            return session
        }
        let straight = try session(try fp16Config(temporaryDirectory("fp16-straight"), epochs: 2))
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        try straight.run(policy: &hook)

        let directory = temporaryDirectory("fp16-resumed")
        var interrupted = try fp16Config(directory, epochs: 2)
        interrupted.stopAfterEpoch = 1
        let first = try session(interrupted)
        try first.run(policy: &hook)
        #expect(first.trainer.lossScaler!.goodSteps == 3, "13 steps at interval 5 leave 3 good steps: the resume must restore them")
        var config = try fp16Config(directory, epochs: 2)
        config.resume = true
        let second = try session(config)
        try second.run(policy: &hook)
        let expected = try #require(straight.history.last)
        let got = try #require(second.history.last)
        #expect(got.epoch == 2)
        #expect(got.trainLoss == expected.trainLoss && got.testLoss == expected.testLoss && got.testAccuracy == expected.testAccuracy)
        #expect(second.trainer.lossScaler == straight.trainer.lossScaler)
        let count = straight.trainer.model.parameterCount
        #expect((0..<count).allSatisfy { second.trainer.model.parameters[$0].bitPattern == straight.trainer.model.parameters[$0].bitPattern })

        // A fp32 model loads the fp16 run's checkpoint: the master weights, not their rounding.
        let plain = try Model(config.model, batch: 4, context: try KernelContext(threads: 1))
        let metadata = try Checkpoint.load(path: second.checkpointPath, into: plain)
        #expect((0..<count).allSatisfy { plain.parameters[$0].bitPattern == second.trainer.model.parameters[$0].bitPattern })
        #expect((0..<count).contains { Float(Float16(plain.parameters[$0])) != plain.parameters[$0] })
        #expect(Checkpoint.value("loss_scale", in: metadata) != nil && Checkpoint.value("run.precision", in: metadata) == "fp16")

        // Resuming it as an fp32 run is refused by name.
        var asFP32 = try tinyConfig(directory, epochs: 3)
        asFP32.resume = true
        do { _ = try TrainingSession(config: asFP32, train: train, test: test); Issue.record("fp32 resume of an fp16 run was accepted") }
        catch { #expect(error.message.contains("--precision fp16 (now fp32)"), "\(error.message)") }
    }

    @Test func capabilityRule() {
        #expect(Precision.resolve(.fp32, arm64: true, halfArithmetic: true).precision == .fp32)
        #expect(Precision.resolve(.fp32, arm64: false, halfArithmetic: false).note == nil)
        let a72 = Precision.resolve(.fp16, arm64: true, halfArithmetic: false)
        #expect(a72.precision == .fp32 && a72.note!.contains("no half-precision arithmetic"))
        let a76 = Precision.resolve(.fp16, arm64: true, halfArithmetic: true)
        #expect(a76.precision == .fp16 && a76.note!.contains("not its speed"))
        let host = Precision.resolve(.fp16, arm64: false, halfArithmetic: false)
        #expect(host.precision == .fp16 && host.note!.contains("emulated in software"))
    }
}
