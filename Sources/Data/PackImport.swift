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
        /// Images only: resize the shorter side to this and keep the centre square (RGB records).
        public var imageSide: Int? = nil
        /// Images only: RGB records even when every image is grey.
        public var forceRGB = false
        /// Images only: skip (and list) files that cannot be decoded instead of stopping.
        public var skipBadImages = false
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

    /// What `images` did: the pack's header, where the labels came from, and the files it
    /// skipped (with --skip-bad) or ignored (other extensions in class folders).
    public struct ImagesReport {
        public let header: PackHeader
        /// "class folders" or the labels CSV's path.
        public let layout: String
        public let skipped: [(file: String, reason: String)]
        public let ignoredFiles: Int
    }

    /// File name endings the class-folder layout takes (case-insensitive); others are ignored.
    public static let imageExtensions = ["jpg", "jpeg", "jpe", "png", "pgm", "ppm", "pnm"]

    /// Images as pack records, from one of two layouts: class folders (DIR/<class>/<image>,
    /// torchvision's ImageFolder: classes are the sorted folder names, label = index, files in
    /// name order, subfolders after files, to depth 8) or, when `labelsCSV` is given, a CSV of
    /// `file,label` lines with files relative to DIR (a header line is skipped; labels are
    /// integers, or class names numbered in sorted order). JPEG, PNG, binary PGM/PPM, told
    /// apart by content. Records are [C, H, W] uint8: RGB (grey replicated), or grey when every
    /// image is grey and neither `imageSide` nor `forceRGB` is set. Without `imageSide` all
    /// images must have one size (after EXIF rotation).
    public static func images(directory: String, labelsCSV: String?, output: String, options: Options) throws(DataError) -> ImagesReport {
        var entries: [(path: String, label: Int)]
        let names: [String]
        var ignored = 0
        let layout: String
        if let labelsCSV {
            (entries, names) = try csvImageList(directory: directory, labelsCSV: labelsCSV, options: options)
            layout = labelsCSV
        } else {
            if !options.classNames.isEmpty || options.classCount != nil {
                throw DataError(path: directory, kind: .invalidArgument("class folders name the classes: --class-names and --classes apply to a labels CSV"))
            }
            let folders = try imageFolders(directory)
            (entries, names, ignored) = (folders.entries, folders.classNames, folders.ignored)
            layout = "class folders"
        }
        let jpeg = JPEGDecoder()
        var skipped: [(file: String, reason: String)] = []
        // The record shape: fixed by --size, else by a header pass over every file (so a size
        // mismatch is found before anything is written, and grey-only sets stay grey).
        var channels = 3, height = options.imageSide ?? 0, width = options.imageSide ?? 0
        if options.imageSide == nil {
            var allGrey = true
            var first: (path: String, width: Int, height: Int)? = nil
            var kept: [(path: String, label: Int)] = []
            for entry in entries {
                let probe: ImageFile.Probe
                do throws(DataError) { probe = try ImageFile.probe(try ImageFile.read(entry.path), path: entry.path, jpeg: jpeg) } catch {
                    if !options.skipBadImages { throw error }
                    skipped.append((entry.path, reason(error)))
                    continue
                }
                if let first, first.width != probe.width || first.height != probe.height {
                    throw DataError(path: entry.path, kind: .dimensionMismatch(
                        "\(probe.width)x\(probe.height) pixels, but \(first.path) is \(first.width)x\(first.height) (give --size S to resize every image to SxS)"))
                }
                if first == nil { first = (entry.path, probe.width, probe.height) }
                allGrey = allGrey && probe.grey
                kept.append(entry)
            }
            guard let first else { throw noImages(directory, skipped: skipped.count) }
            entries = kept
            (width, height) = (first.width, first.height)
            channels = allGrey && !options.forceRGB ? 1 : 3
        }
        let writer = try PackWriter(path: output, channels: channels, height: height, width: width, elementType: .uint8,
                                    classNames: names, blockBytes: options.blockBytes, level: options.level)
        var written = 0
        for entry in entries {
            var image: DecodedImage
            do throws(DataError) { image = try ImageFile.decode(try ImageFile.read(entry.path), path: entry.path, jpeg: jpeg) } catch {
                if !options.skipBadImages { throw error }
                skipped.append((entry.path, reason(error)))
                continue
            }
            if let side = options.imageSide { image = ImageResize.resizeAndCrop(image, side: side) }
            if image.width != width || image.height != height {
                throw DataError(path: entry.path, kind: .dimensionMismatch("decoded \(image.width)x\(image.height), its header said \(width)x\(height)"))
            }
            try writer.append(label: entry.label, pixels: image.withChannels(channels).planes()[...])
            written += 1
        }
        if written == 0 { throw noImages(directory, skipped: skipped.count) }
        return ImagesReport(header: try writer.finish(), layout: layout, skipped: skipped, ignoredFiles: ignored)
    }

    /// The image at `path` as `images --size side` makes its record: decoded (EXIF
    /// orientation applied), the shorter side resized to `side` with the antialiased filter and
    /// the centre square kept, converted to `channels` (1 grey, 3 RGB); [C, side, side] uint8.
    public static func imageRecord(_ path: String, side: Int, channels: Int, jpeg: JPEGDecoder) throws(DataError) -> [UInt8] {
        let image = try ImageFile.decode(try ImageFile.read(path), path: path, jpeg: jpeg)
        return ImageResize.resizeAndCrop(image, side: side).withChannels(channels).planes()
    }

    /// Every image file below `directory` (by extension, hidden files skipped), each folder's
    /// files in name order before its subfolders', as the class-folder layout reads a class.
    public static func imageFiles(under directory: String) throws(DataError) -> [String] {
        let base = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        if let problem = FileSystem.statError(base) { throw DataError(path: directory, kind: .system(problem)) }
        if !FileSystem.isDirectory(base) { throw DataError(path: directory, kind: .missing("not a directory")) }
        var entries: [(path: String, label: Int)] = []
        var ignored = 0
        try collectImages(base, label: 0, depth: 0, into: &entries, ignored: &ignored)
        return entries.map { $0.path }
    }

    /// An error's text without the path it starts with (the listing names the file already).
    static func reason(_ error: DataError) -> String {
        let text = error.description
        return text.hasPrefix(error.path + ": ") ? String(text.dropFirst(error.path.count + 2)) : text
    }

    static func noImages(_ directory: String, skipped: Int) -> DataError {
        DataError(path: directory, kind: .invalidArgument(skipped > 0 ? "none of the images could be read (\(skipped) skipped)" : "no images"))
    }

    /// The class-folder layout: sorted subfolder names are the classes; each one's image files
    /// (by extension, hidden files skipped) in name order, then its subfolders' likewise.
    public static func imageFolders(_ directory: String) throws(DataError) -> (classNames: [String], entries: [(path: String, label: Int)], ignored: Int) {
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        if let problem = FileSystem.statError(base) { throw DataError(path: directory, kind: .system(problem)) }   // ENOENT, ELOOP, EACCES
        if !FileSystem.isDirectory(base) { throw DataError(path: directory, kind: .missing("not a directory")) }
        let names: [String]
        do { names = try FileSystem.list(base).filter { !$0.hasPrefix(".") && FileSystem.isDirectory(base + "/" + $0) }.sorted() } catch { throw DataError(error) }
        if names.isEmpty {
            throw DataError(path: directory, kind: .missing("no class folders (DIR/<class>/<image>) and no labels.csv (--labels CSV)"))
        }
        if names.count > Pack.maximumClasses {
            throw DataError(path: directory, kind: .invalidArgument("\(names.count) class folders, more than \(Pack.maximumClasses) classes"))
        }
        var entries: [(path: String, label: Int)] = []
        var ignored = 0
        for (label, name) in names.enumerated() {
            let before = entries.count
            try collectImages(base + "/" + name, label: label, depth: 0, into: &entries, ignored: &ignored)
            if entries.count == before {
                throw DataError(path: base + "/" + name, kind: .missing("no image files in class folder '\(name)' (" + imageExtensions.joined(separator: ", ") + ")"))
            }
        }
        return (names, entries, ignored)
    }

    static func collectImages(_ folder: String, label: Int, depth: Int, into entries: inout [(path: String, label: Int)], ignored: inout Int) throws(DataError) {
        let names: [String]
        do { names = try FileSystem.list(folder).filter { !$0.hasPrefix(".") }.sorted() } catch { throw DataError(error) }
        var folders: [String] = []
        for name in names {
            let path = folder + "/" + name
            if FileSystem.isDirectory(path) { folders.append(path); continue }
            let ending = name.split(separator: ".").last.map { $0.lowercased() } ?? ""
            if name.contains(".") && imageExtensions.contains(ending) { entries.append((path, label)) } else { ignored += 1 }
        }
        if depth < 8 {
            for path in folders { try collectImages(path, label: label, depth: depth + 1, into: &entries, ignored: &ignored) }
        }
    }

    /// The CSV layout: `file,label` lines, files relative to `directory`.
    static func csvImageList(directory: String, labelsCSV: String, options: Options) throws(DataError) -> (entries: [(path: String, label: Int)], classNames: [String]) {
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
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        var list: [(path: String, label: Int)] = []
        for (position, entry) in entries.enumerated() { list.append((base + entry.file, labels[position])) }
        return (list, classNames)
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
