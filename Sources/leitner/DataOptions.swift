import Data
import Platform
import Train

/// Where the data comes from (train, finetune, eval, parity, doctor) and which part of it.
enum DataOptions {
    static let data = Option<String?>(
        "data", "DIR", shown: "Fashion-MNIST",
        help: "directory with train.pack and test.pack, or {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
    static let memoryMB = Option<Int?>(
        "data-memory-mb", "MB", range: 1...1 << 20, shown: "load all",
        help: "stream the packs with at most this much data memory (prefetch thread, cache when the set fits)")
    static let throttle = Parsed<PackSource.Throttle>(
        "data-throttle", "MBPS:MS", default: .none, shown: "none",
        help: "with --data-memory-mb: slow reads down to MBPS MB/s plus MS ms per read (SD card experiments)",
        expected: "MBPS:MS, e.g. 20:2") { text in
        let parts = text.split(separator: ":")
        guard parts.count == 2, let rate = Double(parts[0]), rate > 0, let milliseconds = Double(parts[1]), milliseconds >= 0 else {
            return nil
        }
        return PackSource.Throttle(bytesPerSecond: rate * 1e6, latencySeconds: milliseconds / 1000)
    }
    static let classes = Option<String?>(
        "classes", "LIST", shown: "all",
        help: "keep only these classes (e.g. 5-9 or 0,2,4), train and test, labels renumbered 0..k-1 in this order")
    static let perClass = Option<Int?>("per-class", "N", range: 1...Int.max, shown: "all",
                                       help: "train on the first N training samples of each kept class")

    /// Class selection, shared by train, finetune and eval.
    static let selectionSpecs = [classes.spec, perClass.spec]

    /// The data the options name.
    static func source(_ options: ParsedOptions) throws(UsageError) -> DataSource {
        var source = DataSource()
        source.directory = try options.value(data)
        source.memoryBudgetBytes = try options.value(memoryMB).map { $0 << 20 }
        source.throttle = try options.value(throttle)
        source.classes = try options.value(classes)
        source.perClass = try options.value(perClass) ?? 0
        return source
    }

    /// Loads the data the options name (default: Fashion-MNIST); nil after a message (a bad
    /// data option included: exit 1 as for data that cannot be read).
    static func load(_ options: ParsedOptions, reporter: Reporter) -> (train: Dataset, test: Dataset)? {
        let source: DataSource
        do throws(UsageError) { source = try self.source(options) } catch {
            Console.error(error.message)
            return nil
        }
        do throws(TrainError) { return try source.load(reporter: reporter) } catch {
            Console.error("leitner: " + error.message)
            return nil
        }
    }
}
