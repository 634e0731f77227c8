import Foundation
import Testing
import Data
import NN
import Train
import Kernels
import Platform
import Select
import TestSupport

/// A learnable synthetic set: 1x8x8 images, class c has a bright 2x2 patch at a
/// class-dependent place plus seeded noise.
func syntheticSet(count: Int, seed: UInt64, classes: Int = 4) throws -> Dataset {
    var generator = SeededGenerator(seed: seed)
    var pixels = [UInt8](repeating: 0, count: count * 64)
    var labels = [UInt8](repeating: 0, count: count)
    for sample in 0..<count {
        let label = generator.below(classes)
        labels[sample] = UInt8(label)
        for pixel in 0..<64 { pixels[sample * 64 + pixel] = UInt8(generator.below(60)) }
        let row = (label / 2) * 4 + 1, column = (label % 2) * 4 + 1
        for dy in 0..<2 { for dx in 0..<2 { pixels[sample * 64 + (row + dy) * 8 + column + dx] = 250 } }
    }
    return try Dataset(name: "synthetic", pixels: pixels, labels: labels, channels: 1, height: 8, width: 8, classCount: classes)
}

let tinyModel = """
input 1x8x8
classes 4
conv 4 k3 p1 nobias
bn
relu
maxpool 2
flatten
linear 4
"""

func tinyConfig(_ directory: String, epochs: Int, threads: Int = 1) throws -> TrainConfig {
    var config = TrainConfig(model: try ModelDescription.parse(tinyModel, name: "tiny"))
    config.epochs = epochs
    config.batch = 16
    config.threads = threads
    config.learningRate = 0.05
    config.outputDirectory = directory
    config.progress = false
    config.augment = AugmentConfig(cropPadding: 1, flip: false)
    return config
}

func temporaryDirectory(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "leitner-\(name)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
    ScratchCleanup.removeAtExit()
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A test policy that trains every sample every epoch and keeps no per-sample state: only its
/// `observeTrained` is its own.
protocol TrainsEverySample: SelectionPolicy {}

extension TrainsEverySample {
    var id: PolicyID { .full }
    var stateStride: Int { 0 }
    func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) { plan.setAll(.train) }
    func encodeState(index: Int, into record: UnsafeMutableRawPointer) {}
    func decodeState(index: Int, from record: UnsafeRawPointer) {}
}

/// Trains everything and counts how often each sample was seen.
struct CountingPolicy: TrainsEverySample {
    var counts: [Int]
    var lossesFinite = true
    mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
                                 epoch: Int, learningRate: Double) {
        for (slot, index) in indices.enumerated() {
            counts[Int(index)] += 1
            if !losses[slot].isFinite || correct[slot] > 1 { lossesFinite = false }
        }
    }
}

@Suite(.serialized) struct TrainerTests {
    @Test func learnsASyntheticTaskAndTheHookSeesEverySampleOncePerEpoch() throws {
        let train = try syntheticSet(count: 300, seed: 1), test = try syntheticSet(count: 100, seed: 2)
        let session = try TrainingSession(config: try tinyConfig(temporaryDirectory("learn"), epochs: 3), train: train, test: test)
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        try session.run(policy: &hook)
        #expect(hook.counts.allSatisfy { $0 == 3 }, "each sample must be trained exactly once per epoch")
        #expect(hook.lossesFinite)
        let last = try #require(session.history.last)
        #expect(last.testAccuracy > 0.9, "test accuracy \(last.testAccuracy)")
        #expect(session.history.count == 3)
        #expect(last.samplesTrained == 300)
        let log = try String(contentsOfFile: session.metricsPath, encoding: .utf8)
        let lines = log.split(separator: "\n")
        #expect(lines.count == 3)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(first?["epoch"] as? Int == 1)
        #expect(first?["samples_trained"] as? Int == 300)
        for key in ["lr", "train_loss", "train_accuracy", "test_accuracy", "test_loss", "samples_per_second", "wall_seconds", "samples_scored", "samples_skipped"] {
            #expect(first?[key] != nil, "missing \(key) in the JSONL line")
        }
    }

    @Test(arguments: [1, 2]) func sameSeedAndThreadsGiveIdenticalRuns(threads: Int) throws {
        let train = try syntheticSet(count: 200, seed: 3), test = try syntheticSet(count: 50, seed: 4)
        var runs: [[Double]] = []
        for name in ["a", "b"] {
            let session = try TrainingSession(config: try tinyConfig(temporaryDirectory("det" + name), epochs: 2, threads: threads), train: train, test: test)
            var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
            try session.run(policy: &hook)
            runs.append(session.history.flatMap { [$0.trainLoss, $0.testLoss, $0.testAccuracy] })
        }
        #expect(runs[0] == runs[1])
    }

