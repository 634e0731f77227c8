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

    /// A model file written on Windows (CRLF) or old Mac (CR) line ends reads like the LF one:
    /// Swift's "\r\n" is one Character, so splitting on "\n" used to see one long line.
    @Test func crlfAndCRLineEndsParseLikeLF() throws {
        for name in ModelZoo.names {
            let text = try ModelZoo.description(named: name).text
            let lf = try ModelDescription.parse(text, name: name)
            let crlf = try ModelDescription.parse(text.split(separator: "\n").joined(separator: "\r\n") + "\r\n", name: name)
            let cr = try ModelDescription.parse(text.split(separator: "\n").joined(separator: "\r"), name: name)
            #expect(crlf.text == lf.text && cr.text == lf.text, "\(name)")
        }
        do {
            _ = try ModelDescription.parse("input 1x28x28\r\nclasses 10\r\nflatten\r\nfrobnicate\r\n", name: "bad")
            Issue.record("accepted an unknown kind")
        } catch {
            #expect(error.message.contains("line 4: unknown layer kind 'frobnicate'"), "\(error.message)")
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
            // Words a kind does not read are refused, not ignored (issue 18).
            ("input 1x28x28\nclasses 10\ndwconv 32 k3", "dwconv takes no number ('32')"),
            ("input 1x28x28\nclasses 10\nconv 8 k3 k5", "'k' given twice"),
            ("input 1x28x28\nclasses 10\nconv 8 k3 nobias bias", "bias or nobias given twice"),
            ("input 1x28x28\nclasses 10\nmaxpool 2 k3", "maxpool takes no option 'k3'"),
            ("input 1x28x28\nclasses 10\nrelu p1", "relu takes no option 'p1'"),
            ("input 1x28x28\nclasses 10\nbn nobias", "bn has no bias"),
            ("input 1x28x28\nclasses 10\nconv 8 as=a as=b", "'as=' given twice"),
            ("input 1x28x28\ninput 1x32x32\nclasses 10\nflatten", "line 2: 'input' appears twice"),
            ("input 1x28x28\nclasses 10\nclasses 5\nflatten", "line 3: 'classes' appears twice"),
            ("input 1x28x28\nclasses 10\nflatten\ninput 1x32x32", "line 4: 'input' must come before the first layer"),
            ("input 1x28x28\nclasses 10\nconv 8 as=a\nconv 8 as=b\nadd a b", "add takes one node"),
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
