import Foundation
import Testing
import Data
import NN
import Train
import Kernels
import Platform
import Select

/// Training from a streamed pack: the same results as from memory for the same order, and
/// an SD-card-slow source (20 MB/s plus 2 ms per read) is read once per block per epoch.
@Suite(.serialized) struct PackTrainingTests {
    /// A 1x28x28 pack whose sample bytes encode their index (bytes 0-1) over noise, labels i % 10.
    static func writePack(_ path: String, count: Int) throws {
        let writer = try PackWriter(path: path, channels: 1, height: 28, width: 28, elementType: .uint8,
                                    classNames: (0..<10).map { "c\($0)" })
        var generator = SeededGenerator(seed: 11)
        for sample in 0..<count {
            var pixels = (0..<784).map { _ in UInt8(generator.below(256)) }
            pixels[0] = UInt8(sample & 0xff)
            pixels[1] = UInt8(sample >> 8)
            try writer.append(label: sample % 10, pixels: pixels[...])
        }
        try writer.finish()
    }

    static func cnnConfig(_ directory: String) throws -> TrainConfig {
        var config = TrainConfig(model: try ModelZoo.description(named: "cnn-s"))
        config.epochs = 1
        config.batch = 64
        config.threads = 2
        config.outputDirectory = directory
        config.progress = false
        return config
    }

    /// A run streamed in a small budget and the same pack cached give identical epochs
    /// (same order, same batches), and training reads each block once per epoch.
    @Test func streamedAndCachedRunsAreIdentical() throws {
        let directory = temporaryDirectory("pack-identical")
        let path = directory + "/train.pack"
        try Self.writePack(path, count: 1200)
        var config = try tinyConfigFor28(directory)
        config.epochs = 2
        var results: [[Double]] = []
        for budget in [1 << 20, 16 << 20] {
            let pack = try PackFile.open(path)
            let stream = try PackStream(pack: pack, budgetBytes: budget, shuffleBufferSamples: 256)
            #expect(stream.cacheMode == (budget > 1 << 20))
            let train = try Dataset(streaming: stream)
            let trainer = try Trainer(config: config, train: train, test: train)
            var policy = FullPolicy(sampleCount: train.count)
            var progress = ProgressDisplay(enabled: false)
            var losses: [Double] = []
            for epoch in 0..<2 {
                pack.source.resetCounters()
                let metrics = trainer.trainEpoch(policy: &policy, progress: &progress)
                losses.append(metrics.trainLoss)
                // Epoch 1 reads every block once; a cached epoch 2 reads nothing.
                let expectedReads = stream.cacheMode && epoch > 0 ? 0 : pack.blocks.count
                #expect(pack.source.readCalls == expectedReads, "budget \(budget) epoch \(epoch): \(pack.source.readCalls) reads")
            }
            losses.append(trainer.evaluate().loss)
            results.append(losses)
        }
        #expect(results[0] == results[1], "\(results)")
    }

    /// A block that turns out corrupt in the middle of training ends the run with a
    /// TrainError naming the file and block (the library throws; only the executable exits),
    /// before that epoch's checkpoint is written.
    @Test func aCorruptBlockMidTrainingThrowsAndWritesNoCheckpoint() throws {
        let directory = temporaryDirectory("pack-corrupt")
        let path = directory + "/train.pack"
        try Self.writePack(path, count: 1200)
        let pack = try PackFile.open(path)
        var bytes = [UInt8](try #require(FileManager.default.contents(atPath: path)))
        bytes[pack.blocks[pack.blocks.count / 2].offset + 20] ^= 0x55
        #expect(FileManager.default.createFile(atPath: path, contents: Foundation.Data(bytes)))
        let train = try Dataset(streaming: try PackStream(pack: try PackFile.open(path), budgetBytes: 1 << 20, shuffleBufferSamples: 256))
        let session = try TrainingSession(config: try tinyConfigFor28(directory), train: train, test: train)
        var policy = FullPolicy(sampleCount: train.count)
        do {
            try session.run(policy: &policy)
            Issue.record("training on a corrupt pack succeeded")
        } catch {
            #expect(error.message.hasPrefix(path + ": block \(pack.blocks.count / 2): "), "\(error.message)")
        }
        #expect(session.history.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: session.checkpointPath))
    }

    func tinyConfigFor28(_ directory: String) throws -> TrainConfig {
        var config = TrainConfig(model: try ModelDescription.parse("""
            input 1x28x28
            classes 10
            conv 4 k3 p1
            relu
            maxpool 4
            flatten
            linear 10
            """, name: "tiny28"))
        config.batch = 32
        config.threads = 1
        config.outputDirectory = directory
        config.progress = false
        return config
    }

    /// cnn-s epochs from a pack streamed through a source throttled to 20 MB/s plus 2 ms per
    /// read: every block is read exactly once per epoch (no cache at this budget) and the
    /// streamed epochs train the same samples as the in-memory ones. How much the throttle
    /// costs in time is a benchmark, not a unit test (timed bars in unit tests fail on shared
    /// 2-core machines): `leitner train --data-memory-mb 8 --data-throttle 20:2` against the
    /// same run without `--data-throttle`, alternating rounds (docs/results/2026-11-packs.md).
    @Test func throttledSourceReadsEachBlockOncePerEpoch() throws {
        let directory = temporaryDirectory("pack-throttle")
        let path = directory + "/train.pack"
        let count = 1920
        try Self.writePack(path, count: count)
        let config = try Self.cnnConfig(directory)
        let memory = try PackFile.open(path).loadDataset()
        let throttledPack = try PackFile.open(path, throttle: .sdCard)
        let stream = try PackStream(pack: throttledPack, budgetBytes: 1 << 20, shuffleBufferSamples: 128)
        #expect(!stream.cacheMode, "1 MiB cannot cache \(throttledPack.uncompressedBytes) bytes")
        let streamed = try Dataset(streaming: stream)
        let streamTrainer = try Trainer(config: config, train: streamed, test: memory)
        var streamPolicy = FullPolicy(sampleCount: count)
        var progress = ProgressDisplay(enabled: false)
        for epoch in 0..<2 {
            throttledPack.source.resetCounters()
            let stalled = stream.stallNanoseconds, decoding = stream.decodeNanoseconds
            let result = streamTrainer.trainEpoch(policy: &streamPolicy, progress: &progress)
            #expect(throttledPack.source.readCalls == throttledPack.blocks.count, "epoch \(epoch)")
            #expect(result.samplesTrained == count, "epoch \(epoch): trained \(result.samplesTrained)")
            #expect(result.trainLoss.isFinite)
            print("epoch \(epoch): \(result.wallSeconds) s, stall \(Double(stream.stallNanoseconds - stalled) * 1e-9) s, decode CPU \(Double(stream.decodeNanoseconds - decoding) * 1e-9) s")
        }
    }
}
