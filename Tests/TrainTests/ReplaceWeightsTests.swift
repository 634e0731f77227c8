import Foundation
import Testing
import Data
import NN
import Train
import Platform
import Select

/// `--resume --replace-weights FILE` (a federated client's round): the weights come from the
/// file, while the epoch, step, optimizer state and per-sample selection state stay the run's.
@Suite(.serialized) struct ReplaceWeightsTests {
    @Test func resumeTakesTheFilesWeightsAndKeepsItsOwnState() throws {
        let train = try syntheticSet(count: 240, seed: 8), test = try syntheticSet(count: 60, seed: 9)
        func config(_ directory: String, seed: UInt64 = 1) throws -> TrainConfig {
            var config = try tinyConfig(directory, epochs: 9)
            config.schedule = .constant
            config.seed = seed
            return config
        }
        // The client's run so far: 7 epochs of IES (nothing is excluded before epoch 7), its state on disk.
        let directory = temporaryDirectory("replace-client")
        var interrupted = try config(directory)
        interrupted.stopAfterEpoch = 7
        var clientPolicy = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        let client = try TrainingSession(config: interrupted, train: train, test: test)
        try client.run(policy: &clientPolicy)
        let clientStep = client.trainer.step
        let clientWeights = Array(UnsafeBufferPointer(start: client.trainer.model.parameters, count: client.trainer.model.parameterCount))
        let excludedBefore = (0..<train.count).filter { clientPolicy.isExcluded($0) }
        #expect(!excludedBefore.isEmpty, "IES excluded nothing by epoch 7; the state check would be vacuous")

        // Other weights: another seed's one-epoch run (its checkpoint carries optimizer tensors too).
        let otherDirectory = temporaryDirectory("replace-global")
        var otherConfig = try config(otherDirectory, seed: 7)
        otherConfig.epochs = 1
        let other = try TrainingSession(config: otherConfig, train: train, test: test)
        var full = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        try other.run(policy: &full)
        let globalWeights = Array(UnsafeBufferPointer(start: other.trainer.model.parameters, count: other.trainer.model.parameterCount))
        #expect(globalWeights != clientWeights)

        // Resume with the other weights, training nothing yet (stop after epoch 7 again).
        var resumed = try config(directory)
        resumed.resume = true
        resumed.replaceWeights = other.checkpointPath
        resumed.stopAfterEpoch = 7
        let round = try TrainingSession(config: resumed, train: train, test: test)
        var roundPolicy = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        try round.run(policy: &roundPolicy)
        let loaded = Array(UnsafeBufferPointer(start: round.trainer.model.parameters, count: round.trainer.model.parameterCount))
        #expect(loaded == globalWeights, "the model's weights are not the file's")
        #expect(round.trainer.epoch == 7 && round.trainer.step == clientStep, "epoch \(round.trainer.epoch), step \(round.trainer.step)")
        #expect((0..<train.count).filter { roundPolicy.isExcluded($0) } == excludedBefore, "the selection state was not kept")

        // The next round trains from there and appends to the client's log.
        var next = try config(directory)
        next.resume = true
        next.replaceWeights = other.checkpointPath
        next.stopAfterEpoch = 8
        let nextRound = try TrainingSession(config: next, train: train, test: test)
        var nextPolicy = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        try nextRound.run(policy: &nextPolicy)
        let last = try #require(nextRound.history.last)
        #expect(last.epoch == 8)
        #expect(last.samplesScored > 0, "the restored exclusions should be scored in epoch 8")
        let log = try String(contentsOfFile: nextRound.metricsPath, encoding: .utf8)
        #expect(log.split(separator: "\n").count == 8)

        // A file of another model is refused by name before anything trains.
        var wrong = try config(directory)
        wrong.resume = true
        wrong.replaceWeights = temporaryDirectory("replace-missing") + "/none.safetensors"
        #expect(throws: TrainError.self) { _ = try TrainingSession(config: wrong, train: train, test: test) }
    }
}
