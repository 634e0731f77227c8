import Foundation
import Testing
import Kernels
import NN

/// A state_dict written by PyTorch itself (`tools/make-torch-fixture interop`: safetensors.torch.save_file,
/// so no Leitner metadata and an I64 num_batches_tracked) loads by name, and the model then
/// gives PyTorch's eval-mode logits.
@Suite struct PyTorchInteropTests {
    struct Fixture {
        let description: ModelDescription
        let input: [Float]
        let logits: [Float]
        let path: String
    }

    static func fixture() throws -> Fixture {
        let directory = repositoryRoot() + "/data/fixtures"
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/torch-tiny.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let text = try #require(json["description"] as? String)
        let input = try #require(json["input"] as? [Double]).map { Float($0) }
        let logits = try #require(json["logits"] as? [Double]).map { Float($0) }
        return Fixture(description: try ModelDescription.parse(text, name: "torch-tiny"), input: input, logits: logits,
                       path: directory + "/torch-tiny.safetensors")
    }

    @Test func stateDictFromPyTorchLoadsAndGivesItsLogits() throws {
        let fixture = try Self.fixture()
        let reader = try SafeTensorsReader(path: fixture.path)
        #expect(reader.header.entry(named: "bn1.num_batches_tracked")?.dtype == .i64)
        #expect(Checkpoint.value("format", in: reader.metadata) == nil)
        let batch = 2
        let model = try Model(fixture.description, batch: batch, context: try KernelContext(threads: 1))
        model.initialize(seed: 1)
        try Checkpoint.load(path: fixture.path, into: model)
        // One channel: PyTorch's NCHW input is Leitner's CNHW.
        for index in fixture.input.indices { model.input[index] = fixture.input[index] }
        model.forward(batch: batch, training: false)
        let logits = model.logits
        for index in fixture.logits.indices {
            #expect(abs(logits[index] - fixture.logits[index]) <= 1e-5 * max(1, abs(fixture.logits[index])),
                    "logit \(index): Leitner \(logits[index]), PyTorch \(fixture.logits[index])")
        }
    }

    /// Unknown, missing and mis-shaped tensors are all listed in one error.
    @Test func mismatchesAreListedTogether() throws {
        let fixture = try Self.fixture()
        var description = fixture.description
        description.layers[0].outChannels = 5  // conv1 and bn1 mis-shaped
        description.layers[1].name = "norm"    // bn1.* unknown, norm.* missing
        let model = try Model(description, batch: 1, context: try KernelContext(threads: 1))
        do {
            try Checkpoint.load(path: fixture.path, into: model)
            Issue.record("loading a mismatched state_dict succeeded")
        } catch {
            #expect(error.kind == .mismatch)
            let text = error.description
            for part in ["mis-shaped: conv1.weight", "missing: norm.weight", "missing: norm.running_var",
                         "unknown: bn1.weight", "unknown: bn1.num_batches_tracked", "mis-shaped: fc.weight"] {
                #expect(text.contains(part), "\(part) not in: \(text)")
            }
        }
    }

    /// A replaced head: the head tensors are skipped whatever their shape, the rest loads.
    @Test func pretrainedLoadSkipsAReplacedHead() throws {
        let fixture = try Self.fixture()
        var description = fixture.description
        description.classes = 2
        description.layers[description.layers.count - 1].outChannels = 2
        let model = try Model(description, batch: 1, context: try KernelContext(threads: 1))
        model.initialize(seed: 4)
        let head = model.tensors().first { $0.name == "fc.weight" }!
        let before = Array(UnsafeBufferPointer(start: head.pointer, count: head.count))
        #expect(throws: SafeTensorsError.self) { try Checkpoint.load(path: fixture.path, into: model) }
        try Checkpoint.loadPretrained(path: fixture.path, into: model, reinitialized: ["fc.weight", "fc.bias"])
        #expect(Array(UnsafeBufferPointer(start: head.pointer, count: head.count)) == before)
        let reader = try SafeTensorsReader(path: fixture.path)
        let conv = model.tensors().first { $0.name == "conv1.weight" }!
        #expect(Array(UnsafeBufferPointer(start: conv.pointer, count: conv.count)) == (try reader.floats("conv1.weight")))
    }
}
