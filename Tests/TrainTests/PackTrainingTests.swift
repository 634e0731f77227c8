import Foundation
import Testing
import Data
import NN
import Train
import Kernels
import Select

/// Training from a streamed pack: the same results as from memory for the same order, and
/// an SD-card-slow source (20 MB/s plus 2 ms per read) does not slow cnn-s down.
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

    /// cnn-s epochs from an in-memory set against the same pack streamed through a source
    /// throttled to 20 MB/s plus 2 ms per read, interleaved five times: the fastest streamed
    /// epoch is within 5% of the fastest in-memory one (the minimum is the estimate least
    /// disturbed by other processes on a shared machine).
    @Test func throttledSourceDoesNotSlowCNNTraining() throws {
        let directory = temporaryDirectory("pack-throttle")
        let path = directory + "/train.pack"
        // 3840 samples: an epoch long enough (~0.45 s at 2026-11 kernel speed; 1920 were
        // ~0.22 s) that the stream's fixed warm-up (the first block reads, ~11 ms) is not most
        // of the 5% by itself, as it is not on a real 60000-sample epoch.
        let count = 3840
        try Self.writePack(path, count: count)
        let config = try Self.cnnConfig(directory)
        let memory = try PackFile.open(path).loadDataset()
        let throttledPack = try PackFile.open(path, throttle: .sdCard)
        // A shuffle buffer of 128 is 3% of this epoch, as the default 2048 is of Fashion-MNIST's
        // 60000: a pass starts only once the buffer holds that many samples (a few block
        // reads of stall per epoch), so a larger share would measure that warm-up instead.
        let stream = try PackStream(pack: throttledPack, budgetBytes: 3 << 19, shuffleBufferSamples: 128)
        #expect(!stream.cacheMode, "1.5 MiB cannot cache \(throttledPack.uncompressedBytes) bytes")
        let streamed = try Dataset(streaming: stream)
        let memoryTrainer = try Trainer(config: config, train: memory, test: memory)
        let streamTrainer = try Trainer(config: config, train: streamed, test: memory)
        var memoryPolicy = FullPolicy(sampleCount: count), streamPolicy = FullPolicy(sampleCount: count)
        var progress = ProgressDisplay(enabled: false)
        var memorySeconds: [Double] = [], streamSeconds: [Double] = [], overheads: [Double] = []
        _ = memoryTrainer.trainEpoch(policy: &memoryPolicy, progress: &progress)  // warm-up
        for _ in 0..<5 {
            memorySeconds.append(memoryTrainer.trainEpoch(policy: &memoryPolicy, progress: &progress).wallSeconds)
            throttledPack.source.resetCounters()
            let stalled = stream.stallNanoseconds, decoding = stream.decodeNanoseconds
            streamSeconds.append(streamTrainer.trainEpoch(policy: &streamPolicy, progress: &progress).wallSeconds)
            #expect(throttledPack.source.readCalls == throttledPack.blocks.count)
            // The epoch's cost of streaming: waiting for blocks, and the prefetch thread's
            // inflate + CRC time (which competes for a core). At most 5% of an in-memory epoch.
            let overhead = Double(stream.stallNanoseconds - stalled + stream.decodeNanoseconds - decoding) * 1e-9
            overheads.append(overhead)
            print("stall \(Double(stream.stallNanoseconds - stalled) * 1e-9) s, decode CPU \(Double(stream.decodeNanoseconds - decoding) * 1e-9) s")
            #expect(overhead <= 0.05 * memorySeconds.last!, "stall + decode \(overhead) s in an epoch of \(memorySeconds.last!) s")
        }
        let memoryFastest = memorySeconds.min()!, streamFastest = streamSeconds.min()!
        // What the throttled reads alone cost per epoch, had they not overlapped training.
        let readSeconds = throttledPack.blocks.reduce(0.0) { $0 + 0.002 + Double($1.compressedBytes) / 20e6 }
        print("cnn-s epoch of \(count): in memory \(memorySeconds) s, streamed at 20 MB/s + 2 ms/read \(streamSeconds) s; fastest \(memoryFastest) vs \(streamFastest) (ratio \(streamFastest / memoryFastest)); serial reads would add \(readSeconds) s; stall + decode per epoch \(overheads) s")
        #expect(readSeconds > 0.02 * memoryFastest, "the throttle must be slow enough to matter if it were not overlapped")
        // The wall-clock comparison is the end-to-end view, but on a machine shared with other
        // jobs epoch times vary by far more than 5% (seen: 1.28-2.89 s for the same epoch), so
        // the 5% bar is asserted on the measured cost above and the wall clock only at 10%.
        #expect(streamFastest <= 1.10 * memoryFastest, "streamed \(streamFastest) s vs in memory \(memoryFastest) s")
    }
}
