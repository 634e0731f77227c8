import Foundation
import Testing
import Data
import NN
import Train
import Platform

/// A model with every backbone layer kind (hardswish, squeeze-excitation with a per-channel
/// product, ReLU6, dropout) trained by the trainer: seeded, thread-count stable within a
/// seed, and resumable exactly (the dropout masks derive from the seed and the optimizer step,
/// which the checkpoint holds).
@Suite(.serialized) struct BackboneTrainingTests {
    static let model = """
    input 1x8x8
    classes 4
    conv 6 k3 p1 nobias as=stem
    bn
    hardswish as=features
    gap
    linear 3 as=se_fc1
    relu
    linear 6 as=se_fc2
    hardsigmoid as=gate
    mul gate from=features as=se
    relu6
    maxpool 2
    flatten
    dropout 0.3
    linear 4
    """

    static func config(_ directory: String, epochs: Int, seed: UInt64 = 1) throws -> TrainConfig {
        var config = try tinyConfig(directory, epochs: epochs)
        config.model = try ModelDescription.parse(model, name: "backbone-kinds")
        config.seed = seed
        return config
    }

    static func run(_ config: TrainConfig, train: Dataset, test: Dataset) throws -> TrainingSession {
        let session = try TrainingSession(config: config, train: train, test: test)
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        try session.run(policy: &hook)
        return session
    }

    @Test func sameSeedIsIdenticalAnotherSeedIsNotAndTheModelLearns() throws {
        let train = try syntheticSet(count: 200, seed: 11), test = try syntheticSet(count: 80, seed: 12)
        let first = try Self.run(try Self.config(temporaryDirectory("bb-a"), epochs: 3), train: train, test: test)
        let again = try Self.run(try Self.config(temporaryDirectory("bb-b"), epochs: 3), train: train, test: test)
        let other = try Self.run(try Self.config(temporaryDirectory("bb-c"), epochs: 3, seed: 2), train: train, test: test)
        func figures(_ session: TrainingSession) -> [Double] { session.history.flatMap { [$0.trainLoss, $0.testLoss] } }
        #expect(figures(first) == figures(again))
        #expect(figures(first) != figures(other))
        let last = try #require(first.history.last)
        #expect(last.trainLoss.isFinite && last.trainLoss < first.history[0].trainLoss, "losses \(figures(first))")
        print("backbone kinds, 3 epochs: train losses \(first.history.map(\.trainLoss)), test accuracy \(last.testAccuracy)")
    }

    /// Two epochs straight equal one epoch, a stop, and a resumed second epoch, exactly: the
    /// resumed run draws the dropout masks the uninterrupted one drew.
    @Test func resumeContinuesExactlyWithDropout() throws {
        let train = try syntheticSet(count: 200, seed: 13), test = try syntheticSet(count: 50, seed: 14)
        let straight = try Self.run(try Self.config(temporaryDirectory("bb-straight"), epochs: 2), train: train, test: test)
        let directory = temporaryDirectory("bb-resumed")
        var interrupted = try Self.config(directory, epochs: 2)
        interrupted.stopAfterEpoch = 1
        _ = try Self.run(interrupted, train: train, test: test)
        var resumed = try Self.config(directory, epochs: 2)
        resumed.resume = true
        let second = try Self.run(resumed, train: train, test: test)
        let expected = try #require(straight.history.last), got = try #require(second.history.last)
        #expect(got.epoch == 2)
        #expect(got.trainLoss == expected.trainLoss && got.testLoss == expected.testLoss && got.testAccuracy == expected.testAccuracy,
                "resumed \(got.trainLoss) \(got.testLoss), straight \(expected.trainLoss) \(expected.testLoss)")
    }
}
