import Foundation
import Testing
import Data
import NN
import Train
import Platform

/// `leitner parity --dump-activations` (ParityRun's `dumpActivations`): step 1's output and
/// output gradient of every node, named by node, NCHW, with the parity run itself unchanged.
@Suite(.serialized) struct ParityDumpTests {
    @Test func dumpHoldsEveryNodeInNCHWAndLeavesTheRunUnchanged() throws {
        let train = try syntheticSet(count: 48, seed: 21)
        var config = try tinyConfig(temporaryDirectory("parity-plain"), epochs: 1)
        config.model = try ModelDescription.parse(BackboneTrainingTests.model, name: "backbone-kinds")
        config.augment = AugmentConfig()
        config.schedule = .constant
        let plain = config.outputDirectory
        try ParityRun.run(config: config, train: train, steps: 3, output: plain, reporter: Reporter(quiet: true))
        let dumped = temporaryDirectory("parity-dump")
        try ParityRun.run(config: config, train: train, steps: 3, output: dumped, dumpActivations: true, reporter: Reporter(quiet: true))
        for file in ["losses.txt", "gradients1.safetensors", "final.safetensors"] {
            #expect(FileManager.default.contentsEqual(atPath: plain + "/" + file, andPath: dumped + "/" + file), "\(file) differs with the dump")
        }
        #expect(!FileManager.default.fileExists(atPath: plain + "/activations1.safetensors"))

        let layers = config.model.layers
        let shapes = try config.model.shapes()
        let batch = config.batch
        var outputs: [String: [Float]] = [:]
        for file in ["activations1.safetensors", "output-gradients1.safetensors"] {
            let reader = try SafeTensorsReader(path: dumped + "/" + file)
            #expect(reader.header.entries.count == layers.count, "\(file): \(reader.header.entries.map(\.name))")
            for (index, layer) in layers.enumerated() {
                let entry = try #require(reader.header.entry(named: layer.name), "\(file) lacks node \(layer.name)")
                let shape = shapes[index]
                let expected = shape.isFlat ? [batch, shape.count] : [batch, shape.channels, shape.height, shape.width]
                #expect(entry.shape == expected, "\(file) \(layer.name): shape \(entry.shape), expected \(expected)")
                let values = try reader.floats(layer.name)
                #expect(values.allSatisfy(\.isFinite) && values.contains { $0 != 0 }, "\(file) \(layer.name): not finite or all zero")
                if file == "activations1.safetensors" { outputs[layer.name] = values }
            }
        }
        // NCHW: "gap" averages each sample's channel plane of "features" (row n*C + c is the mean of
        // the plane at (n*C + c)*H*W): a CNHW dump would pair other planes with other rows.
        let gap = try #require(layers.firstIndex { $0.kind == .globalAvgPool })
        let features = try #require(outputs["features"]), pooled = try #require(outputs[layers[gap].name])
        let source = shapes[gap - 1], plane = source.height * source.width
        for row in 0..<(batch * source.channels) {
            let mean = features[(row * plane)..<((row + 1) * plane)].reduce(0, +) / Float(plane)
            #expect(abs(mean - pooled[row]) <= 1e-5 * max(1, abs(mean)), "gap row \(row): \(pooled[row]) against the plane mean \(mean)")
        }
        // The logits ([N, classes]) give step 1's mean loss of losses.txt.
        let logits = try #require(outputs[layers[layers.count - 1].name])
        let classes = config.model.classes
        var loss = 0.0
        for sample in 0..<batch {
            let row = logits[(sample * classes)..<((sample + 1) * classes)].map(Double.init)
            let largest = row.max()!
            let logSum = largest + Foundation.log(row.map { Foundation.exp($0 - largest) }.reduce(0, +))
            loss += logSum - row[Int(train.labels[sample])]
        }
        let first = try #require(Double(try String(contentsOfFile: dumped + "/losses.txt", encoding: .utf8).split(separator: "\n")[0]))
        #expect(abs(loss / Double(batch) - first) <= 1e-5 * first, "loss from the dumped logits \(loss / Double(batch)), losses.txt \(first)")
    }
}
