import Platform
import Kernels
import NN

/// `leitner bench layers`: where a training step's time goes, node by node and pass by pass
/// (forward; backward = data and weight gradients together), for the reference models on
/// random data. The step is `Model.forwardBackward` (no optimizer update) timed per node;
/// the untimed step beside it shows what the clock reads cost.
enum LayersBench {
    /// FLOPs of node `index` in the forward for `batch` samples (multiply-adds x 2): convolution,
    /// depthwise convolution and linear layers; 0 for the rest (memory-bound).
    static func forwardFLOPs(_ model: Model, _ index: Int, batch: Int) -> Double {
        let layer = model.description.layers[index]
        let output = model.shapes[index]
        let input = layer.inputs[0] == -1 ? model.description.input : model.shapes[layer.inputs[0]]
        let k2 = Double(layer.kernel * layer.kernel)
        let outSpatial = Double(batch * output.height * output.width)
        switch layer.kind {
        case .conv2d: return 2 * outSpatial * Double(output.channels * input.channels) * k2
        case .depthwiseConv2d: return 2 * outSpatial * Double(output.channels) * k2
        case .linear: return 2 * Double(batch * input.count * output.channels)
        default: return 0
        }
    }

    /// Backward FLOPs: the weight gradient always, the data gradient unless the node reads the
    /// model's input (nothing asks for that gradient).
    static func backwardFLOPs(_ model: Model, _ index: Int, batch: Int) -> Double {
        let forward = forwardFLOPs(model, index, batch: batch)
        return model.description.layers[index].inputs[0] == -1 ? forward : 2 * forward
    }

