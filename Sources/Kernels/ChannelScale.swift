import Platform

/// Per-channel product, the excitation of squeeze-excitation: y[c, n, p] = x[c, n, p] * s[n, c].
/// x and y are CNHW, so plane (c, n) is one contiguous run of P = H*W floats times one scalar.
/// The scale is a flat [N, C] row block (sample stride C, channel stride 1) or a spatial
/// C x 1 x 1 tensor stored CNHW (sample stride 1, channel stride N): the strides say which.
/// - Shapes: x, y, dx, dy [C, N, P]; s, ds: element (n, c) at n * sampleStride + c * channelStride.
public enum ChannelScale {
    /// Where the scale and its gradient live.
    public struct Strides {
        public var sample: Int
        public var channel: Int
        public init(sample: Int, channel: Int) { self.sample = sample; self.channel = channel }
    }

    /// The test oracle for `forward`.
    public static func naiveForward<T: BinaryFloatingPoint>(
        output: UnsafeMutablePointer<T>, input: UnsafePointer<T>, scale: UnsafePointer<T>,
        channels: Int, batch: Int, plane: Int, strides: Strides
    ) {
        for channel in 0..<channels {
            for sample in 0..<batch {
                let factor = scale[sample * strides.sample + channel * strides.channel]
                let base = (channel * batch + sample) * plane
                for offset in 0..<plane { output[base + offset] = input[base + offset] * factor }
            }
        }
    }

    /// y[c, n, :] = x[c, n, :] * s[n, c], planes split over threads.
    public static func forward(
        output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, scale: UnsafePointer<Float>,
        channels: Int, batch: Int, plane: Int, strides: Strides, context: KernelContext
    ) {
        forEachPlane(channels * batch, work: channels * batch * plane, context,
                     ForwardPlane(output: output, input: input, scale: scale, batch: batch, plane: plane, strides: strides))
    }

    struct ForwardPlane: ParallelTask {
        let output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, scale: UnsafePointer<Float>
        let batch: Int, plane: Int, strides: Strides

        func run(task planeIndex: Int) {
            let channel = planeIndex / batch, sample = planeIndex % batch
            let factor = FloatVector(repeating: scale[sample * strides.sample + channel * strides.channel])
            let from = input + planeIndex * plane, to = output + planeIndex * plane
            let width = FloatVector.scalarCount
            var index = 0
            while index + width <= plane {
                to.storeVector(from.loadVector(at: index) * factor, at: index)
                index += width
            }
            while index < plane { to[index] = from[index] * factor[0]; index += 1 }
        }
    }

    /// The test oracle for `backward`: dx += dy * s, ds[n, c] += sum over p of dy * x.
    /// Either gradient may be nil (not required).
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>?, dScale: UnsafeMutablePointer<T>?, dOutput: UnsafePointer<T>,
        input: UnsafePointer<T>, scale: UnsafePointer<T>, channels: Int, batch: Int, plane: Int, strides: Strides
    ) {
        for channel in 0..<channels {
            for sample in 0..<batch {
                let at = sample * strides.sample + channel * strides.channel
                let base = (channel * batch + sample) * plane
                var sum: T = 0
                for offset in 0..<plane {
                    dInput?[base + offset] += dOutput[base + offset] * scale[at]
                    sum += dOutput[base + offset] * input[base + offset]
                }
                dScale?[at] += sum
            }
        }
    }

    /// dx += dy * s and ds[n, c] += dy . x per plane (each plane owns its ds element, so the
    /// planes split over threads without a reduction).
    public static func backward(
        dInput: UnsafeMutablePointer<Float>?, dScale: UnsafeMutablePointer<Float>?, dOutput: UnsafePointer<Float>,
        input: UnsafePointer<Float>, scale: UnsafePointer<Float>, channels: Int, batch: Int, plane: Int, strides: Strides,
        context: KernelContext
    ) {
        forEachPlane(channels * batch, work: 2 * channels * batch * plane, context,
                     BackwardPlane(dInput: dInput, dScale: dScale, dOutput: dOutput, input: input, scale: scale,
                                   batch: batch, plane: plane, strides: strides))
    }

    struct BackwardPlane: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>?, dScale: UnsafeMutablePointer<Float>?
        let dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, scale: UnsafePointer<Float>
        let batch: Int, plane: Int, strides: Strides

        func run(task planeIndex: Int) {
            let channel = planeIndex / batch, sample = planeIndex % batch
            let at = sample * strides.sample + channel * strides.channel
            let gradient = dOutput + planeIndex * plane, values = input + planeIndex * plane
            let width = FloatVector.scalarCount
            if let dInput {
                let target = dInput + planeIndex * plane
                let factor = FloatVector(repeating: scale[at])
                var index = 0
                while index + width <= plane {
                    target.storeVector(target.loadVector(at: index) + gradient.loadVector(at: index) * factor, at: index)
                    index += width
                }
                while index < plane { target[index] += gradient[index] * scale[at]; index += 1 }
            }
            if let dScale {
                // Two accumulators, as Elementwise.sum.
                var first = FloatVector(repeating: 0), second = FloatVector(repeating: 0)
                var index = 0
                while index + 2 * width <= plane {
                    first += gradient.loadVector(at: index) * values.loadVector(at: index)
                    second += gradient.loadVector(at: index + width) * values.loadVector(at: index + width)
                    index += 2 * width
                }
                if index + width <= plane {
                    first += gradient.loadVector(at: index) * values.loadVector(at: index)
                    index += width
                }
                var total = (first + second).sum()
                while index < plane { total += gradient[index] * values[index]; index += 1 }
                dScale[at] += total
            }
        }
    }
}