    /// Two epochs in one go equal one epoch, a stop, and a resumed second epoch, exactly.
    @Test func resumeContinuesExactly() throws {
        let train = try syntheticSet(count: 200, seed: 5), test = try syntheticSet(count: 50, seed: 6)
        let straight = try TrainingSession(config: try tinyConfig(temporaryDirectory("straight"), epochs: 2), train: train, test: test)
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        try straight.run(policy: &hook)

        let directory = temporaryDirectory("resumed")
        var interrupted = try tinyConfig(directory, epochs: 2)
        interrupted.stopAfterEpoch = 1
        let first = try TrainingSession(config: interrupted, train: train, test: test)
        try first.run(policy: &hook)
        var config = try tinyConfig(directory, epochs: 2)
        config.resume = true
        let second = try TrainingSession(config: config, train: train, test: test)
        try second.run(policy: &hook)
        let expected = try #require(straight.history.last)
        let got = try #require(second.history.last)
        #expect(got.epoch == 2)
        #expect(got.trainLoss == expected.trainLoss)
        #expect(got.testLoss == expected.testLoss)
        #expect(got.testAccuracy == expected.testAccuracy)
        let log = try String(contentsOfFile: second.metricsPath, encoding: .utf8)
        #expect(log.split(separator: "\n").count == 2, "the resumed run appends to the log")
    }

    @Test func mismatchedDataIsRefusedWithAClearMessage() throws {
        let train = try syntheticSet(count: 20, seed: 7)
        var config = try tinyConfig(temporaryDirectory("bad"), epochs: 1)
        config.model = try ModelZoo.description(named: "cnn-s")
        #expect(throws: TrainError.self) { _ = try TrainingSession(config: config, train: train, test: train) }
        do { _ = try TrainingSession(config: config, train: train, test: train) } catch {
            #expect(error.message.contains("1x8x8"), "\(error.message)")
        }
        var budget = try tinyConfig(temporaryDirectory("budget"), epochs: 1)
        budget.memoryBudgetBytes = 1024
        do {
            _ = try TrainingSession(config: budget, train: train, test: train)
            Issue.record("a plan over the memory budget was accepted")
        } catch {
            #expect(error.message.contains("needs"), "\(error.message)")
        }
    }
}

@Suite(.serialized) struct PolicyTrainingTests {
    /// IES with its per-sample state: 9 epochs straight equal 7 epochs, a stop, and a resume
    /// that restores the state file, exactly (metrics and the policy's exclusions).
    @Test func iesResumeRestoresPerSampleStateExactly() throws {
        let train = try syntheticSet(count: 240, seed: 8), test = try syntheticSet(count: 60, seed: 9)
        func config(_ directory: String) throws -> TrainConfig {
            var config = try tinyConfig(directory, epochs: 9)
            config.augment = AugmentConfig(cropPadding: 1)
            config.schedule = .constant
            return config
        }
        let straightDirectory = temporaryDirectory("ies-straight")
        var straightPolicy = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        let straight = try TrainingSession(config: try config(straightDirectory), train: train, test: test)
        try straight.run(policy: &straightPolicy)

        let directory = temporaryDirectory("ies-resumed")
        var interrupted = try config(directory)
        interrupted.stopAfterEpoch = 7
        var firstPolicy = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        try TrainingSession(config: interrupted, train: train, test: test).run(policy: &firstPolicy)
        var resumed = try config(directory)
        resumed.resume = true
        var secondPolicy = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        let second = try TrainingSession(config: resumed, train: train, test: test)
        try second.run(policy: &secondPolicy)

        let expected = try #require(straight.history.last)
        let got = try #require(second.history.last)
        #expect(got.epoch == 9)
        #expect(got.samplesTrained == expected.samplesTrained)
        #expect(got.samplesScored == expected.samplesScored)
        #expect(got.trainLoss.bitPattern == expected.trainLoss.bitPattern)
        #expect(got.samplesTrained > 0 && got.samplesScored > 0, "epoch 9 should mix trained and excluded samples: trained \(got.samplesTrained), scored \(got.samplesScored)")
        #expect(got.testAccuracy == expected.testAccuracy)
        for index in 0..<train.count {
            #expect(secondPolicy.isExcluded(index) == straightPolicy.isExcluded(index), "sample \(index)")
        }
        // The run exercised exclusion: some samples were scored instead of trained.
        let scored = straight.history.reduce(0) { $0 + $1.samplesScored }
        #expect(scored > 0, "IES excluded nothing in this run; the resume check would be vacuous")
    }
}

