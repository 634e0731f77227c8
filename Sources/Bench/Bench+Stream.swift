import Data
import NN
import Platform
import Select
import Train

/// `leitner bench stream`: does a slow card slow training down? cnn-s epochs (batch 64) on a
/// pack held in memory, alternating round by round with the same pack streamed through a
/// source throttled like an SD card (20 MB/s plus 2 ms per read, a budget that cannot cache
/// it). Prints every round, the medians, the spread and the prefetch thread's stall and
/// decode time; the design target is streamed within 5% of in memory.
///
/// This was a unit test with a wall-clock bar; on shared 2-core machines the same epoch varies
/// by more than the 5% it asserted, so it is a benchmark: alternating rounds, medians, spread.
enum StreamBench {
    static func run(rounds: Int, threads: Int, packPath: String?) -> Bool {
        guard let path = packPath ?? DatasetLocator.shippedSubsetDirectory().map({ $0 + "/" + DatasetLocator.packNames.train }) else {
            print("stream: no pack found (pass --pack FILE)")
            return false
        }
        do throws(TrainError) {
            let memory: Dataset, throttledPack: PackFile, stream: PackStream
            do throws(DataError) {
                memory = try PackFile.open(path).loadDataset(normalization: .fashionMNIST)
                throttledPack = try PackFile.open(path, throttle: .sdCard)
                // Half of what caching would need: streaming, never cached.
                let needed = PackStream.requiredBytes(pack: throttledPack)
                stream = try PackStream(pack: throttledPack, budgetBytes: max(needed.streaming, needed.cached / 2))
                if stream.cacheMode { print("stream: \(path) is too small to stream without caching"); return false }
            } catch { throw TrainError(error) }
            let streamed: Dataset
            do throws(DataError) { streamed = try Dataset(streaming: stream, normalization: .fashionMNIST) } catch { throw TrainError(error) }
            var config = TrainConfig(model: try modelDescription())
            config.epochs = 1
            config.batch = 64
            config.threads = threads
            config.progress = false
            let memoryTrainer = try Trainer(config: config, train: memory, test: memory)
            let streamTrainer = try Trainer(config: config, train: streamed, test: memory)
            var memoryPolicy = FullPolicy(sampleCount: memory.count), streamPolicy = FullPolicy(sampleCount: memory.count)
            var progress = ProgressDisplay(enabled: false)
            print("\nstream: cnn-s, batch 64, \(threads) thread(s), \(memory.count) samples of \(path); in memory vs streamed at 20 MB/s + 2 ms/read (\(throttledPack.blocks.count) blocks), \(rounds) alternating rounds after one warm-up epoch each")
            _ = memoryTrainer.trainEpoch(policy: &memoryPolicy, progress: &progress)
            _ = streamTrainer.trainEpoch(policy: &streamPolicy, progress: &progress)
            if let error = streamTrainer.dataFailure { throw TrainError(error) }
            var memorySeconds: [Double] = [], streamSeconds: [Double] = []
            print("round   in memory s   streamed s   ratio   stall s   decode s")
            for round in 1...rounds {
                let memoryEpoch = memoryTrainer.trainEpoch(policy: &memoryPolicy, progress: &progress)
                let stalled = stream.stallNanoseconds, decoding = stream.decodeNanoseconds
                let streamEpoch = streamTrainer.trainEpoch(policy: &streamPolicy, progress: &progress)
                if let error = streamTrainer.dataFailure { throw TrainError(error) }
                memorySeconds.append(memoryEpoch.wallSeconds)
                streamSeconds.append(streamEpoch.wallSeconds)
                print(Format.pad(String(round), 5) + Format.pad(BenchSupport.format(memoryEpoch.wallSeconds, decimals: 3), 14)
                      + Format.pad(BenchSupport.format(streamEpoch.wallSeconds, decimals: 3), 13)
                      + Format.pad(BenchSupport.format(streamEpoch.wallSeconds / memoryEpoch.wallSeconds, decimals: 3), 8)
                      + Format.pad(BenchSupport.format(Double(stream.stallNanoseconds - stalled) * 1e-9, decimals: 4), 10)
                      + Format.pad(BenchSupport.format(Double(stream.decodeNanoseconds - decoding) * 1e-9, decimals: 4), 11))
            }
            let memoryMedian = BenchSupport.median(memorySeconds), streamMedian = BenchSupport.median(streamSeconds)
            let ratios = zip(streamSeconds, memorySeconds).map { $0 / $1 }.sorted()
            print("median: in memory \(BenchSupport.format(memoryMedian, decimals: 3)) s, streamed \(BenchSupport.format(streamMedian, decimals: 3)) s, ratio of medians \(BenchSupport.format(streamMedian / memoryMedian, decimals: 3)); per-round ratios \(BenchSupport.format(ratios.first!, decimals: 3))-\(BenchSupport.format(ratios.last!, decimals: 3)) (target: at most 1.05)")
            return true
        } catch {
            print("stream: " + error.description)
            return false
        }
    }

    static func modelDescription() throws(TrainError) -> ModelDescription {
        do throws(ModelError) { return try ModelZoo.description(named: "cnn-s") } catch { throw TrainError(error) }
    }
}
