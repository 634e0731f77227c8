import Data
import Platform

/// Where the data comes from (train, finetune, eval, parity, doctor) and which part of it.
enum DataOptions {
    static let data = Option<String?>(
        "data", "DIR", shown: "Fashion-MNIST",
        help: "directory with train.pack and test.pack, or {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
    static let memoryMB = Option<Int?>(
        "data-memory-mb", "MB", range: 1...1 << 20, shown: "load all",
        help: "stream the packs with at most this much data memory (prefetch thread, cache when the set fits)")
    static let throttle = Option<PackSource.Throttle>(
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

    /// Locates and loads the data the options name (default: Fashion-MNIST), applies
    /// --classes and --per-class, and says which; nil after a message (a bad data option
    /// included: exit 1 as for data that cannot be read).
    static func load(_ options: ParsedOptions) -> (train: Dataset, test: Dataset)? {
        let classText: String?, perClass: Int, directory: String?, budgetBytes: Int?, throttle: PackSource.Throttle
        do throws(UsageError) {
            classText = try options.value(classes)
            perClass = try options.value(Self.perClass) ?? 0
            directory = try options.value(data)
            budgetBytes = try options.value(memoryMB).map { $0 << 20 }
            throttle = try options.value(Self.throttle)
        } catch {
            Console.error(error.message)
            return nil
        }
        guard let data = loadAll(directory: directory, budgetBytes: budgetBytes, throttle: throttle) else { return nil }
        guard classText != nil || perClass > 0 else { return data }
        let text = classText ?? "0-\(data.train.classCount - 1)"
        guard let kept = Dataset.parseClasses(text, classCount: data.train.classCount) else {
            Console.error("leitner: --classes must list distinct classes in 0...\(data.train.classCount - 1) as ranges or commas (e.g. 5-9 or 0,2,4), got '\(text)'")
            return nil
        }
        do throws(DataError) {
            let train = try data.train.selectingClasses(kept, perClass: perClass)
            let test = try data.test.selectingClasses(kept)
            print("classes: \(text) as labels 0-\(kept.count - 1); train \(train.count) samples\(perClass > 0 ? " (first \(perClass) per class)" : ""), test \(test.count)")
            return (train, test)
        } catch {
            Console.error("leitner: " + error.description)
            return nil
        }
    }

    static func loadAll(directory: String?, budgetBytes: Int?, throttle: PackSource.Throttle) -> (train: Dataset, test: Dataset)? {
        do throws(DataError) {
            let files = try DatasetLocator.fashionMNIST(dataDirectory: directory)
            print("data: " + files.description)
            if let budgetBytes {
                guard let trainPack = files.trainPack, let testPack = files.testPack else {
                    Console.error("leitner: --data-memory-mb streams packs, but \(files.directory) holds IDX files; convert them with 'leitner pack idx IMAGES LABELS --out DIR/train.pack' (and test.pack)")
                    return nil
                }
                let data = try streamPacks(train: trainPack, test: testPack, budgetBytes: budgetBytes,
                                           normalization: FashionMNIST.normalization, throttle: throttle)
                for (name, set) in [("train", data.train), ("test", data.test)] {
                    let stream = set.stream!
                    print("data memory: \(name) \(stream.cacheMode ? "cached after its first read" : "streamed") in \(stream.plannedBytes >> 10) KiB (\(stream.pack.uncompressedBytes >> 10) KiB decompressed, \(stream.pack.fileBytes >> 10) KiB packed; budget \(budgetBytes >> 20) MiB)")
                }
                return data
            }
            return try FashionMNIST.load(files)
        } catch {
            Console.error("leitner: " + error.description)
            return nil
        }
    }
}
