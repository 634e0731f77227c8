import Testing
import Data
import NN
import Train
import Select

/// The worked fine-tuning scenario of the README, small: cnn-s pretrained on classes 0-4 of the
/// shipped Fashion-MNIST subset, fine-tuned on classes 5-9 with 100 samples per class, against
/// training from scratch on the same samples for the same epochs.
@Suite(.serialized) struct FineTuneScenarioTests {
    static var repositoryRoot: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }

    static func subset() throws -> (train: Dataset, test: Dataset) {
        let files = try DatasetLocator.fashionMNIST(dataDirectory: repositoryRoot + "/" + DatasetLocator.subsetRelativePath)
        return try FashionMNIST.load(files)
    }

    static func config(epochs: Int, directory: String) throws -> TrainConfig {
        var config = TrainConfig(model: try ModelZoo.description(named: "cnn-s"))
        config.epochs = epochs
        config.batch = 64
        config.threads = 1
        config.progress = false
        config.outputDirectory = temporaryDirectory(directory)
        return config
    }

    /// Trains `config` with every sample and returns the final test accuracy.
    static func train(_ config: TrainConfig, _ train: Dataset, _ test: Dataset) throws -> (Double, Trainer) {
        let trainer = try Trainer(config: config, train: train, test: test)
        var policy = FullPolicy(sampleCount: trainer.train.count)
        try trainer.run(policy: &policy) { (_: EpochMetrics, _: inout FullPolicy) throws(TrainError) in }
        return (trainer.evaluate().accuracy, trainer)
    }

    @Test func fineTuningBeatsTrainingFromScratch() throws {
        let data = try Self.subset()
        let pretrainSet = try data.train.selectingClasses([0, 1, 2, 3, 4])
        let pretrainTest = try data.test.selectingClasses([0, 1, 2, 3, 4])
        #expect(pretrainSet.count == 3000 && pretrainSet.classCount == 5)
        let (pretrainedAccuracy, pretrainer) = try Self.train(try Self.config(epochs: 3, directory: "ft-pretrain"), pretrainSet, pretrainTest)
        let weights = temporaryDirectory("ft-weights") + "/pretrained.safetensors"
        try Checkpoint.save(model: pretrainer.model, metadata: [], path: weights)

        let target = try data.train.selectingClasses([5, 6, 7, 8, 9], perClass: 100)
        let targetTest = try data.test.selectingClasses([5, 6, 7, 8, 9])
        #expect(target.count == 500 && targetTest.count == 500 && target.labels.max() == 4)
        let epochs = 2
        var fineTune = try Self.config(epochs: epochs, directory: "ft-finetune")
        fineTune.pretrained = weights
        let message = try FineTune.fitHead(&fineTune, classes: target.classCount)
        #expect(message.contains("replaced"), "\(message)")  // 10 pretrained outputs, 5 classes
        #expect(fineTune.model.classes == 5 && fineTune.replacedHead == ["fc2.weight", "fc2.bias"])
        let (fineTuned, fineTuner) = try Self.train(fineTune, target, targetTest)
        // The pretrained layers were loaded: conv1 started from the pretrained weights, not the
        // seed's initialisation (which pretraining itself started from).
        #expect(fineTuner.model.parameterCount == pretrainer.model.parameterCount - 5 * 129)

        let (scratch, _) = try Self.train(try Self.config(epochs: epochs, directory: "ft-scratch"), target, targetTest)
        print("fine-tuning scenario (subset): pretrained on 0-4 \(pretrainedAccuracy); on 5-9 fine-tuned \(fineTuned), scratch \(scratch)")
        #expect(pretrainedAccuracy > 0.8)
        #expect(fineTuned >= scratch + 0.03, "fine-tuned \(fineTuned) vs scratch \(scratch)")
    }

    /// Partial updates train end to end and leave frozen tensors as loaded.
    @Test(arguments: ["bias-only", "last:2", "bn+bias"])
    func partialFineTuningKeepsFrozenTensors(mode: String) throws {
        let data = try Self.subset()
        let train = try data.train.selectingClasses([5, 6, 7, 8, 9], perClass: 20)
        let test = try data.test.selectingClasses([5, 6, 7, 8, 9]).prefix(100)
        var pretrain = try Self.config(epochs: 1, directory: "ft-partial-pretrain")
        pretrain.trainLimit = 300
        let (_, pretrainer) = try Self.train(pretrain, data.train, data.test.prefix(100))
        let weights = temporaryDirectory("ft-partial-weights") + "/pretrained.safetensors"
        try Checkpoint.save(model: pretrainer.model, metadata: [], path: weights)
        var config = try Self.config(epochs: 1, directory: "ft-partial-" + mode)
        config.pretrained = weights
        config.update = try #require(UpdateMode(parsing: mode))
        _ = try FineTune.fitHead(&config, classes: train.classCount)
        let trainer = try Trainer(config: config, train: train, test: test)
        let start = trainer.model.tensors().map { Array(UnsafeBufferPointer(start: $0.pointer, count: $0.count)) }
        var policy = FullPolicy(sampleCount: trainer.train.count)
        try trainer.run(policy: &policy) { (_: EpochMetrics, _: inout FullPolicy) throws(TrainError) in }
        var changed: [String] = []
        for (tensor, before) in zip(trainer.model.tensors(), start)
            where Array(UnsafeBufferPointer(start: tensor.pointer, count: tensor.count)) != before { changed.append(tensor.name) }
        let expected: [String]
        switch mode {
        case "bias-only": expected = ["conv1.bias", "conv2.bias", "fc1.bias", "fc2.weight", "fc2.bias"]
        default: expected = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
        }
        #expect(changed == (mode == "bn+bias" ? ["conv1.bias", "conv2.bias", "fc1.bias", "fc2.weight", "fc2.bias"] : expected), "\(mode): \(changed)")
    }
}
