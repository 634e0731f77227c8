import Foundation
import Testing
import TestSupport

/// `leitner predict` on the built binary: a tiny conv model trained on photos of two colours
/// (JPEG and PNG, made with the photo tests' encoders, packed with `pack images --size 16`),
/// then asked about the same files, their folder and their pack.
@Suite(.serialized, .enabled(if: Requirement.runs(Requirement.hasBinary), Requirement.binaryReason))
struct PredictCLITests {
    func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let binary = try #require(Requirement.binary)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static let model = """
        input 3x16x16
        classes 2
        conv 4 k3 p1
        relu
        maxpool 2
        flatten
        linear 2
        """

    /// Class folders blue/ and red/ of 10 images each (24x20, textured), alternately
    /// JPEG and PNG; a model trained 3 epochs on their pack. Returns (tree, packs, checkpoint).
    func trainedOnColours(_ fixtures: PhotoFixtures) throws -> (tree: String, pack: String, checkpoint: String) {
        for (name, colour) in [("blue", [30, 40, 210]), ("red", [215, 35, 30])] {
            for index in 0..<10 {
                // A colour with a diagonal texture, so that the resize and crop show in the
                // numbers (pack and files must agree on them, not only on the colour).
                var pixels: [UInt8] = []
                for y in 0..<20 {
                    for x in 0..<24 {
                        let texture = (x * 7 + y * 13 + index * 5) % 41 - 20
                        pixels += colour.map { UInt8(max(0, min(255, $0 + texture))) }
                    }
                }
                let file = index % 2 == 0
                    ? PhotoFixtures.jpeg(width: 24, height: 20, channels: 3, pixels: pixels)
                    : PhotoFixtures.png(width: 24, height: 20, channels: 3, pixels: pixels)
                fixtures.write("tree/\(name)/img\(index).\(index % 2 == 0 ? "jpg" : "png")", file)
            }
        }
        let tree = fixtures.path("tree")
        let packs = fixtures.path("packs")
        try FileManager.default.createDirectory(atPath: packs, withIntermediateDirectories: true)
        for split in ["train", "test"] {
            let packed = try run(["pack", "images", tree, "--size", "16", "--out", packs + "/\(split).pack"])
            try #require(packed.status == 0, "\(packed.output)")
        }
        fixtures.write("net.model", Array(Self.model.utf8))
        let out = fixtures.path("run")
        let trained = try run(["train", "--model-file", fixtures.path("net.model"), "--data", packs, "--epochs", "3",
                               "--batch", "4", "--lr", "0.05", "--meter", "none", "--no-progress", "--threads", "1", "--out", out])
        try #require(trained.status == 0, "\(trained.output)")
        return (tree, packs + "/train.pack", out + "/checkpoint.safetensors")
    }

    /// CSV rows of `predict --out FILE.csv`: input -> [(class, name, probability)] by rank.
    func parseCSV(_ path: String) throws -> [(input: String, top: [(Int, String, Double)])] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.first == "input,rank,class,name,probability")
        var rows: [(input: String, top: [(Int, String, Double)])] = []
        for line in lines.dropFirst() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            try #require(fields.count == 5, "\(line)")
            let entry = (try #require(Int(fields[2])), fields[3], try #require(Double(fields[4])))
            if rows.last?.input == fields[0] { rows[rows.count - 1].top.append(entry) } else { rows.append((fields[0], [entry])) }
            #expect(Int(fields[1]) == rows[rows.count - 1].top.count, "ranks count from 1: \(line)")
        }
        return rows
    }

    /// `checkpoint` with its data.* metadata removed (the header rewritten, padded to 8).
    func withoutDataFacts(_ checkpoint: String, writing path: String) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        let size = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        var header = try #require(try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<8 + size)) as? [String: Any])
        var metadata = try #require(header["__metadata__"] as? [String: String])
        for key in ["data.shape", "data.mean", "data.std", "data.classes"] { #expect(metadata.removeValue(forKey: key) != nil) }
        header["__metadata__"] = metadata
        var text = try JSONSerialization.data(withJSONObject: header)
        while (8 + text.count) % 8 != 0 { text.append(0x20) }
        var out = Data((0..<8).map { UInt8(truncatingIfNeeded: text.count >> (8 * $0)) })
        out.append(text)
        out.append(bytes.subdata(in: 8 + size..<bytes.count))
        try out.write(to: URL(fileURLWithPath: path))
    }

    @Test func predictsTheColourOfTrainingFilesFoldersAndPacks() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        let (tree, pack, checkpoint) = try trainedOnColours(fixtures)

        // Printed lines for every file below the folder, then the summary.
        let printed = try run(["predict", checkpoint, tree])
        try #require(printed.status == 0, "\(printed.output)")
        let lines = printed.output.split(separator: "\n").map(String.init)
        #expect(lines.filter { $0.hasPrefix(tree + "/") }.count == 20, "\(printed.output)")
        #expect(lines.last?.hasPrefix("predict: 20 inputs in ") == true, "\(printed.output)")

        // CSV: most files get their folder's class; probabilities sum to 1 per input.
        let csv = fixtures.path("files.csv")
        let written = try run(["predict", checkpoint, tree, "--out", csv, "--top", "2"])
        try #require(written.status == 0, "\(written.output)")
        let rows = try parseCSV(csv)
        #expect(rows.count == 20)
        var right = 0
        for row in rows {
            #expect(row.top.count == 2)
            #expect(abs(row.top.reduce(0) { $0 + $1.2 } - 1) < 1e-5, "\(row)")
            #expect(row.top[0].2 >= row.top[1].2)
            let folder = row.input.split(separator: "/").dropLast().last.map(String.init)
            if row.top[0].1 == folder { right += 1 }
        }
        #expect(right >= 16, "\(right) of 20 files predicted as their folder")

        // JSONL parses and agrees with the CSV.
        let jsonl = fixtures.path("files.jsonl")
        try #require(try run(["predict", checkpoint, tree, "--out", jsonl, "--top", "2", "--batch", "3", "--logits"]).status == 0)
        let objects = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(objects.count == 20)
        for (object, row) in zip(objects, rows) {
            #expect(object["input"] as? String == row.input)
            let top = try #require(object["top"] as? [[String: Any]])
            #expect(top.count == 2)
            #expect(top.first?["name"] as? String == row.top[0].1)
            let probability = try #require(top.first?["probability"] as? Double)
            #expect(abs(probability - row.top[0].2) < 1e-6, "batch 3 and batch 64 agree")
            // --logits: every head output, whose softmax is the printed probability.
            let logits = try #require(object["logits"] as? [Double])
            #expect(logits.count == 2)
            let best = try #require(top.first?["class"] as? Int)
            let softmax = 1 / (1 + exp(logits[1 - best] - logits[best]))
            #expect(abs(softmax - probability) < 1e-6, "\(logits) vs \(probability)")
        }

        // The pack's records are the files as pack images made them: the same probabilities.
        let packCSV = fixtures.path("pack.csv")
        try #require(try run(["predict", checkpoint, pack, "--out", packCSV, "--top", "2"]).status == 0)
        let packRows = try parseCSV(packCSV)
        #expect(packRows.count == 20)
        for (index, (packRow, fileRow)) in zip(packRows, rows).enumerated() {
            #expect(packRow.input == pack + "#\(index)")
            #expect(packRow.top.map { $0.0 } == fileRow.top.map { $0.0 }, "\(packRow) vs \(fileRow)")
            // Relative, so that the small probability (the logit gap) is compared too.
            for (a, b) in zip(packRow.top, fileRow.top) {
                #expect(abs(a.2 - b.2) <= 1e-9 * max(a.2, b.2), "\(packRow) vs \(fileRow)")
            }
        }
    }

    @Test func aCorruptFileIsNamedAndRefusalsAreClear() throws {
        let fixtures = PhotoFixtures()
        defer { fixtures.remove() }
        let (tree, pack, checkpoint) = try trainedOnColours(fixtures)
        let bad = fixtures.write("bad/broken.jpg", [0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 1, 2, 3])
        let good = tree + "/red/img1.png"

        let stopped = try run(["predict", checkpoint, good, bad])
        #expect(stopped.status == 1, "\(stopped.output)")
        #expect(stopped.output.contains(bad), "\(stopped.output)")
        let skipped = try run(["predict", checkpoint, good, bad, "--skip-bad"])
        #expect(skipped.status == 0, "\(skipped.output)")
        #expect(skipped.output.contains("skipped 1 files") && skipped.output.contains(bad), "\(skipped.output)")
        #expect(skipped.output.contains("predict: 1 inputs"), "\(skipped.output)")

        // A checkpoint as an older leitner wrote it (no data.* metadata) is refused by key.
        let old = fixtures.path("old.safetensors")
        try withoutDataFacts(checkpoint, writing: old)
        let refusedOld = try run(["predict", old, good])
        #expect(refusedOld.status == 1, "\(refusedOld.output)")
        #expect(refusedOld.output.contains("has no data.shape, data.mean, data.std, data.classes metadata")
                && refusedOld.output.contains("older leitner"), "\(refusedOld.output)")

        // Options that do nothing, and impossible ones, are usage errors.
        for arguments in [["predict", checkpoint, pack, "--skip-bad"], ["predict", checkpoint, good, "--top", "3"],
                          ["predict", checkpoint, good, "--out", fixtures.path("x.txt")], ["predict", checkpoint],
                          ["predict", checkpoint, good, "--logits"], ["predict", checkpoint, good, "--logits", "--out", fixtures.path("x.csv")]] {
            let refused = try run(arguments)
            #expect(refused.status == 2, "\(arguments): \(refused.output)")
        }
    }
}
