import Platform

// Data: dataset formats (IDX), the in-memory dataset, batch assembly with normalisation and
// augmentation, epoch orders, and finding Fashion-MNIST on a machine.

/// The four files of an MNIST-style dataset and a sentence saying which copy they are.
public struct DatasetFiles: Equatable {
    public let directory: String
    public let trainImages: String
    public let trainLabels: String
    public let testImages: String
    public let testLabels: String
    /// Sample counts from the label files' headers.
    public let trainCount: Int
    public let testCount: Int
    /// True for the full set in the system directory.
    public let isFullSet: Bool
    /// The packs (`train.pack`, `test.pack`) when the directory holds packs; the four IDX
    /// paths are then empty.
    public var trainPack: String? = nil
    public var testPack: String? = nil
    /// False for packs of other data (photos: another shape or class count): they are loaded
    /// with the training pack's own per-channel statistics, not Fashion-MNIST's.
    public var isFashionMNIST = true
    /// For logs and reports: which copy, where, how many samples.
    public let description: String
}

/// Finds Fashion-MNIST: an explicit directory when given, else the Debian package's full set,
/// else the subset shipped in the repository (looked for relative to the repository root if
/// given, the current directory, and the executable's directory and its ancestors).
public enum DatasetLocator {
    /// Where the Debian package `dataset-fashion-mnist` installs the full set.
    public static let systemFashionMNIST = "/usr/share/datasets/fashion-mnist"
    /// The system directory: $LEITNER_SYSTEM_DATA when set (to try the subset fallback on a
    /// machine that has the package), else `systemFashionMNIST`.
    public static func systemDirectory() -> String {
        if let value = Environment.value("LEITNER_SYSTEM_DATA") { return value }
        return systemFashionMNIST
    }
    /// The shipped subset, relative to the repository root.
    public static let subsetRelativePath = "data/fashion-mnist-subset"
    /// Pack names: a directory with both holds a packed dataset (preferred over IDX files).
    public static let packNames = (train: "train.pack", test: "test.pack")
    /// Base names of the four files (each may also be present without `.gz`).
    public static let fileStems = (
        trainImages: "train-images-idx3-ubyte", trainLabels: "train-labels-idx1-ubyte",
        testImages: "t10k-images-idx3-ubyte", testLabels: "t10k-labels-idx1-ubyte")

    /// Locates Fashion-MNIST. `dataDirectory` (a --data option) wins and must hold all four files.
    public static func fashionMNIST(
        dataDirectory: String? = nil, repositoryRoot: String? = nil,
        systemDirectory: String = DatasetLocator.systemDirectory()
    ) throws(DataError) -> DatasetFiles {
        if let dataDirectory {
            // A directory that cannot be looked at says why (a symbolic-link loop, no permission)
            // instead of "not found".
            if let problem = FileSystem.statError(dataDirectory), !problem.isNotFound {
                throw DataError(path: dataDirectory, kind: .system(problem))
            }
            guard let files = try files(in: dataDirectory, kind: .explicit) else {
                throw DataError(path: dataDirectory, kind: .missing(
                    "the directory must hold \(packNames.train) and \(packNames.test), or \(fileStems.trainImages), \(fileStems.trainLabels), \(fileStems.testImages) and \(fileStems.testLabels) (.gz or plain)"))
            }
            return files
        }
        if let files = try files(in: systemDirectory, kind: .system) { return files }
        var searched: [String] = [systemDirectory]
        for directory in subsetCandidates(repositoryRoot: repositoryRoot) {
            if let files = try files(in: directory, kind: .subset) { return files }
            searched.append(directory)
        }
        var list = ""
        for (position, directory) in searched.enumerated() { list += (position == 0 ? "" : ", ") + directory }
        throw DataError(path: subsetRelativePath, kind: .missing(
            "no Fashion-MNIST found (searched \(list)); install the Debian package dataset-fashion-mnist or pass --data DIR"))
    }

    enum Kind { case explicit, system, subset }

