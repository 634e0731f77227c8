import Data
import NN
import Platform
import Train

/// `leitner predict`: the top classes of images or pack records from a checkpoint.
enum PredictCommand {
    static let spec = CommandSpec(
        name: "predict",
        summary: """
        Classifies images with a checkpoint written by 'leitner train' or 'leitner finetune'.
        INPUT is an image file (JPEG, PNG, PGM, PPM), a directory (every image file below it,
        sorted, recursively) or a .pack (its records as stored). Images are prepared as
        'pack images --size S' prepares them (S from the checkpoint's data.shape) and
        normalised with the run's statistics; the top K classes and their probabilities are
        printed per input, or written to a .csv (input,rank,class,name,probability) or
        .jsonl file.
        """,
        positionals: "CHECKPOINT INPUT...",
        options: [top.spec, out.spec, logitsFlag.spec, batch.spec, threads.spec, skipBad.spec])

    static let top = Option<Int>("top", "K", default: 3, range: 1...256, help: "classes shown per input")
    static let out = Option<String?>("out", "FILE", help: "write FILE.csv or FILE.jsonl (atomically) instead of printing")
    static let logitsFlag = Flag("logits", help: "with --out FILE.jsonl: also write each input's raw head outputs as \"logits\" (tools/export-onnx --check compares them)")
    static let batch = Option<Int>("batch", "N", default: 64, range: 1...65_536, help: "samples per forward pass")
    static let threads = Option<Int>("threads", "N", default: 2, range: 1...256, help: "threads")
    static let skipBad = Flag("skip-bad", help: "skip image files that cannot be decoded, list them at the end")

