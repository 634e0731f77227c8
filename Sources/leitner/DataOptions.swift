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
        if let text = source.classes {
            // The list's form is checked here (exit 2); whether its classes exist, once loaded.
            var kept = 0
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                let ends = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
                let valid = (ends.count == 1 || ends.count == 2) && ends.allSatisfy { $0 != nil && $0! >= 0 }
                    && (ends.count == 1 || ends[0]! <= ends[1]!)
                if !valid {
                    throw UsageError(message: "leitner: --classes takes classes as ascending ranges or commas (e.g. 5-9 or 0,2,4), got '\(text)'")
                }
                kept += ends.count == 2 ? ends[1]! - ends[0]! + 1 : 1
            }
            // One class is no classification: every prediction would be right.
            if kept < 2 { throw UsageError(message: "leitner: --classes '\(text)' keeps one class; training and evaluation need at least 2") }
        }
        source.perClass = try options.value(perClass) ?? 0
        return source
    }

    /// Loads the data the options name (default: Fashion-MNIST); nil after a message when the
    /// data cannot be read (exit 1); a bad data option is a UsageError (exit 2).
    static func load(_ options: ParsedOptions, reporter: Reporter) throws(UsageError) -> (train: Dataset, test: Dataset)? {
        load(try source(options), reporter: reporter)
    }

    /// Loads `source` (the options' source, possibly adjusted by the command); nil after a
    /// message when the data cannot be read.
    static func load(_ source: DataSource, reporter: Reporter) -> (train: Dataset, test: Dataset)? {
        let data: (train: Dataset, test: Dataset)
        do throws(TrainError) { data = try source.load(reporter: reporter) } catch {
            Console.error("leitner: " + error.message)
            return nil
        }
        return data
    }
}
