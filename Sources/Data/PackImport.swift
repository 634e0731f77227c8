import Platform

/// Converters from other dataset formats to packs. Each reads its input fully checked (a
/// malformed input is a DataError naming the file and the record), then writes the pack.
public enum PackImport {
    /// Options shared by the converters.
    public struct Options {
        public var blockBytes = Pack.defaultBlockBytes
        public var level = 6
        /// Class names; when empty the class count comes from `classCount` or the labels.
        public var classNames: [String] = []
        public var classCount: Int? = nil
        /// CSV only: how values are stored, and the sample shape (default 1 x n x 1, or
        /// 1 x s x s when n = s*s).
        public var elementType = Pack.ElementType.uint8
        public var shape: (channels: Int, height: Int, width: Int)? = nil
        public init() {}
    }

    /// The largest input files the converters read whole: a CIFAR batch (CIFAR-100's training
    /// file is 155 MB), a CSV (parsed in memory: about 7 bytes per CSV byte), one image.
    public static let maximumBatchFileBytes = 512 << 20
    public static let maximumCSVBytes = 256 << 20
    public static let maximumImageFileBytes = 64 << 20

    public static let cifar10ClassNames = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]

    /// The class names: given ones, else `classCount` (or max label + 1) empty names.
    static func classNames(_ options: Options, largestLabel: Int, path: String) throws(DataError) -> [String] {
        if !options.classNames.isEmpty {
            if largestLabel >= options.classNames.count {
                throw DataError(path: path, kind: .labelOutOfRange(sample: -1, label: largestLabel, classes: options.classNames.count))
            }
            return options.classNames
        }
        let count = options.classCount ?? largestLabel + 1
        if largestLabel >= count { throw DataError(path: path, kind: .labelOutOfRange(sample: -1, label: largestLabel, classes: count)) }
        return [String](repeating: "", count: count)
    }

    /// An IDX images file and its labels file (gzipped or plain), e.g. MNIST, Fashion-MNIST.
    public static func idx(images: String, labels: String, output: String, options: Options) throws(DataError) -> PackHeader {
        let imageFile = try IDX.readImages(images)
        let labelBytes = try IDX.readLabels(labels)
        if labelBytes.count != imageFile.count {
            throw DataError(path: labels, kind: .dimensionMismatch("\(labelBytes.count) labels but \(images) holds \(imageFile.count) images"))
        }
        let names = try classNames(options, largestLabel: Int(labelBytes.max() ?? 0), path: labels)
        let writer = try PackWriter(path: output, channels: 1, height: imageFile.rows, width: imageFile.cols, elementType: .uint8,
                                    classNames: names, blockBytes: options.blockBytes, level: options.level)
        let sampleBytes = imageFile.rows * imageFile.cols
        for sample in 0..<imageFile.count {
            try writer.append(label: Int(labelBytes[sample]), pixels: imageFile.pixels[sample * sampleBytes..<(sample + 1) * sampleBytes])
        }
        return try writer.finish()
    }

    /// CIFAR-10 (`label, 3072 pixels`) or CIFAR-100 (`coarse, fine, 3072 pixels`) binary batches,
    /// pixels [3, 32, 32]; CIFAR-100 packs the fine label unless `coarse`.
    public static func cifar(batches: [String], hundred: Bool, coarse: Bool, output: String, options: Options) throws(DataError) -> PackHeader {
        let labelBytes = hundred ? 2 : 1
        let recordBytes = labelBytes + 3072
        var names = options.classNames
        if names.isEmpty && options.classCount == nil {
            names = hundred ? [String](repeating: "", count: coarse ? 20 : 100) : cifar10ClassNames
        }
        let classCount = names.isEmpty ? options.classCount! : names.count
        let writer = try PackWriter(path: output, channels: 3, height: 32, width: 32, elementType: .uint8,
                                    classNames: names.isEmpty ? [String](repeating: "", count: classCount) : names,
                                    blockBytes: options.blockBytes, level: options.level)
        for path in batches {
            let bytes: [UInt8]
            do { bytes = try FileSystem.readAll(path, limit: PackImport.maximumBatchFileBytes) } catch { throw DataError(error) }
            if bytes.isEmpty || bytes.count % recordBytes != 0 {
                throw DataError(path: path, kind: .dimensionMismatch(
                    "\(bytes.count) bytes are not whole CIFAR-\(hundred ? 100 : 10) records of \(recordBytes) bytes"))
            }
            for record in 0..<bytes.count / recordBytes {
                let base = record * recordBytes
                let label = Int(hundred && !coarse ? bytes[base + 1] : bytes[base])
                if label >= classCount { throw DataError(path: path, kind: .labelOutOfRange(sample: record, label: label, classes: classCount)) }
                try writer.append(label: label, pixels: bytes[base + labelBytes..<base + recordBytes])
            }
        }
        return try writer.finish()
    }

    /// A folder of binary PGM (P5, grey) or PPM (P6, RGB) images, maxval at most 255, all of one
    /// size, listed with their labels in a CSV of `file,label` lines (a header line is skipped;
    /// labels are integers, or class names numbered in sorted order).
    public static func images(directory: String, labelsCSV: String, output: String, options: Options) throws(DataError) -> PackHeader {
        let rows = try csvRows(labelsCSV)
        var entries: [(file: String, label: String)] = []
        for (line, row) in rows {
            if row.count != 2 { throw DataError(path: labelsCSV, kind: .invalidArgument("line \(line): expected file,label, got \(row.count) fields")) }
            entries.append((row[0], row[1]))
        }
        // A header line: its label is "label", or the only non-integer label among integers.
        if let first = entries.first, Int(first.label) == nil,
           first.label == "label" || (options.classNames.isEmpty && entries.dropFirst().allSatisfy({ Int($0.label) != nil })) {
            entries.removeFirst()
        }
        if entries.isEmpty { throw DataError(path: labelsCSV, kind: .invalidArgument("no images listed")) }
        var names = options.classNames
        let numeric = entries.allSatisfy { Int($0.label) != nil }
        if !numeric && names.isEmpty {
            names = Array(Set(entries.map { $0.label })).sorted()
        }
        var labels: [Int] = []
        for (position, entry) in entries.enumerated() {
            if let value = Int(entry.label), value >= 0 {
                labels.append(value)
            } else if let index = names.firstIndex(of: entry.label) {
                labels.append(index)
            } else {
                throw DataError(path: labelsCSV, kind: .invalidArgument("entry \(position + 1): label '\(entry.label)' is not a class"))
            }
        }
        var optionsWithNames = options
        optionsWithNames.classNames = names
        let classNames = try classNames(optionsWithNames, largestLabel: labels.max() ?? 0, path: labelsCSV)
        var writer: PackWriter? = nil
        var shape = (channels: 0, height: 0, width: 0)
        for (position, entry) in entries.enumerated() {
            let path = directory.hasSuffix("/") ? directory + entry.file : directory + "/" + entry.file
            let image = try NetPBM.read(path)
            if writer == nil {
                shape = (image.channels, image.height, image.width)
                writer = try PackWriter(path: output, channels: image.channels, height: image.height, width: image.width,
                                        elementType: .uint8, classNames: classNames, blockBytes: options.blockBytes, level: options.level)
            } else if shape != (image.channels, image.height, image.width) {
                throw DataError(path: path, kind: .dimensionMismatch(
                    "\(image.channels)x\(image.height)x\(image.width), the first image is \(shape.channels)x\(shape.height)x\(shape.width)"))
            }
            try writer!.append(label: labels[position], pixels: image.pixels[...])
        }
        return try writer!.finish()
    }

    /// CSV lines `label,v1,...,vn` (a header line is skipped). uint8 values must be integers
    /// 0...255; float16/float32 values are any numbers.
    public static func csv(_ path: String, output: String, options: Options) throws(DataError) -> PackHeader {
        var rows = try csvRows(path)
        if let first = rows.first, Int(first.fields[0]) == nil { rows.removeFirst() }
        guard let first = rows.first else { throw DataError(path: path, kind: .invalidArgument("no samples")) }
        let valueCount = first.fields.count - 1
        if valueCount < 1 { throw DataError(path: path, kind: .invalidArgument("line \(first.line): no values after the label")) }
        var shape = options.shape ?? (1, valueCount, 1)
        if options.shape == nil {
            var side = 1
            while side * side < valueCount { side += 1 }
            if side * side == valueCount { shape = (1, side, side) }
        }
        if shape.channels * shape.height * shape.width != valueCount {
            throw DataError(path: path, kind: .dimensionMismatch("\(valueCount) values per line, shape \(shape.channels)x\(shape.height)x\(shape.width)"))
        }
        var labels: [Int] = []
        for row in rows {
            guard let label = Int(row.fields[0]), label >= 0 else {
                throw DataError(path: path, kind: .invalidArgument("line \(row.line): label '\(row.fields[0])' is not a non-negative integer"))
            }
            labels.append(label)
        }
        let names = try classNames(options, largestLabel: labels.max() ?? 0, path: path)
        let writer = try PackWriter(path: output, channels: shape.channels, height: shape.height, width: shape.width,
                                    elementType: options.elementType, classNames: names, blockBytes: options.blockBytes, level: options.level)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(valueCount * options.elementType.bytes)
        for (position, row) in rows.enumerated() {
            if row.fields.count != valueCount + 1 {
                throw DataError(path: path, kind: .dimensionMismatch("line \(row.line): \(row.fields.count - 1) values, the first line has \(valueCount)"))
            }
            bytes.removeAll(keepingCapacity: true)
            for field in row.fields.dropFirst() {
                switch options.elementType {
                case .uint8:
                    guard let value = Int(field), value >= 0, value <= 255 else {
                        throw DataError(path: path, kind: .invalidArgument("line \(row.line): '\(field)' is not an integer 0...255 (use --element float32)"))
                    }
                    bytes.append(UInt8(value))
                case .float16, .float32:
                    guard let value = Float(field), value.isFinite else {
                        throw DataError(path: path, kind: .invalidArgument("line \(row.line): '\(field)' is not a finite number"))
                    }
                    if options.elementType == .float16 {
                        ByteWriter.append16(&bytes, HalfFloat.bits(value))
                    } else {
                        ByteWriter.append32(&bytes, value.bitPattern)
                    }
                }
            }
            try writer.append(label: labels[position], pixels: bytes[...])
        }
        return try writer.finish()
    }

    /// Non-empty lines of a CSV file split at commas (fields trimmed of spaces and quotes),
    /// with 1-based line numbers.
    static func csvRows(_ path: String) throws(DataError) -> [(line: Int, fields: [String])] {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readAll(path, limit: PackImport.maximumCSVBytes) } catch { throw DataError(error) }
        var rows: [(line: Int, fields: [String])] = []
        var line = 0
        for raw in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            line += 1
            var text = raw
            if text.last == UInt8(ascii: "\r") { text = text.dropLast() }
            if text.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            let fields = text.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { field -> String in
                var trimmed = field[...]
                while let first = trimmed.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\"") { trimmed = trimmed.dropFirst() }
                while let last = trimmed.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\"") { trimmed = trimmed.dropLast() }
                return String(decoding: trimmed, as: UTF8.self)
            }
            rows.append((line, fields))
        }
        return rows
    }
}

