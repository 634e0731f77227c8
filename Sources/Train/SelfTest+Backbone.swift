import Kernels
import Platform

/// The checks of the backbone layer kinds in `leitner selftest`: ReLU6, hardswish,
/// hardsigmoid, dropout and the per-channel scale, fast paths against their naive twins on
/// sizes with a vector tail (and in place where the model runs them so), outputs guarded.
extension SelfTest {
    /// Runs `fast` and `naive` on guarded copies of `initial`; returns the normalised error
    /// (infinite when a guard word changed).
    static func twin(_ initial: [Float], fast: (UnsafeMutablePointer<Float>) -> Void,
                     naive: (UnsafeMutablePointer<Float>) -> Void) -> Float {
        var fastOutput = Guarded(initial), naiveOutput = Guarded(initial)
        fastOutput.withPointer(fast)
        naiveOutput.withPointer(naive)
        if fastOutput.damagedGuards + naiveOutput.damagedGuards > 0 { return .infinity }
        return error(fastOutput.values, naiveOutput.values)
    }

    static func backboneKinds(_ context: KernelContext) -> Outcome {
        var worst: Float = 0, label = "", cases = 0
        func record(_ value: Float, _ what: String) {
            cases += 1
            if !(value <= worst) { worst = value.isNaN ? .infinity : value; label = what }
        }
        for count in [1, 7, 2 * floatVectorWidth + 3, 33, 1000] {
            // Kinks exactly, and values on both sides of them.
            var x = values(count, seed: UInt64(count)).map { $0 * 8 }
            for index in stride(from: 0, to: count, by: 5) { x[index] = [-3, 0, 3, 6][(index / 5) % 4] }
            let dOutput = values(count, seed: UInt64(count) + 1)
            let prefill = values(count, seed: UInt64(count) + 2)
            var y6 = [Float](repeating: 0, count: count)
            ReLU6.naiveForward(output: &y6, input: x, count: count)
            record(twin(x, fast: { ReLU6.forward(output: $0, input: $0, count: count) },
                        naive: { ReLU6.naiveForward(output: $0, input: $0, count: count) }), "ReLU6.forward in place, \(count)")
            record(twin(prefill, fast: { ReLU6.backward(dInput: $0, dOutput: dOutput, output: y6, count: count) },
                        naive: { ReLU6.naiveBackward(dInput: $0, dOutput: dOutput, output: y6, count: count) }), "ReLU6.backward, \(count)")
            record(twin(dOutput, fast: { ReLU6.backwardInPlace(gradient: $0, output: y6, count: count) },
                        naive: { ReLU6.naiveBackwardInPlace(gradient: $0, output: y6, count: count) }), "ReLU6.backwardInPlace, \(count)")
            record(twin(prefill, fast: { HardSwish.forward(output: $0, input: x, count: count) },
                        naive: { HardSwish.naiveForward(output: $0, input: x, count: count) }), "HardSwish.forward, \(count)")
            record(twin(prefill, fast: { HardSwish.backward(dInput: $0, dOutput: dOutput, input: x, count: count) },
                        naive: { HardSwish.naiveBackward(dInput: $0, dOutput: dOutput, input: x, count: count) }), "HardSwish.backward, \(count)")
            record(twin(dOutput, fast: { HardSwish.backwardInPlace(gradient: $0, input: x, count: count) },
                        naive: { HardSwish.naiveBackwardInPlace(gradient: $0, input: x, count: count) }), "HardSwish.backwardInPlace, \(count)")
            record(twin(prefill, fast: { HardSigmoid.forward(output: $0, input: x, count: count) },
                        naive: { HardSigmoid.naiveForward(output: $0, input: x, count: count) }), "HardSigmoid.forward, \(count)")
            record(twin(prefill, fast: { HardSigmoid.backward(dInput: $0, dOutput: dOutput, input: x, count: count) },
                        naive: { HardSigmoid.naiveBackward(dInput: $0, dOutput: dOutput, input: x, count: count) }), "HardSigmoid.backward, \(count)")
            record(twin(dOutput, fast: { HardSigmoid.backwardInPlace(gradient: $0, input: x, count: count) },
                        naive: { HardSigmoid.naiveBackwardInPlace(gradient: $0, input: x, count: count) }), "HardSigmoid.backwardInPlace, \(count)")
            // Dropout: output and mask bit for bit, then both backwards with that mask.
            let threshold = Dropout.threshold(probability: 0.3), scale = Dropout.scale(probability: 0.3)
            let words = (count + 31) / 32
            var fastMask = [UInt32](repeating: 0, count: words), naiveMask = fastMask
            record(twin(prefill, fast: { Dropout.forward(output: $0, mask: &fastMask, input: x, count: count, first: 64, key: 9, threshold: threshold, scale: scale) },
                        naive: { Dropout.naiveForward(output: $0, mask: &naiveMask, input: x, count: count, first: 64, key: 9, threshold: threshold, scale: scale) }),
                   "Dropout.forward, \(count)")
            if fastMask != naiveMask { record(.infinity, "Dropout mask, \(count)") }
            record(twin(prefill, fast: { Dropout.backward(dInput: $0, dOutput: dOutput, mask: naiveMask, count: count, scale: scale) },
                        naive: { Dropout.naiveBackward(dInput: $0, dOutput: dOutput, mask: naiveMask, count: count, scale: scale) }), "Dropout.backward, \(count)")
            record(twin(dOutput, fast: { Dropout.backwardInPlace(gradient: $0, mask: naiveMask, count: count, scale: scale) },
                        naive: { Dropout.naiveBackwardInPlace(gradient: $0, mask: naiveMask, count: count, scale: scale) }), "Dropout.backwardInPlace, \(count)")
        }
        // The per-channel scale over both scale layouts; planes of 1, a tail, and 7x7.
        for (channels, batch, plane) in [(3, 2, 1), (5, 3, 2 * floatVectorWidth + 3), (4, 2, 49)] {
            for flat in [true, false] {
                let strides = flat ? ChannelScale.Strides(sample: channels, channel: 1) : ChannelScale.Strides(sample: 1, channel: batch)
                let count = channels * batch * plane
                let x = values(count, seed: 31), dOutput = values(count, seed: 32), scale = values(channels * batch, seed: 33)
                let what = "ChannelScale C\(channels) N\(batch) P\(plane) \(flat ? "flat" : "Cx1x1")"
                record(twin(values(count, seed: 34), fast: { ChannelScale.forward(output: $0, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides, context: context) },
                            naive: { ChannelScale.naiveForward(output: $0, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides) }),
                       what + " forward")
                record(twin(values(count, seed: 35), fast: { ChannelScale.backward(dInput: $0, dScale: nil, dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides, context: context) },
                            naive: { ChannelScale.naiveBackward(dInput: $0, dScale: nil, dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides) }),
                       what + " dx")
                record(twin(values(channels * batch, seed: 36), fast: { ChannelScale.backward(dInput: nil, dScale: $0, dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides, context: context) },
                            naive: { ChannelScale.naiveBackward(dInput: nil, dScale: $0, dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides) }),
                       what + " ds")
            }
        }
        return outcome("ReLU6, hardswish, hardsigmoid, dropout, channel scale vs naive", worst: worst, at: label, tolerance: 1e-5, cases: cases)
    }
}
