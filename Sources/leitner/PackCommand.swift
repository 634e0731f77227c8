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
          leitner pack images DIR [--labels CSV] --out FILE   PGM/PPM files listed in CSV (file,label)
          leitner pack csv FILE --out FILE               CSV lines: label, values...
          leitner pack info FILE                         header, blocks, sizes
          leitner pack verify FILE                       reads every block and checks its CRC-32
        """,
        positionals: "KIND INPUT...",
        options: [
            OptionSpec("out", value: "FILE", help: "the pack to write"),
            OptionSpec("block-kb", value: "KB", help: "uncompressed bytes per block, in KiB", default: "64"),
            OptionSpec("level", value: "N", help: "gzip level 1...9", default: "6"),
            OptionSpec("class-names", value: "A,B,...", help: "class names (fashion-mnist: its ten names)", default: "none"),
            OptionSpec("classes", value: "N", help: "class count", default: "largest label + 1"),
            OptionSpec("labels", value: "CSV", help: "images: the file,label list", default: "DIR/labels.csv"),
            OptionSpec("coarse", help: "cifar100: pack the 20 coarse labels"),
            OptionSpec("element", value: "TYPE", help: "csv: uint8 | float16 | float32", default: "uint8"),
            OptionSpec("shape", value: "CxHxW", help: "csv: sample shape", default: "1xSxS when n = S*S, else 1xnx1"),
        ])

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard let kind = options.positionals.first else {
            throw UsageError(message: "leitner pack: name a kind: idx, cifar10, cifar100, images, csv, info or verify (see leitner pack --help)")
        }
        let inputs = Array(options.positionals.dropFirst())
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
                guard let output = options.values["out"] else { return usage("leitner pack \(kind): --out FILE is required") }
                let packOptions: PackImport.Options
                do throws(UsageError) { packOptions = try parseOptions(options) } catch { return usage(error.message) }
                let started = Clock.seconds()
                var inputBytes = 0
                let header: PackHeader
                switch kind {
                case "idx":
                    guard inputs.count == 2 else { return usage("leitner pack idx: give IMAGES and LABELS") }
                    header = try PackImport.idx(images: inputs[0], labels: inputs[1], output: output, options: packOptions)
                case "cifar10", "cifar100":
                    guard !inputs.isEmpty else { return usage("leitner pack \(kind): give one or more batch files") }
                    header = try PackImport.cifar(batches: inputs, hundred: kind == "cifar100", coarse: options.flag("coarse"),
                                                  output: output, options: packOptions)
                case "images":
                    guard inputs.count == 1 else { return usage("leitner pack images: give one directory") }
                    let labels = options.values["labels"] ?? inputs[0] + "/labels.csv"
                    header = try PackImport.images(directory: inputs[0], labelsCSV: labels, output: output, options: packOptions)
                    inputBytes = -1
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

    static func usage(_ message: String) -> Int32 {
        Console.error(message)
        return 2
    }

    static func parseOptions(_ options: ParsedOptions) throws(UsageError) -> PackImport.Options {
        var result = PackImport.Options()
        result.blockBytes = try options.int("block-kb", default: 64, range: 1...16 * 1024) << 10
        result.level = try options.int("level", default: 6, range: 1...9)
        if let names = options.values["class-names"] {
            result.classNames = names == "fashion-mnist" ? FashionMNIST.classNames : names.split(separator: ",").map { String($0) }
        }
        if options.values["classes"] != nil { result.classCount = try options.int("classes", default: 0, range: 1...65536) }
        let element = options.string("element", default: "uint8")
        guard let type = Pack.ElementType.named(element) else {
            throw UsageError(message: "leitner pack: --element must be uint8, float16 or float32, got '\(element)'")
        }
        result.elementType = type
        if let text = options.values["shape"] {
            let parts = text.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 3, parts.allSatisfy({ $0 >= 1 }) else {
                throw UsageError(message: "leitner pack: --shape must be CxHxW, e.g. 1x28x28, got '\(text)'")
            }
            result.shape = (parts[0], parts[1], parts[2])
        }
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