/// Binary PGM (P5) and PPM (P6) images with maxval at most 255.
public enum NetPBM {
    public struct Image {
        public let channels: Int
        public let height: Int
        public let width: Int
        /// [C, H, W] (PPM's interleaved RGB is split into planes).
        public let pixels: [UInt8]
    }

    public static func read(_ path: String) throws(DataError) -> Image {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readAll(path, limit: PackImport.maximumImageFileBytes) } catch { throw DataError(error) }
        func fail(_ detail: String) -> DataError { DataError(path: path, kind: .invalidArgument("not a binary PGM/PPM image: " + detail)) }
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "5") || bytes[1] == UInt8(ascii: "6") else {
            throw fail("the file does not start with P5 or P6")
        }
        let channels = bytes[1] == UInt8(ascii: "5") ? 1 : 3
        var position = 2
        var numbers: [Int] = []
        while numbers.count < 3 {
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "#") {
                    while position < bytes.count && bytes[position] != UInt8(ascii: "\n") { position += 1 }
                } else if byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d {
                    position += 1
                } else { break }
            }
            var value = 0, digits = 0
            while position < bytes.count, bytes[position] >= 0x30, bytes[position] <= 0x39, digits < 9 {
                value = value * 10 + Int(bytes[position] - 0x30)
                position += 1
                digits += 1
            }
            if digits == 0 { throw fail("a header number is missing") }
            numbers.append(value)
        }
        position += 1  // the single whitespace byte before the raster
        let width = numbers[0], height = numbers[1], maxval = numbers[2]
        if width < 1 || height < 1 || width > Pack.maximumSide || height > Pack.maximumSide { throw fail("absurd size \(width)x\(height)") }
        if maxval < 1 || maxval > 255 { throw fail("maxval \(maxval) (only 8-bit images)") }
        let plane = width * height
        if bytes.count - position < plane * channels {
            throw DataError(path: path, kind: .truncated(expectedBytes: position + plane * channels, gotBytes: bytes.count))
        }
        var pixels = [UInt8](repeating: 0, count: plane * channels)
        for pixel in 0..<plane {
            for channel in 0..<channels {
                let value = Int(bytes[position + pixel * channels + channel])
                pixels[channel * plane + pixel] = UInt8(maxval == 255 ? value : min(255, value * 255 / maxval))
            }
        }
        return Image(channels: channels, height: height, width: width, pixels: pixels)
    }
}
