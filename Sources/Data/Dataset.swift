/// Per-channel normalisation of pixel/255: value = (pixel/255 - mean[c]) / std[c].
public struct Normalization: Equatable {
    public let mean: [Float]
    public let std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    /// Fashion-MNIST's training-set statistics of pixel/255 (the values the usual recipes use).
    public static let fashionMNIST = Normalization(mean: [0.2860], std: [0.3530])

    /// Mean 0, std 1: plain pixel/255.
    public static func identity(channels: Int) -> Normalization {
        Normalization(mean: [Float](repeating: 0, count: channels), std: [Float](repeating: 1, count: channels))
    }

    /// The normalised value of `pixel` in `channel`. Batch assembly uses the same formula
    /// through a 256-entry table per channel.
    @inline(__always)
    public func normalize(_ pixel: UInt8, channel: Int) -> Float {
        (Float(pixel) / 255 - mean[channel]) / std[channel]
    }
}

/// An image-classification dataset in memory, immutable once loaded.
/// - Shapes: pixels [N, C, H, W] UInt8, labels [N] UInt8 (N = count).
public struct Dataset {
    /// Where the samples came from, for reports ("…/train-images-idx3-ubyte.gz").
    public let name: String
    public let count: Int
    public let channels: Int
    public let height: Int
    public let width: Int
    public let classCount: Int
    public let classNames: [String]?
    public let pixels: [UInt8]
    public let labels: [UInt8]
    public let normalization: Normalization
    /// For a dataset streamed from a pack: the stream (pixels and labels are then empty and
    /// batches are assembled from the stream's records).
    public let stream: PackStream?

    /// Bytes of one sample: C*H*W.
    public var sampleBytes: Int { channels * height * width }

    /// Builds a dataset from raw arrays, checking every size and label. `normalization` nil
    /// computes it from the pixels.
    public init(
        name: String, pixels: [UInt8], labels: [UInt8], channels: Int, height: Int, width: Int,
        classCount: Int, classNames: [String]? = nil, normalization: Normalization? = nil
    ) throws(DataError) {
        if channels < 1 || height < 1 || width < 1 {
            throw DataError(path: name, kind: .absurdDimensions("shape \(channels)x\(height)x\(width)"))
        }
        if classCount < 1 || classCount > 256 {
            throw DataError(path: name, kind: .invalidArgument("class count \(classCount) is not in 1...256"))
        }
        let sampleBytes = channels * height * width
        if labels.isEmpty || pixels.count != labels.count * sampleBytes {
            throw DataError(path: name, kind: .dimensionMismatch(
                "\(pixels.count) pixel bytes for \(labels.count) labels of \(channels)x\(height)x\(width)"))
        }
        if let classNames, classNames.count != classCount {
            throw DataError(path: name, kind: .invalidArgument("\(classNames.count) class names for \(classCount) classes"))
        }
        for (sample, label) in labels.enumerated() where Int(label) >= classCount {
            throw DataError(path: name, kind: .labelOutOfRange(sample: sample, label: Int(label), classes: classCount))
        }
        if let normalization {
            if normalization.mean.count != channels || normalization.std.count != channels {
                throw DataError(path: name, kind: .invalidArgument(
                    "normalisation has \(normalization.mean.count) means and \(normalization.std.count) stds for \(channels) channels"))
            }
            for value in normalization.std where !(value > 0) || !value.isFinite {
                throw DataError(path: name, kind: .invalidArgument("normalisation std \(value) is not a positive number"))
            }
        }
        self.name = name
        self.count = labels.count
        self.channels = channels
        self.height = height
        self.width = width
        self.classCount = classCount
        self.classNames = classNames
        self.pixels = pixels
        self.labels = labels
        self.normalization = normalization
            ?? Dataset.meanStd(pixels: pixels, count: labels.count, channels: channels, plane: height * width)
        self.stream = nil
    }