    /// The four files in `directory`, or nil when one is missing.
    static func files(in directory: String, kind: Kind) throws(DataError) -> DatasetFiles? {
        let trainPack = join(directory, packNames.train), testPack = join(directory, packNames.test)
        if FileSystem.exists(trainPack) && FileSystem.exists(testPack) {
            let train = try PackFile.open(trainPack).header
            let test = try PackFile.open(testPack).header
            let trainCount = train.sampleCount, testCount = test.sampleCount
            let fashion = train.channels == 1 && train.height == 28 && train.width == 28 && train.classCount == FashionMNIST.classCount
            if !fashion && (test.channels != train.channels || test.height != train.height || test.width != train.width
                            || test.classCount != train.classCount) {
                throw DataError(path: testPack, kind: .dimensionMismatch(
                    "\(test.channels)x\(test.height)x\(test.width) with \(test.classCount) classes, but \(trainPack) holds \(train.channels)x\(train.height)x\(train.width) with \(train.classCount)"))
            }
            let counts = "(\(trainCount) train / \(testCount) test, packed)"
            var files = DatasetFiles(
                directory: directory, trainImages: "", trainLabels: "", testImages: "", testLabels: "",
                trainCount: trainCount, testCount: testCount, isFullSet: kind == .system,
                description: fashion ? describe(directory, kind: kind, counts: counts)
                    : "packs in \(directory): \(train.channels)x\(train.height)x\(train.width), \(train.classCount) classes \(counts)")
            files.trainPack = trainPack
            files.testPack = testPack
            files.isFashionMNIST = fashion
            return files
        }
        guard let trainImages = find(directory, fileStems.trainImages),
              let trainLabels = find(directory, fileStems.trainLabels),
              let testImages = find(directory, fileStems.testImages),
              let testLabels = find(directory, fileStems.testLabels) else { return nil }
        let trainCount = try IDX.readLabelCount(trainLabels)
        let testCount = try IDX.readLabelCount(testLabels)
        return DatasetFiles(
            directory: directory, trainImages: trainImages, trainLabels: trainLabels, testImages: testImages,
            testLabels: testLabels, trainCount: trainCount, testCount: testCount, isFullSet: kind == .system,
            description: describe(directory, kind: kind, counts: "(\(trainCount) train / \(testCount) test)"))
    }

    static func describe(_ directory: String, kind: Kind, counts: String) -> String {
        switch kind {
        case .explicit: return "Fashion-MNIST from \(directory) \(counts)"
        case .system: return "Fashion-MNIST full set from \(directory) \(counts)"
        case .subset:
            return "Fashion-MNIST subset shipped in \(directory) \(counts); install the Debian package dataset-fashion-mnist for the full set"
        }
    }

    static func find(_ directory: String, _ stem: String) -> String? {
        let base = directory.hasSuffix("/") ? directory + stem : directory + "/" + stem
        if FileSystem.exists(base + ".gz") { return base + ".gz" }
        if FileSystem.exists(base) { return base }
        return nil
    }

    /// The shipped subset's directory when it holds packs (searched like `fashionMNIST`).
    public static func shippedSubsetDirectory(repositoryRoot: String? = nil) -> String? {
        for directory in subsetCandidates(repositoryRoot: repositoryRoot)
            where FileSystem.exists(join(directory, packNames.train)) { return directory }
        return nil
    }

    /// Directories that may hold the shipped subset, most specific first.
    static func subsetCandidates(repositoryRoot: String?) -> [String] {
        var candidates: [String] = []
        if let repositoryRoot { candidates.append(join(repositoryRoot, subsetRelativePath)) }
        candidates.append(subsetRelativePath)
        // The binary usually sits in <repo>/.build*/<triple>/release/: walk up a few levels.
        if var directory = executableDirectory() {
            for _ in 0..<5 {
                candidates.append(join(directory, subsetRelativePath))
                guard let parent = parentDirectory(directory) else { break }
                directory = parent
            }
        }
        return candidates
    }

    /// The directory of the running executable (readlink /proc/self/exe), or nil.
    public static func executableDirectory() -> String? {
        guard let executable = FileSystem.symbolicLinkTarget("/proc/self/exe") else { return nil }
        return parentDirectory(executable)
    }

    /// "/a/b/c" -> "/a/b"; "/a" -> "/"; nil for "/" or a path without a slash.
    static func parentDirectory(_ path: String) -> String? {
        var bytes = Array(path.utf8)
        while bytes.count > 1 && bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")), bytes.count > 1 else { return nil }
        return slash == 0 ? "/" : String(decoding: bytes[0..<slash], as: UTF8.self)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