    static func kindName(_ kind: LayerKind) -> String {
        switch kind {
        case .conv2d: return "conv"
        case .depthwiseConv2d: return "depthwise"
        case .batchNorm: return "batchnorm"
        case .relu, .relu6, .hardSwish, .hardSigmoid: return "activation"
        case .maxPool, .avgPool, .globalAvgPool: return "pool"
        case .linear: return "linear"
        case .add: return "add"
        default: return "other"
        }
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// Profiles each of `models` (reference names) at `batch` with `threads`; each measurement
    /// runs for about `seconds` x 10. Returns false when a model cannot be built.
    static func run(models: [String], batch: Int, threads: Int, seconds: Double) -> Bool {
        guard let context = try? KernelContext(threads: threads) else {
            print("layers: cannot create the thread pool")
            return false
        }
        let peak = BenchSupport.peakGFLOPSPerCore() * Double(threads)
        for name in models {
            let model: Model
            do throws(ModelError) {
                // A name ending in ".model" is a model file (the text form, e.g. from tools/import-torch).
                let description = name.hasSuffix(".model") ? try ModelDescription.read(file: name)
                    : try ModelZoo.description(named: name)
                model = try Model(description, batch: batch, context: context)
            } catch {
                print("layers: \(name): \(error.description)")
                return false
            }
            model.initialize(seed: 1)
            var generator = SeededGenerator(seed: 7)
            for i in 0..<batch * model.description.input.count { model.input[i] = generator.uniform(-1.5, 2.5) }
            for i in 0..<batch { model.labels[i] = Int32(generator.below(model.description.classes)) }
            let nodes = model.description.layers.count
            let forward = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
            let backward = UnsafeMutablePointer<Double>.allocate(capacity: nodes)
            defer { forward.deallocate(); backward.deallocate() }
            forward.initialize(repeating: 0, count: nodes)
            backward.initialize(repeating: 0, count: nodes)
            for _ in 0..<2 { model.forwardBackward(batch: batch) }
            // Alternating: untimed steps (the step as training runs it), then profiled steps.
            var plainSteps: [Double] = [], profiledSteps: [Double] = []
            var other = 0.0
            var profiled = 0
            let budget = max(seconds, 0.1) * 10
            let began = Clock.seconds()
            while Clock.seconds() - began < budget || profiled < 6 {
                var start = Clock.seconds()
                model.forwardBackward(batch: batch)
                plainSteps.append(Clock.seconds() - start)
                start = Clock.seconds()
                other += model.profiledForwardBackward(batch: batch, forwardSeconds: forward, backwardSeconds: backward)
                profiledSteps.append(Clock.seconds() - start)
                profiled += 1
            }
            let steps = Double(profiled)
            var forwardTotal = 0.0, backwardTotal = 0.0, flopsTotal = 0.0
            for i in 0..<nodes {
                forwardTotal += forward[i] / steps
                backwardTotal += backward[i] / steps
                flopsTotal += forwardFLOPs(model, i, batch: batch) + backwardFLOPs(model, i, batch: batch)
            }
            let stepTotal = forwardTotal + backwardTotal + other / steps
            print("")
            print("layers: \(name), batch \(batch), \(threads) thread(s): one training step (forward, loss, backward; no update) on random data, "
                  + "\(profiled) profiled steps alternating with untimed ones")
            print("  step: \(BenchSupport.format(1000 * median(plainSteps), decimals: 2)) ms untimed, "
                  + "\(BenchSupport.format(1000 * median(profiledSteps), decimals: 2)) ms profiled (medians); "
                  + "\(BenchSupport.format(Double(batch) / median(plainSteps), decimals: 0)) samples/s without the update; "
                  + "\(BenchSupport.format(flopsTotal / median(plainSteps) / 1e9, decimals: 1)) GFLOP/s overall, "
                  + "\(BenchSupport.percentOfPeak(flopsTotal / median(plainSteps) / 1e9, peak: peak))% of \(threads) x peak")
            print("  " + Format.padRight("node", 20) + Format.padRight("kind", 11) + Format.pad("output", 12) + Format.pad("fwd ms", 9)
                  + Format.pad("bwd ms", 9) + Format.pad("share", 7) + Format.pad("fwd GF/s", 9) + Format.pad("bwd GF/s", 9)
                  + Format.pad("fwd %pk", 8) + Format.pad("bwd %pk", 8))
            var kinds: [(String, Double, Double, Double)] = []
            for i in 0..<nodes {
                let layer = model.description.layers[i]
                let shape = model.shapes[i]
                let f = forward[i] / steps, b = backward[i] / steps
                let ff = forwardFLOPs(model, i, batch: batch), bf = backwardFLOPs(model, i, batch: batch)
                let kind = kindName(layer.kind)
                if let at = kinds.firstIndex(where: { $0.0 == kind }) {
                    kinds[at].1 += f; kinds[at].2 += b; kinds[at].3 += ff + bf
                } else {
                    kinds.append((kind, f, b, ff + bf))
                }
                let output = shape.isFlat ? "\(shape.channels)" : "\(shape.channels)x\(shape.height)x\(shape.width)"
                func rate(_ flops: Double, _ time: Double) -> String { flops > 0 && time > 0 ? BenchSupport.format(flops / time / 1e9, decimals: 1) : "-" }
                func share(_ flops: Double, _ time: Double) -> String { flops > 0 && time > 0 ? BenchSupport.percentOfPeak(flops / time / 1e9, peak: peak) : "-" }
                print("  " + Format.padRight(layer.name, 20) + Format.padRight(kind, 11) + Format.pad(output, 12)
                      + Format.pad(BenchSupport.format(1000 * f, decimals: 3), 9) + Format.pad(BenchSupport.format(1000 * b, decimals: 3), 9)
                      + Format.pad(BenchSupport.format(100 * (f + b) / stepTotal, decimals: 1) + "%", 7)
                      + Format.pad(rate(ff, f), 9) + Format.pad(rate(bf, b), 9) + Format.pad(share(ff, f), 8) + Format.pad(share(bf, b), 8))
            }
            print("  by kind (forward + backward):")
            for (kind, f, b, flops) in kinds {
                print("    " + Format.padRight(kind, 11) + Format.pad(BenchSupport.format(1000 * f, decimals: 3) + " ms", 12)
                      + Format.pad(BenchSupport.format(1000 * b, decimals: 3) + " ms", 12)
                      + Format.pad(BenchSupport.format(100 * (f + b) / stepTotal, decimals: 1) + "%", 8)
                      + (flops > 0 ? "  " + BenchSupport.format(flops / (f + b) / 1e9, decimals: 1) + " GFLOP/s" : ""))
            }
            print("    " + Format.padRight("loss+zero", 11) + Format.pad(BenchSupport.format(1000 * other / steps, decimals: 3) + " ms", 12)
                  + Format.pad("", 12) + Format.pad(BenchSupport.format(100 * other / steps / stepTotal, decimals: 1) + "%", 8))
            print("  passes: forward \(BenchSupport.format(1000 * forwardTotal, decimals: 2)) ms, backward \(BenchSupport.format(1000 * backwardTotal, decimals: 2)) ms "
                  + "(\(BenchSupport.format(100 * forwardTotal / stepTotal, decimals: 0))% / \(BenchSupport.format(100 * backwardTotal / stepTotal, decimals: 0))%); "
                  + "%pk = of \(threads) x one core's measured peak")
            let fused = model.fusedReLUs
            if !fused.isEmpty {
                var names = ""
                for relu in fused { names += (names.isEmpty ? "" : ", ") + model.description.layers[relu].name }
                print("  fused: \(names) (forward and backward in the bias pass of the convolution before; their rows time only the call)")
            }
        }
        return true
    }
}