    /// A dataset whose samples stay in a pack and are streamed (uint8 samples and labels).
    public init(streaming stream: PackStream, classNames: [String]? = nil, normalization: Normalization? = nil) throws(DataError) {
        let header = stream.pack.header
        guard header.elementType == .uint8, header.labelType == .uint8 else {
            throw DataError(path: stream.pack.path, kind: .invalidArgument(
                "training reads uint8 samples with uint8 labels; this pack holds \(header.elementType.name) samples with \(header.labelType.name) labels"))
        }
        name = stream.pack.path
        count = header.sampleCount
        channels = header.channels
        height = header.height
        width = header.width
        classCount = header.classCount
        self.classNames = classNames ?? (header.classNames.allSatisfy({ $0.isEmpty }) ? nil : header.classNames)
        pixels = []
        labels = []
        self.normalization = normalization ?? Normalization(mean: header.mean, std: header.std)
        self.stream = stream
    }

    private init(copying other: Dataset, name: String, pixels: [UInt8], labels: [UInt8], normalization: Normalization) {
        self.stream = nil
        self.name = name
        self.count = labels.count
        self.channels = other.channels
        self.height = other.height
        self.width = other.width
        self.classCount = other.classCount
        self.classNames = other.classNames
        self.pixels = pixels
        self.labels = labels
        self.normalization = normalization
    }

    /// Loads an IDX images file and its labels file (gzipped or plain): one channel.
    /// `normalization` nil computes it from the loaded pixels.
    public static func loadIDX(
        images: String, labels: String, classes: Int, classNames: [String]? = nil,
        normalization: Normalization? = nil
    ) throws(DataError) -> Dataset {
        let imageFile = try IDX.readImages(images)
        let labelBytes = try IDX.readLabels(labels)
        if labelBytes.count != imageFile.count {
            throw DataError(path: labels, kind: .dimensionMismatch(
                "\(labelBytes.count) labels but \(images) holds \(imageFile.count) images"))
        }
        for (sample, label) in labelBytes.enumerated() where Int(label) >= classes {
            throw DataError(path: labels, kind: .labelOutOfRange(sample: sample, label: Int(label), classes: classes))
        }
        return try Dataset(
            name: images, pixels: imageFile.pixels, labels: labelBytes, channels: 1,
            height: imageFile.rows, width: imageFile.cols, classCount: classes, classNames: classNames,
            normalization: normalization)
    }

    /// The pixels of sample `index`, [C, H, W].
    public func sample(_ index: Int) -> ArraySlice<UInt8> {
        pixels[index * sampleBytes..<(index + 1) * sampleBytes]
    }

    /// The samples at `indices`, in that order (repeats allowed); keeps the normalisation.
    public func subset(_ indices: [Int]) -> Dataset {
        var newPixels: [UInt8] = []
        newPixels.reserveCapacity(indices.count * sampleBytes)
        var newLabels: [UInt8] = []
        newLabels.reserveCapacity(indices.count)
        for index in indices {
            precondition(index >= 0 && index < count, "subset index \(index) is outside 0..<\(count)")
            newPixels.append(contentsOf: sample(index))
            newLabels.append(labels[index])
        }
        return Dataset(copying: self, name: name, pixels: newPixels, labels: newLabels, normalization: normalization)
    }

    /// The first `n` samples (all of them when n >= count); keeps the normalisation.
    public func prefix(_ n: Int) -> Dataset {
        let kept = max(0, min(n, count))
        if stream != nil { return Dataset(limiting: self, count: kept) }
        return Dataset(copying: self, name: name, pixels: Array(pixels[0..<kept * sampleBytes]),
                       labels: Array(labels[0..<kept]), normalization: normalization)
    }

    private init(limiting other: Dataset, count: Int) {
        name = other.name
        self.count = count
        channels = other.channels
        height = other.height
        width = other.width
        classCount = other.classCount
        classNames = other.classNames
        pixels = other.pixels
        labels = other.labels
        normalization = other.normalization
        stream = other.stream
    }

    /// The same samples with other normalisation constants (one mean and std per channel).
    public func withNormalization(_ normalization: Normalization) throws(DataError) -> Dataset {
        try Dataset(name: name, pixels: pixels, labels: labels, channels: channels, height: height, width: width,
                    classCount: classCount, classNames: classNames, normalization: normalization)
    }

    /// Mean and (population) standard deviation of pixel/255 per channel over all samples.
    public func computeMeanStd() -> Normalization {
        Dataset.meanStd(pixels: pixels, count: count, channels: channels, plane: height * width)
    }

