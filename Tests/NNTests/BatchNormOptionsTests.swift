import Testing
import Kernels
import NN

/// `bn eps=E momentum=M` (torchvision's mobilenet_v3 uses eps 0.001, momentum 0.01): the text
/// form round-trips and writes nothing for PyTorch's defaults; evaluation divides by
/// sqrt(var + eps) with the layer's eps; a training forward moves the running mean by the
/// layer's momentum. Checked against the formulas in Double.
@Suite struct BatchNormOptionsTests {
    @Test func textFormRoundTripsAndDefaultsStaySilent() throws {
        let text = "input 2x3x3\nclasses 2\nbn eps=0.001 momentum=0.01 as=a\nbn as=b\nflatten as=f\nlinear 2 bias as=fc\n"
        let description = try ModelDescription.parse(text, name: "bn")
        #expect(description.layers[0].epsilon == 0.001 && description.layers[0].momentum == 0.01)
        #expect(description.layers[1].epsilon == 1e-5 && description.layers[1].momentum == 0.1)
        let again = try ModelDescription.parse(description.text, name: "bn")
        #expect(again.text == description.text)
        #expect(description.text.contains("bn eps=0.001 momentum=0.01 as=a") && description.text.contains("bn as=b"), "\(description.text)")
        for bad in ["bn eps=0", "bn eps=1", "bn momentum=0", "bn momentum=1.5", "bn eps=nan", "bn eps=0.1 eps=0.2", "relu eps=0.1"] {
            #expect(throws: ModelError.self, "\(bad)") { _ = try ModelDescription.parse("input 2x3x3\nclasses 2\n" + bad + "\nflatten\nlinear 2\n", name: "bad") }
        }
    }

    @Test func epsilonAndMomentumReachTheKernels() throws {
        let text = "input 2x3x3\nclasses 2\nbn eps=0.25 momentum=0.3 as=norm\nflatten as=f\nlinear 2 bias as=fc\n"
        let description = try ModelDescription.parse(text, name: "bn")
        let batch = 4
        let model = try Model(description, batch: batch, context: try KernelContext(threads: 1), sharedActivations: false)
        model.initialize(seed: 3)
        let tensors = Dictionary(uniqueKeysWithValues: model.tensors().map { ($0.name, $0) })
        let gamma = try #require(tensors["norm.weight"]), beta = try #require(tensors["norm.bias"])
        let mean = try #require(tensors["norm.running_mean"]), variance = try #require(tensors["norm.running_var"])
        for channel in 0..<2 {
            gamma.pointer[channel] = Float(1.5 + Double(channel)); beta.pointer[channel] = Float(0.25 * Double(channel))
            mean.pointer[channel] = Float(0.5 - Double(channel)); variance.pointer[channel] = Float(2 + Double(channel))
        }
        fillBatch(model, batch: batch, seed: 9)
        let input = (0..<(batch * 18)).map { Double(model.input[$0]) }   // CNHW, as the model keeps conv activations
        // Evaluation: (x - running mean) / sqrt(running var + 0.25) * gamma + beta.
        model.forward(batch: batch, training: false)
        let output = model.output(ofNode: 0)
        var worst = 0.0
        for sample in 0..<batch {
            for channel in 0..<2 {
                for position in 0..<9 {
                    let index = (channel * batch + sample) * 9 + position   // CNHW
                    let expected = (input[index] - (0.5 - Double(channel))) / (2 + Double(channel) + 0.25).squareRoot() * (1.5 + Double(channel)) + 0.25 * Double(channel)
                    worst = max(worst, abs(Double(output[index]) - expected))
                }
            }
        }
        #expect(worst < 1e-5, "evaluation with eps 0.25: worst error \(worst)")
        // Training: running mean <- 0.7 * running mean + 0.3 * batch mean.
        model.forward(batch: batch, training: true)
        for channel in 0..<2 {
            var sum = 0.0
            for sample in 0..<batch { for position in 0..<9 { sum += input[(channel * batch + sample) * 9 + position] } }
            let expected = 0.7 * (0.5 - Double(channel)) + 0.3 * sum / Double(batch * 9)
            #expect(abs(Double(mean.pointer[channel]) - expected) < 1e-5, "channel \(channel): running mean \(mean.pointer[channel]), expected \(expected)")
        }
    }
}
