import Testing
import NN
import Kernels

@Suite struct ModelZooTests {
    @Test func referenceModelsHaveTheSpecifiedShapesAndParameterCounts() throws {
        // Parameter counts of the PyTorch definitions of the same models.
        let expected: [(String, Int)] = [
            ("mlp", 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10),
            ("cnn-s", (32 * 9 + 32) + (64 * 32 * 9 + 64) + (3136 * 128 + 128) + (128 * 10 + 10)),
            ("resnet8", 16 * 9 + 32                                   // stem conv + bn
                + 2 * (16 * 16 * 9 + 32)                              // layer1
                + (32 * 16 * 9 + 64) + (32 * 32 * 9 + 64) + (32 * 16 + 64)    // layer2 + shortcut
                + (64 * 32 * 9 + 128) + (64 * 64 * 9 + 128) + (64 * 32 + 128) // layer3 + shortcut
                + 64 * 10 + 10),
        ]
        for (name, count) in expected {
            let description = try ModelZoo.description(named: name)
            let shapes = try description.shapes()
            #expect(shapes.last == .flat(10), "\(name)")
            let context = try KernelContext(threads: 1)
            let model = try Model(description, batch: 2, context: context)
            let total = model.parameterCount
            #expect(total == count, "\(name): \(total) parameters, PyTorch has \(count)")
        }
        let cnn = try ModelZoo.description(named: "cnn-s")
        let shapes = try cnn.shapes()
        #expect(shapes.contains(.flat(3136)))
    }

    @Test func textFormRoundTrips() throws {
        for name in ModelZoo.names {
            let description = try ModelZoo.description(named: name)
            let again = try ModelDescription.parse(description.text, name: name)
            #expect(again.text == description.text, "\(name)")
            #expect(again.layers.map(\.name) == description.layers.map(\.name), "\(name)")
        }
    }

    @Test func malformedDescriptionsNameTheLine() {
        let cases: [(String, String)] = [
            ("conv 3", "must come before"),
            ("input 1x28x28\nclasses 10\nconv k3", "line 3"),
            ("input 1x28x28\nclasses 10\nfrobnicate 3", "unknown layer kind"),
            ("input 1x28x28\nclasses 10\nlinear 10", "needs flat input"),
            ("input 1x28\nclasses 10", "input needs CxHxW"),
            ("input 1x28x28\nclasses 10\nflatten\nadd nowhere", "unknown option or node 'nowhere'"),
        ]
        for (text, fragment) in cases {
            do {
                _ = try ModelDescription.parse(text, name: "bad")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.message.contains(fragment), "\(error.message) should mention '\(fragment)'")
            }
        }
    }
}
