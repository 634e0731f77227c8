import Data
import Platform
import Train

/// `leitner pack`: converts datasets to packs, describes and verifies packs.
enum PackCommand {
    static let spec = CommandSpec(
        name: "pack",
        summary: """
        Converts a dataset to a pack (docs/pack-format.md): independently gzipped blocks of
        records, an index and a header; `zcat FILE` prints the raw records.
          leitner pack idx IMAGES LABELS --out FILE      IDX pair, gzipped or plain (MNIST family)
          leitner pack cifar10 BATCH... --out FILE       CIFAR-10 binary batches
          leitner pack cifar100 BATCH... --out FILE      CIFAR-100 binary batches (fine labels; --coarse)
          leitner pack images DIR --out FILE             JPEG/PNG/PGM/PPM in class folders DIR/<class>/*
                                                         (or listed in --labels CSV / DIR/labels.csv)
          leitner pack csv FILE --out FILE               CSV lines: label, values...
          leitner pack info FILE                         header, blocks, sizes
          leitner pack verify FILE                       reads every block and checks its CRC-32
        """,
        positionals: "KIND INPUT...",
        options: [out.spec, blockKB.spec, level.spec, classNames.spec, classes.spec, labels.spec, size.spec, rgb.spec, skipBad.spec,
                  coarse.spec, element.spec, shape.spec])

