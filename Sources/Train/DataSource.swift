import Data
import Platform

/// Where the training and test sets come from and which part of them: Fashion-MNIST in a
/// directory (or its usual places), loaded into memory or streamed from packs within a memory
/// budget, optionally only some classes.
public struct DataSource {
    /// Packs or IDX files; nil: Fashion-MNIST where `DatasetLocator` looks for it.
    public var directory: String? = nil
    /// Stream the packs in at most this many bytes of data memory; nil: load everything.
    public var memoryBudgetBytes: Int? = nil
    /// Slows a streamed pack's reads (SD card experiments).
    public var throttle = PackSource.Throttle.none
    /// The classes to keep, as ranges or commas ("5-9", "0,2,4"), relabelled 0..k-1 in this
    /// order; nil: all.
    public var classes: String? = nil
    /// Train on the first this many samples of each kept class (0 = all).
    public var perClass = 0

    public init() {}

    /// Locates and loads the data, applies the class selection, and reports which.
    public func load(reporter: Reporter) throws(TrainError) -> (train: Dataset, test: Dataset) {
        let data = try loadAll(reporter: reporter)
        guard classes != nil || perClass > 0 else { return data }
        let text = classes ?? "0-\(data.train.classCount - 1)"
        guard let kept = Dataset.parseClasses(text, classCount: data.train.classCount) else {
            throw TrainError("--classes must list distinct classes in 0...\(data.train.classCount - 1) as ranges or commas (e.g. 5-9 or 0,2,4), got '\(text)'")
        }
        do throws(DataError) {
            let train = try data.train.selectingClasses(kept, perClass: perClass)
            let test = try data.test.selectingClasses(kept)
            reporter.note("classes: \(text) as labels 0-\(kept.count - 1); train \(train.count) samples\(perClass > 0 ? " (first \(perClass) per class)" : ""), test \(test.count)")
            return (train, test)
        } catch {
            throw TrainError(error)
        }
    }

    func loadAll(reporter: Reporter) throws(TrainError) -> (train: Dataset, test: Dataset) {
        let files: DatasetFiles
        do { files = try DatasetLocator.fashionMNIST(dataDirectory: directory) } catch { throw TrainError(error) }
        reporter.note("data: " + files.description)
        guard let budgetBytes = memoryBudgetBytes else {
            do { return try FashionMNIST.load(files) } catch { throw TrainError(error) }
        }
        guard let trainPack = files.trainPack, let testPack = files.testPack else {
            throw TrainError("--data-memory-mb streams packs, but \(files.directory) holds IDX files; convert them with 'leitner pack idx IMAGES LABELS --out DIR/train.pack' (and test.pack)")
        }
        let data: (train: Dataset, test: Dataset)
        do {
            data = try streamPacks(train: trainPack, test: testPack, budgetBytes: budgetBytes,
                                   normalization: files.isFashionMNIST ? FashionMNIST.normalization : nil, throttle: throttle)
        } catch {
            throw TrainError(error)
        }
        for (name, set) in [("train", data.train), ("test", data.test)] {
            let stream = set.stream!
            reporter.note("data memory: \(name) \(stream.cacheMode ? "cached after its first read" : "streamed") in \(stream.plannedBytes >> 10) KiB (\(stream.pack.uncompressedBytes >> 10) KiB decompressed, \(stream.pack.fileBytes >> 10) KiB packed; budget \(budgetBytes >> 20) MiB)")
        }
        return data
    }
}
