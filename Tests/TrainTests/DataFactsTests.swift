import Data
import Foundation
import Kernels
import NN
import Testing
import Train

/// The data facts a checkpoint carries for `leitner predict` (data.shape, data.mean, data.std,
/// data.classes): written with the weights, read back equal; their absence is named.
@Suite struct DataFactsTests {
    @Test func metadataRoundTripsThroughACheckpointFile() throws {
        let description = try ModelDescription.parse("input 3x5x4\nclasses 4\nflatten\nlinear 4\n", name: "tiny")
        let model = try Model(description, batch: 1, context: try KernelContext(threads: 1))
        let facts = DataFacts(channels: 3, height: 5, width: 4,
                              normalization: Normalization(mean: [0.1, 0.48235294, 1e-7], std: [0.3530, 1, 0.2470588]),
                              classNames: ["cat", "", "a, b", "ünï"])
        let path = temporaryDirectory("facts") + "/c.safetensors"
        try Checkpoint.save(model: model, metadata: [("epoch", "1")] + facts.metadata, path: path)
        let metadata = try Checkpoint.readMetadata(path: path)
        #expect(try DataFacts(metadata: metadata, path: path) == facts)
        #expect(Checkpoint.value("data.shape", in: metadata) == "3x5x4")

        // Unnamed classes: empty names, one per class, still counted.
        let unnamed = DataFacts(channels: 1, height: 2, width: 2, normalization: .identity(channels: 1),
                                classNames: ["", "", ""])
        #expect(try DataFacts(metadata: unnamed.metadata, path: "x") == unnamed)
    }

    @Test func aCheckpointWithoutTheFactsIsRefusedByKey() throws {
        do {
            _ = try DataFacts(metadata: [("epoch", "3"), ("data.shape", "1x28x28")], path: "old.safetensors")
            Issue.record("facts without data.mean were accepted")
        } catch {
            #expect(error.message.contains("old.safetensors has no data.mean, data.std, data.classes metadata"), "\(error.message)")
            #expect(error.message.contains("older leitner"), "\(error.message)")
        }
        let good = DataFacts(channels: 2, height: 3, width: 3, normalization: .identity(channels: 2), classNames: ["a", "b"]).metadata
        for (key, value) in [("data.shape", "2x3"), ("data.mean", "0.1"), ("data.std", "1,0"), ("data.mean", "0.1,x")] {
            let broken = good.map { $0.0 == key ? (key, value) : $0 }
            #expect(throws: TrainError.self, "\(key) \(value)") { try DataFacts(metadata: broken, path: "p") }
        }
    }
}