    static let standard = PackImport.Options()
    static let out = Option<String?>("out", "FILE", help: "the pack to write")
    static let blockKB = Option<Int>("block-kb", "KB", default: standard.blockBytes >> 10, range: 1...16 * 1024,
                                     help: "uncompressed bytes per block, in KiB")
    static let level = Option<Int>("level", "N", default: standard.level, range: 1...9, help: "gzip level 1...9")
    static let classNames = Option<String?>("class-names", "A,B,...", shown: "none", help: "class names (fashion-mnist: its ten names)")
    static let classes = Option<Int?>("classes", "N", range: 1...65536, shown: "largest label + 1", help: "class count")
    static let labels = Option<String?>("labels", "CSV", shown: "DIR/labels.csv if present, else class folders",
                                        help: "images: a file,label list (files relative to DIR)")
    static let size = Option<Int?>("size", "S", range: 1...4096, shown: "none: all images one size",
                                   help: "images: shorter side resized to S (antialiased), centre S x S kept; RGB")
    static let rgb = Flag("rgb", help: "images: RGB records even when every image is grey")
    static let skipBad = Flag("skip-bad", help: "images: skip files that cannot be decoded, list them at the end")
    static let coarse = Flag("coarse", help: "cifar100: pack the 20 coarse labels")
    static let element = Choice<Pack.ElementType>(
        "element", "TYPE", names: ["uint8", "float16", "float32"], values: [Pack.ElementType.uint8, .float16, .float32],
        default: standard.elementType, help: "csv: uint8 | float16 | float32")
    static let shape = Parsed<[Int]?>(
        "shape", "CxHxW", default: nil, shown: "1xSxS when n = S*S, else 1xnx1", help: "csv: sample shape",
        expected: "CxHxW, e.g. 1x28x28") { text in
        let parts = text.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ $0 >= 1 }) else { return nil }
        return .some(parts)
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard let kind = options.positionals.first else {
            throw UsageError(message: "leitner pack: name a kind: idx, cifar10, cifar100, images, csv, info or verify (see leitner pack --help)")
        }
        let inputs = Array(options.positionals.dropFirst())
        // Each kind reads only some options: one given to another kind would do nothing.
        let writer = [out.spec.name, blockKB.spec.name, level.spec.name, classNames.spec.name, classes.spec.name]
        let allowed: [String]
        switch kind {
        case "info", "verify": allowed = []
        case "idx", "cifar10": allowed = writer
        case "cifar100": allowed = writer + [coarse.spec.name]
        case "images": allowed = writer + [labels.spec.name, size.spec.name, rgb.spec.name, skipBad.spec.name]
        case "csv": allowed = writer + [element.spec.name, shape.spec.name]
        default: allowed = spec.options.map { $0.name }
        }
        for name in options.givenNames where !allowed.contains(name) {
            throw UsageError(message: "leitner pack \(kind): --\(name) does nothing here (it applies to " + kindsUsing(name) + ")")
        }
        if let output = try options.value(out) {
            var read = inputs
            if let labelsPath = try options.value(labels) { read.append(labelsPath) }
            for input in read where input == output || FileSystem.sameFile(input, output) {
                throw UsageError(message: "leitner pack \(kind): --out \(output) is an input; write the pack to another file")
            }
        }
        if kind == "info" || kind == "verify" { StopRequest.uninstall() }   // they write nothing: Ctrl-C ends them
        do throws(DataError) {
            switch kind {
            case "info":
                guard inputs.count == 1 else { return usage("leitner pack info: give one pack") }
                info(try PackFile.open(inputs[0]))
                return 0
            case "verify":
                guard inputs.count == 1 else { return usage("leitner pack verify: give one pack") }
                let pack = try PackFile.open(inputs[0])
                let started = Clock.seconds()
                try pack.verify()
                let seconds = Clock.seconds() - started
                print("\(pack.path): ok: \(pack.blocks.count) blocks, \(pack.header.sampleCount) samples, every CRC-32 and label checked in \(Format.fixed(seconds, 2)) s (\(Format.fixed(Double(pack.uncompressedBytes) / 1e6 / max(seconds, 1e-9), 0)) MB/s decompressed)")
                return 0
            case "idx", "cifar10", "cifar100", "images", "csv":
                let output: String?, labelsPath: String?, packOptions: PackImport.Options
                do throws(UsageError) {
                    output = try options.value(out)
                    labelsPath = try options.value(labels)
                    packOptions = try parseOptions(options)
                } catch { return usage(error.message) }
                guard let output else { return usage("leitner pack \(kind): --out FILE is required") }
                let started = Clock.seconds()
                var inputBytes = 0
                let header: PackHeader
                switch kind {
                case "idx":
                    guard inputs.count == 2 else { return usage("leitner pack idx: give IMAGES and LABELS") }
                    header = try PackImport.idx(images: inputs[0], labels: inputs[1], output: output, options: packOptions)
                case "cifar10", "cifar100":
                    guard !inputs.isEmpty else { return usage("leitner pack \(kind): give one or more batch files") }
                    header = try PackImport.cifar(batches: inputs, hundred: kind == "cifar100", coarse: options.isSet(coarse),
                                                  output: output, options: packOptions)
                case "images":
                    guard inputs.count == 1 else { return usage("leitner pack images: give one directory") }
                    let listed = inputs[0] + "/labels.csv"
                    let report = try PackImport.images(directory: inputs[0], labelsCSV: labelsPath ?? (FileSystem.exists(listed) ? listed : nil),
                                                       output: output, options: packOptions)
                    header = report.header
                    inputBytes = -1
                    var note = "labels from \(report.layout)"
                    if report.ignoredFiles > 0 { note += "; \(report.ignoredFiles) files without an image extension ignored" }
                    print(note)
                    if !report.skipped.isEmpty {
                        print("skipped \(report.skipped.count) files that could not be read (--skip-bad):")
                        for entry in report.skipped { print("  \(entry.file): \(entry.reason)") }
                    }
                default:
                    guard inputs.count == 1 else { return usage("leitner pack csv: give one CSV file") }
                    header = try PackImport.csv(inputs[0], output: output, options: packOptions)
                }
                if inputBytes == 0 {
                    for input in inputs { inputBytes += Int((try? FileSystem.size(of: input)) ?? 0) }
                }
                let pack = try PackFile.open(output)
                let raw = pack.uncompressedBytes
                var line = "\(output): \(header.sampleCount) samples \(header.channels)x\(header.height)x\(header.width) \(header.elementType.name), \(header.classCount) classes, \(pack.blocks.count) blocks; "
                line += "records \(raw) bytes -> pack \(pack.fileBytes) bytes (ratio \(Format.fixed(Double(raw) / Double(pack.fileBytes), 2)):1)"
                if inputBytes > 0 { line += "; input files \(inputBytes) bytes" }
                line += "; \(Format.fixed(Clock.seconds() - started, 2)) s"
                print(line)
                return 0
            default:
                return usage("leitner pack: unknown kind '\(kind)' (idx, cifar10, cifar100, images, csv, info, verify)")
            }
        } catch {
            Console.error("leitner pack: " + error.description)
            return 1
        }
    }

    /// The kinds an option applies to, for a message.
    static func kindsUsing(_ name: String) -> String {
        switch name {
        case coarse.spec.name: return "cifar100"
        case labels.spec.name, size.spec.name, rgb.spec.name, skipBad.spec.name: return "images"
        case element.spec.name, shape.spec.name: return "csv"
        default: return "idx, cifar10, cifar100, images and csv"
        }
    }

    static func usage(_ message: String) -> Int32 {
        Console.error(message)
        return 2
    }

    static func parseOptions(_ options: ParsedOptions) throws(UsageError) -> PackImport.Options {
        var result = PackImport.Options()
        result.blockBytes = try options.value(blockKB) << 10
        result.level = try options.value(level)
        if let names = try options.value(classNames) {
            result.classNames = names == "fashion-mnist" ? FashionMNIST.classNames : names.split(separator: ",").map { String($0) }
        }
        if let count = try options.value(classes) { result.classCount = count }
        result.elementType = try options.value(element)
        if let parts = try options.value(shape) { result.shape = (parts[0], parts[1], parts[2]) }
        result.imageSide = try options.value(size)
        result.forceRGB = options.isSet(rgb)
        result.skipBadImages = options.isSet(skipBad)
        return result
    }

    static func info(_ pack: PackFile) {
        let header = pack.header
        print("\(pack.path): Leitner pack version \(Pack.version)")
        print("  samples \(header.sampleCount), shape \(header.channels)x\(header.height)x\(header.width) \(header.elementType.name), labels \(header.labelType.name), \(header.classCount) classes")
        if !header.classNames.allSatisfy({ $0.isEmpty }) { print("  class names: " + header.classNames.joined(separator: ", ")) }
        print("  mean " + header.mean.map { Format.fixed(Double($0), 4) }.joined(separator: ",") + ", std " + header.std.map { Format.fixed(Double($0), 4) }.joined(separator: ","))
        print("  records \(header.recordBytes) bytes; \(pack.blocks.count) blocks of ~\(header.targetBlockBytes >> 10) KiB (largest \(pack.largestBlock) bytes, \(pack.largestCompressedBlock) compressed)")
        print("  file \(pack.fileBytes) bytes: header \(pack.headerMemberBytes), blocks \(header.indexOffset - pack.headerMemberBytes), index \(header.indexBytes)")
        print("  decompressed \(pack.uncompressedBytes) bytes, ratio \(Format.fixed(Double(pack.uncompressedBytes) / Double(pack.fileBytes), 2)):1")
    }
}