    /// Samples per class, [classCount].
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classCount)
        for label in labels { counts[Int(label)] += 1 }
        return counts
    }

    static func meanStd(pixels: [UInt8], count: Int, channels: Int, plane: Int) -> Normalization {
        // Exact integer sums of p and p^2 per channel (a histogram), then one division: no
        // floating-point drift over millions of pixels.
        var histogram = [Int](repeating: 0, count: channels * 256)
        pixels.withUnsafeBufferPointer { bytes in
            for sample in 0..<count {
                for channel in 0..<channels {
                    let base = (sample * channels + channel) * plane
                    for pixel in 0..<plane { histogram[channel * 256 + Int(bytes[base + pixel])] += 1 }
                }
            }
        }
        var means: [Float] = []
        var stds: [Float] = []
        for channel in 0..<channels {
            var total = 0.0, sum = 0.0, squares = 0.0
            for value in 0..<256 {
                let n = Double(histogram[channel * 256 + value])
                let x = Double(value) / 255
                total += n; sum += n * x; squares += n * x * x
            }
            let mean = total > 0 ? sum / total : 0
            let variance = total > 0 ? max(0, squares / total - mean * mean) : 0
            let std = variance > 0 ? variance.squareRoot() : 1  // a constant channel: leave it unscaled
            means.append(Float(mean))
            stds.append(Float(std))
        }
        return Normalization(mean: means, std: stds)
    }
}

/// Both sets streamed from packs within `budgetBytes` of data memory: the test set (read in
/// order, no shuffle buffer) is cached when that takes at most a quarter of the budget, else
/// streamed in the least memory; the training set gets the rest and is cached when it fits.
/// `normalization` nil: the training pack's per-channel statistics, for both sets.
public func streamPacks(train trainPath: String, test testPath: String, budgetBytes: Int,
                        normalization: Normalization?, throttle: PackSource.Throttle = .none) throws(DataError) -> (train: Dataset, test: Dataset) {
    let testPack = try PackFile.open(testPath, throttle: throttle)
    let testNeeds = PackStream.requiredBytes(pack: testPack, shuffleBufferSamples: 0)
    let testBudget = testNeeds.cached <= budgetBytes / 4 ? testNeeds.cached : testNeeds.streaming
    let testStream = try PackStream(pack: testPack, budgetBytes: testBudget, shuffleBufferSamples: 0)
    let trainStream = try PackStream(pack: try PackFile.open(trainPath, throttle: throttle), budgetBytes: budgetBytes - testStream.plannedBytes)
    // nil: both sets with the training pack's own statistics.
    let used = normalization ?? Normalization(mean: trainStream.pack.header.mean, std: trainStream.pack.header.std)
    return (try Dataset(streaming: trainStream, normalization: used), try Dataset(streaming: testStream, normalization: used))
}

/// Fashion-MNIST's fixed facts: ten classes, their names, its normalisation.
public enum FashionMNIST {
    public static let classCount = 10
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    public static let normalization = Normalization.fashionMNIST

    /// Loads the training and test sets from located files, with the full set's normalisation.
    public static func load(_ files: DatasetFiles) throws(DataError) -> (train: Dataset, test: Dataset) {
        if let trainPack = files.trainPack, let testPack = files.testPack, !files.isFashionMNIST {
            // Other data (photos): both sets normalised with the training pack's statistics.
            let trainFile = try PackFile.open(trainPack)
            let own = Normalization(mean: trainFile.header.mean, std: trainFile.header.std)
            return (try trainFile.loadDataset(normalization: own), try PackFile.open(testPack).loadDataset(normalization: own))
        }
        if let trainPack = files.trainPack, let testPack = files.testPack {
            let train = try PackFile.open(trainPack).loadDataset(normalization: normalization)
            let test = try PackFile.open(testPack).loadDataset(normalization: normalization)
            for set in [train, test] where set.classCount != classCount {
                throw DataError(path: set.name, kind: .invalidArgument("\(set.classCount) classes, Fashion-MNIST has \(classCount)"))
            }
            return (train, test)
        }
        let train = try Dataset.loadIDX(images: files.trainImages, labels: files.trainLabels, classes: classCount,
                                        classNames: classNames, normalization: normalization)
        let test = try Dataset.loadIDX(images: files.testImages, labels: files.testLabels, classes: classCount,
                                       classNames: classNames, normalization: normalization)
        return (train, test)
    }
}