    /// One input argument, expanded: image files (decoded together) or one pack.
    enum Source {
        case images([String])
        case pack(String)
    }

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.count >= 2 else {
            throw UsageError(message: "leitner predict: give a checkpoint and at least one image, directory or .pack (see leitner predict --help)")
        }
        let checkpoint = options.positionals[0]
        let inputs = options.positionals.dropFirst()
        let topK = try options.value(top)
        let outPath = try options.value(out)
        let skipping = options.isSet(skipBad)
        let writingLogits = options.isSet(logitsFlag)
        var format = "text"
        if let outPath {
            if outPath.lowercased().hasSuffix(".csv") { format = "csv" }
            else if outPath.lowercased().hasSuffix(".jsonl") { format = "jsonl" }
            else { throw UsageError(message: "leitner predict: --out \(outPath): the file name must end in .csv or .jsonl") }
        }
        if writingLogits && format != "jsonl" {
            throw UsageError(message: "leitner predict: --logits writes into a JSONL file: give --out FILE.jsonl")
        }
        var sources: [Source] = []
        for input in inputs {
            if input.lowercased().hasSuffix(".pack") && !FileSystem.isDirectory(input) {
                sources.append(.pack(input))
            } else if FileSystem.isDirectory(input) {
                do throws(DataError) {
                    let files = try PackImport.imageFiles(under: input)
                    guard !files.isEmpty else {
                        Console.error("leitner predict: \(input): no image files (" + PackImport.imageExtensions.joined(separator: ", ") + ")")
                        return 1
                    }
                    sources.append(.images(files))
                } catch {
                    Console.error("leitner predict: " + error.description)
                    return 1
                }
            } else {
                sources.append(.images([input]))
            }
        }
        let hasImages = sources.contains { if case .images = $0 { return true } else { return false } }
        if skipping && !hasImages {
            throw UsageError(message: "leitner predict: --skip-bad skips image files, and every input is a .pack: leave it out")
        }
        let batchSize = try options.value(batch)
        let threadCount = try options.value(threads)
        let predictor: Predictor
        do throws(TrainError) {
            predictor = try Predictor(checkpoint: checkpoint, batch: batchSize, threads: threadCount)
        } catch {
            Console.error("leitner predict: " + error.message)
            return 1
        }
        let facts = predictor.facts
        // The default shows at most every class; a K given beyond them is refused.
        if options.isGiven(top) && topK > predictor.classCount {
            throw UsageError(message: "leitner predict: --top \(topK) but the checkpoint knows \(predictor.classCount) classes: give --top \(predictor.classCount) or less")
        }
        if hasImages && facts.height != facts.width {
            Console.error("leitner predict: the checkpoint's data.shape is \(facts.channels)x\(facts.height)x\(facts.width); images are resized to a square side, so only .pack inputs of that shape can be used")
            return 1
        }
        let started = Clock.seconds()
        let jpeg = JPEGDecoder()
        var names: [String] = []
        var probabilities: [Double] = []
        var logits: [Float] = []
        var skipped: [(file: String, reason: String)] = []
        do throws(TrainError) {
            for source in sources {
                let data: Dataset
                switch source {
                case .images(let files):
                    var pixels: [UInt8] = []
                    var kept: [String] = []
                    for file in files {
                        do throws(DataError) {
                            pixels += try PackImport.imageRecord(file, side: facts.height, channels: facts.channels, jpeg: jpeg)
                            kept.append(file)
                        } catch {
                            guard skipping else { throw TrainError(error.description + " (--skip-bad skips files that cannot be decoded)") }
                            skipped.append((file, error.description))
                        }
                    }
                    if kept.isEmpty { continue }
                    do throws(DataError) {
                        data = try Dataset(name: files[0], pixels: pixels, labels: [UInt8](repeating: 0, count: kept.count),
                                           channels: facts.channels, height: facts.height, width: facts.width, classCount: 1,
                                           normalization: facts.normalization)
                    } catch { throw TrainError(error) }
                    names += kept
                case .pack(let path):
                    do throws(DataError) { data = try PackFile.open(path).loadDataset(normalization: facts.normalization) }
                    catch { throw TrainError(error) }
                    for index in 0..<data.count { names.append("\(path)#\(index)") }
                }
                let result = try predictor.outputs(data, keepingLogits: writingLogits)
                probabilities += result.probabilities
                logits += result.logits
            }
        } catch {
            Console.error("leitner predict: " + error.message)
            return 1
        }
        let seconds = Clock.seconds() - started
        let classes = predictor.classCount
        func label(_ index: Int) -> String {
            index < facts.classNames.count && !facts.classNames[index].isEmpty ? facts.classNames[index] : "\(index)"
        }
        var text = format == "csv" ? "input,rank,class,name,probability\n" : ""
        for (sample, name) in names.enumerated() {
            let row = Array(probabilities[sample * classes..<(sample + 1) * classes])
            // Highest first; ties by class index.
            let ranked = (0..<classes).sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }.prefix(min(topK, classes))
            switch format {
            case "csv":
                for (rank, index) in ranked.enumerated() {
                    text += csvField(name) + ",\(rank + 1),\(index)," + csvField(index < facts.classNames.count ? facts.classNames[index] : "") + ",\(row[index])\n"
                }
            case "jsonl":
                var line: [UInt8] = Array("{\"input\":".utf8)
                JSON.writeString(name, to: &line)
                line += Array(",\"top\":[".utf8)
                for (rank, index) in ranked.enumerated() {
                    line += Array("\(rank > 0 ? "," : ""){\"class\":\(index),\"name\":".utf8)
                    JSON.writeString(index < facts.classNames.count ? facts.classNames[index] : "", to: &line)
                    line += Array(",\"probability\":\(row[index])}".utf8)
                }
                line += Array("]".utf8)
                if writingLogits {
                    let outputs = predictor.model.classes
                    line += Array(",\"logits\":[".utf8)
                    for index in 0..<outputs {
                        // Swift's shortest form that parses back to the same Float; a non-finite
                        // output is written as null (JSON has no NaN).
                        let value = logits[sample * outputs + index]
                        line += Array(((index > 0 ? "," : "") + (value.isFinite ? "\(value)" : "null")).utf8)
                    }
                    line += Array("]".utf8)
                }
                line += Array("}\n".utf8)
                text += String(decoding: line, as: UTF8.self)
            default:
                var line = name + ":"
                for (rank, index) in ranked.enumerated() { line += (rank > 0 ? ", " : " ") + label(index) + " " + Format.fixed(row[index], 4) }
                print(line)
            }
        }
        if let outPath {
            do throws(SystemError) { try FileSystem.replace(outPath, with: text) } catch {
                Console.error("leitner predict: --out: " + error.description)
                return 1
            }
            print("wrote \(outPath) (\(names.count) inputs, top \(min(topK, classes)))")
        }
        if !skipped.isEmpty {
            print("skipped \(skipped.count) files that could not be read (--skip-bad):")
            for entry in skipped { print("  " + entry.reason) }
        }
        print("predict: \(names.count) inputs in \(Format.fixed(seconds, 2)) s (\(Format.fixed(Double(names.count) / max(seconds, 1e-9), 1)) samples/s)")
        return 0
    }

    /// A CSV field, quoted when it holds a comma, quote or line break.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        var quoted = "\""
        for character in text { quoted += character == "\"" ? "\"\"" : String(character) }
        return quoted + "\""
    }
}
