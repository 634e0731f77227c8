import Foundation
import Testing
import TestSupport

/// No command creates a file outside its `--out` (issue 18): each command runs in a fresh,
/// empty working directory with HOME and TMPDIR pointing at fresh empty directories, reading
/// inputs from a separate directory; afterwards the working directory, HOME and TMPDIR must
/// still be empty, the inputs unchanged, and every new file must lie under the `--out` given
/// (a directory, or the pack file and nothing beside it). Commands without `--out` create
/// nothing at all.
@Suite(.serialized, .enabled(if: Requirement.runs(Requirement.hasBinary), Requirement.binaryReason))
struct OutputConfinementCLITests {
    static let subset = Requirement.root + "/data/fashion-mnist-subset"

    /// Every path under `directory` with its size and modification time.
    func listing(_ directory: String) -> [String: String] {
        var entries: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return entries }
        for case let relative as String in walker {
            let attributes = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + relative)) ?? [:]
            entries[relative] = "\(attributes[.size] ?? "-") \(attributes[.modificationDate] ?? "-")"
        }
        return entries
    }

    /// Runs `arguments` confined as described above; `out` is where new files may appear.
    func runConfined(_ arguments: [String], out: String?, inputs: String, label: String) throws {
        let binary = try #require(Requirement.binary, Requirement.binaryReason)
        let cwd = temporaryDirectory("confine-cwd"), home = temporaryDirectory("confine-home"), tmp = temporaryDirectory("confine-tmp")
        let outParent = out.map { String($0[..<$0.lastIndex(of: "/")!]) }
        let inputsBefore = listing(inputs)
        let parentBefore = outParent.map(listing) ?? [:]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = home
        environment["TMPDIR"] = tmp
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        let errorFile = temporaryDirectory("confine-err") + "/err.txt"
        FileManager.default.createFile(atPath: errorFile, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errorFile)
        try process.run()
        process.waitUntilExit()
        let error = (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(label): status \(process.terminationStatus): \(error.suffix(400))")
        #expect(listing(cwd).isEmpty, "\(label) wrote into the working directory: \(listing(cwd).keys.sorted())")
        #expect(listing(home).isEmpty, "\(label) wrote into HOME: \(listing(home).keys.sorted())")
        #expect(listing(tmp).isEmpty, "\(label) wrote into TMPDIR: \(listing(tmp).keys.sorted())")
        #expect(listing(inputs) == inputsBefore, "\(label) changed its inputs")
        if let out, let outParent {
            // Beside --out nothing new: only --out itself (a directory or the pack file).
            let outName = String(out[out.index(after: out.lastIndex(of: "/")!)...])
            let added = listing(outParent).keys.filter { parentBefore[$0] == nil && $0 != outName && !$0.hasPrefix(outName + "/") }
            #expect(added.isEmpty, "\(label) wrote beside --out \(out): \(added.sorted())")
            #expect(FileManager.default.fileExists(atPath: out), "\(label) wrote nothing to --out \(out)")
        }
    }

    @Test func everyCommandWritesOnlyUnderOut() throws {
        // Inputs: the shipped packs, a checkpoint, small IDX, CSV and PGM files, all in one
        // directory that must not change.
        let inputs = temporaryDirectory("confine-inputs")
        let quick = ["--data", Self.subset, "--train-subset", "200", "--test-limit", "50", "--model", "mlp", "--epochs", "1",
                     "--meter", "none", "--no-progress"]
        let outs = temporaryDirectory("confine-outs")
        try runConfined(["train"] + quick + ["--out", outs + "/pretrain", "--classes", "0-4"], out: outs + "/pretrain", inputs: inputs, label: "train")
        try FileManager.default.copyItem(atPath: outs + "/pretrain/checkpoint.safetensors", toPath: inputs + "/pretrained.safetensors")
        var idxImages = Data([0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 2])
        idxImages.append(Data((0..<16).map { UInt8($0 * 13) }))
        try idxImages.write(to: URL(fileURLWithPath: inputs + "/images-idx3-ubyte"))
        try Data([0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 0, 1]).write(to: URL(fileURLWithPath: inputs + "/labels-idx1-ubyte"))
        try "label,a,b,c,d\n0,1,2,3,4\n1,5,6,7,8\n".write(toFile: inputs + "/data.csv", atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(atPath: inputs + "/pgm", withIntermediateDirectories: true)
        for index in 0..<2 {
            try Data("P5\n2 2\n255\n".utf8 + [UInt8(index), 2, 3, 4]).write(to: URL(fileURLWithPath: inputs + "/pgm/\(index).pgm"))
        }
        try "file,label\n0.pgm,0\n1.pgm,1\n".write(toFile: inputs + "/pgm/labels.csv", atomically: true, encoding: .utf8)

        let runs: [(String, [String], String?)] = [
            ("train", ["train"] + quick + ["--out", outs + "/train", "--dump-losses", outs + "/train/losses"], outs + "/train"),
            ("train --policy ies", ["train"] + quick + ["--policy", "ies", "--out", outs + "/ies"], outs + "/ies"),
            ("finetune", ["finetune", "--from", inputs + "/pretrained.safetensors", "--classes", "5-9", "--per-class", "20", "--data", Self.subset,
                          "--epochs", "1", "--meter", "none", "--no-progress", "--test-limit", "50", "--out", outs + "/finetune"], outs + "/finetune"),
            ("compare", ["compare", "--policies", "full,ies"] + quick + ["--out", outs + "/compare"], outs + "/compare"),
            ("energy-run", ["energy-run", "--idle-seconds", "0.5"] + quick.filter { $0 != "none" && $0 != "--meter" }
                + ["--meter", "model", "--out", outs + "/energy"], outs + "/energy"),
            ("parity", ["parity", "--model", "mlp", "--data", Self.subset, "--steps", "2", "--out", outs + "/parity"], outs + "/parity"),
            ("pack idx", ["pack", "idx", inputs + "/images-idx3-ubyte", inputs + "/labels-idx1-ubyte", "--out", outs + "/idx.pack"], outs + "/idx.pack"),
            ("pack csv", ["pack", "csv", inputs + "/data.csv", "--out", outs + "/csv.pack"], outs + "/csv.pack"),
            ("pack images", ["pack", "images", inputs + "/pgm", "--out", outs + "/images.pack"], outs + "/images.pack"),
            ("pack info", ["pack", "info", Self.subset + "/test.pack"], nil),
            ("pack verify", ["pack", "verify", Self.subset + "/test.pack"], nil),
            ("eval", ["eval", inputs + "/pretrained.safetensors", "--data", Self.subset, "--classes", "0-4"], nil),
            ("predict", ["predict", inputs + "/pretrained.safetensors", inputs + "/pgm", "--out", outs + "/predict.csv"], outs + "/predict.csv"),
            ("bench", ["bench", "gemm", "--seconds", "0.1"], nil),
            ("boards", ["boards"], nil),
            ("doctor", ["doctor", "--data", Self.subset, "--read-mb", "1"], nil),
            ("selftest", ["selftest"], nil),
            ("help", ["help", "train"], nil),
        ]
        for (label, arguments, out) in runs {
            try runConfined(arguments, out: out, inputs: inputs, label: label)
        }
    }
}