@Suite(.serialized) struct SelectiveBackpropResumeTests {
    /// Selective Backprop with its loss history in the state file: 5 epochs straight equal 3
    /// epochs, a stop, and a resume that rebuilds the history, exactly (metrics, the history,
    /// the per-sample records). 600 samples: each epoch has more than the 342 candidates the
    /// exact rebuild of a 1024-loss history needs.
    @Test func resumeRestoresTheLossHistoryExactly() throws {
        let train = try syntheticSet(count: 600, seed: 10), test = try syntheticSet(count: 60, seed: 11)
        func config(_ directory: String) throws -> TrainConfig {
            var config = try tinyConfig(directory, epochs: 5)
            config.augment = AugmentConfig(cropPadding: 1)
            return config
        }
        var straightPolicy = SelectiveBackpropPolicy(sampleCount: train.count)
        let straight = try TrainingSession(config: try config(temporaryDirectory("sb-straight")), train: train, test: test)
        try straight.run(policy: &straightPolicy)

        let directory = temporaryDirectory("sb-resumed")
        var interrupted = try config(directory)
        interrupted.stopAfterEpoch = 3
        var firstPolicy = SelectiveBackpropPolicy(sampleCount: train.count)
        try TrainingSession(config: interrupted, train: train, test: test).run(policy: &firstPolicy)
        #expect(firstPolicy.historyCount == 1024, "the history must be full at the stop, or the resume check is weak")
        var resumed = try config(directory)
        resumed.resume = true
        var secondPolicy = SelectiveBackpropPolicy(sampleCount: train.count)
        let second = try TrainingSession(config: resumed, train: train, test: test)
        try second.run(policy: &secondPolicy)

        #expect(second.history.count == 2)
        for (got, expected) in zip(second.history, straight.history.suffix(2)) {
            #expect(got.epoch == expected.epoch)
            #expect(got.samplesTrained == expected.samplesTrained, "epoch \(got.epoch)")
            #expect(got.trainLoss.bitPattern == expected.trainLoss.bitPattern, "epoch \(got.epoch)")
            #expect(got.testAccuracy == expected.testAccuracy)
            // Selection happened: not every candidate was trained.
            #expect(got.samplesTrained > 0 && got.samplesTrained < got.population)
        }
        let sameHistory = secondPolicy.historySnapshot() == straightPolicy.historySnapshot()
        #expect(sameHistory, "the resumed run's loss history differs from the uninterrupted run's")
        #expect(secondPolicy.historySnapshot().count == 1024)
    }
}

@Suite(.serialized) struct LossDumpTests {
    /// `LossDumpingPolicy` around IES writes one file per epoch whose actions are IES's plan and
    /// whose losses are present exactly for the trained and scored samples; the wrapped policy
    /// decides as it would unwrapped (same metrics as a run without the dump).
    @Test func dumpHoldsEachEpochsPlanAndLosses() throws {
        let train = try syntheticSet(count: 240, seed: 8), test = try syntheticSet(count: 60, seed: 9)
        func config(_ directory: String) throws -> TrainConfig {
            var config = try tinyConfig(directory, epochs: 9)
            config.augment = AugmentConfig(cropPadding: 1)
            config.schedule = .constant
            return config
        }
        var plain = IESPolicy(sampleCount: train.count, threshold: 1e-3)
        let plainSession = try TrainingSession(config: try config(temporaryDirectory("dump-plain")), train: train, test: test)
        try plainSession.run(policy: &plain)

        let dumpDirectory = temporaryDirectory("dump") + "/losses"
        var dumping = try LossDumpingPolicy(IESPolicy(sampleCount: train.count, threshold: 1e-3), sampleCount: train.count, directory: dumpDirectory)
        let session = try TrainingSession(config: try config(temporaryDirectory("dump-run")), train: train, test: test)
        try session.run(policy: &dumping)
        #expect(session.history.map { $0.trainLoss.bitPattern } == plainSession.history.map { $0.trainLoss.bitPattern })
        #expect(dumping.failures == 0)

        var excludedTotal = 0
        for epoch in 1...9 {
            let bytes = try #require(FileManager.default.contents(atPath: LossDumpingPolicy<IESPolicy>.path(directory: dumpDirectory, epoch: epoch)))
            let n = train.count
            #expect(bytes.count == 32 + 5 * n)
            #expect(Array(bytes.prefix(8)) == Array("LTNRLOS1".utf8))
            let header = bytes.withUnsafeBytes { raw in
                (raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self), raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                 raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self))
            }
            #expect(header.0 == 3 && header.1 == UInt64(epoch) && header.2 == UInt64(n))
            var trained = 0, scored = 0
            for index in 0..<n {
                let loss = bytes.withUnsafeBytes { Float(bitPattern: $0.loadUnaligned(fromByteOffset: 32 + 4 * index, as: UInt32.self)) }
                let action = bytes[32 + 4 * n + index]
                #expect(action <= 2)
                #expect(loss.isNaN == (action == 2), "epoch \(epoch) sample \(index): action \(action), loss \(loss)")
                if action == 0 { trained += 1 } else if action == 1 { scored += 1 }
            }
            #expect(trained == session.history[epoch - 1].samplesTrained && scored == session.history[epoch - 1].samplesScored)
            excludedTotal += scored
        }
        #expect(excludedTotal > 0, "IES excluded nothing: the action check is weak")
    }
}
