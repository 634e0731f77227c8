import Testing
import Kernels

/// The kernels of the MobileNet/ResNet layer kinds: ReLU6, hardswish, hardsigmoid, dropout and
/// the per-channel scale of squeeze-excitation. Each fast path against its naive twin over odd
/// sizes with guard words, each gradient against central differences in Double, and the
/// derivatives at the kinks against the values torch 2.13 gives.
@Suite struct BackboneKernelTests {
    static let sizes = oddSizes + [64, 1000]

    /// Random values in [-8, 8) with the kinks (-3, 0, 3, 6) exactly mixed in (NaN is checked
    /// by `nanPropagatesLikeTheTwins`: the twin check's error metric cannot compare NaN).
    static func input(_ count: Int, seed: UInt64) -> [Float] {
        var random = SeededRandom(seed: seed)
        var values = random.floats(count, -8, 8)
        let kinks: [Float] = [-3, 0, 3, 6]
        for index in stride(from: 0, to: count, by: 4) { values[index] = kinks[(index / 4) % 4] }
        return values
    }

    /// NaN in the vector body and in the tail: every forward gives NaN there, in both paths,
    /// and the backwards agree with their twins bit for bit (hardswish passes the gradient at
    /// NaN, as PyTorch's comparisons do; ReLU6 and hardsigmoid pass it or not as PyTorch does).
    @Test func nanPropagatesLikeTheTwins() {
        let count = 2 * floatVectorWidth + 3
        var x = Self.input(count, seed: 3)
        x[1] = .nan
        x[count - 1] = .nan
        let dOutput = [Float](repeating: 0.25, count: count)
        func same(_ a: [Float], _ b: [Float]) -> Bool { a.map(\.bitPattern) == b.map(\.bitPattern) }
        var fast = [Float](repeating: 0, count: count), naive = fast
        ReLU6.forward(output: &fast, input: x, count: count)
        ReLU6.naiveForward(output: &naive, input: x, count: count)
        #expect(same(fast, naive) && fast[1].isNaN && fast[count - 1].isNaN)
        let y6 = fast
        fast = [Float](repeating: 0, count: count); naive = fast
        ReLU6.backward(dInput: &fast, dOutput: dOutput, output: y6, count: count)
        ReLU6.naiveBackward(dInput: &naive, dOutput: dOutput, output: y6, count: count)
        #expect(same(fast, naive) && fast[1] == 0.25, "relu6 at NaN: hardtanh_backward passes the gradient")
        HardSwish.forward(output: &fast, input: x, count: count)
        HardSwish.naiveForward(output: &naive, input: x, count: count)
        #expect(same(fast, naive) && fast[1].isNaN && fast[count - 1].isNaN)
        fast = [Float](repeating: 0, count: count); naive = fast
        HardSwish.backward(dInput: &fast, dOutput: dOutput, input: x, count: count)
        HardSwish.naiveBackward(dInput: &naive, dOutput: dOutput, input: x, count: count)
        #expect(same(fast, naive) && fast[1] == 0.25)
        HardSigmoid.forward(output: &fast, input: x, count: count)
        HardSigmoid.naiveForward(output: &naive, input: x, count: count)
        #expect(same(fast, naive) && fast[1].isNaN && fast[count - 1].isNaN)
        fast = [Float](repeating: 0, count: count); naive = fast
        HardSigmoid.backward(dInput: &fast, dOutput: dOutput, input: x, count: count)
        HardSigmoid.naiveBackward(dInput: &naive, dOutput: dOutput, input: x, count: count)
        #expect(same(fast, naive) && fast[1] == 0)
    }

    /// forward (in place too where allowed), backward into a prefilled dInput, and the in-place
    /// backward, each fast path against its twin.
    @Test func activationsMatchTwins() {
        for (seed, count) in Self.sizes.enumerated() {
            let x = Self.input(count, seed: UInt64(seed))
            var random = SeededRandom(seed: UInt64(seed) + 300)
            let dOutput = random.floats(count)
            let shape = "count \(count)"
            var y6 = [Float](repeating: 0, count: count)
            ReLU6.naiveForward(output: &y6, input: x, count: count)
            checkAgainstTwin("ReLU6.forward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { ReLU6.forward(output: outputs[0], input: x, count: count) }
                else { ReLU6.naiveForward(output: outputs[0], input: x, count: count) }
            }
            checkAgainstTwin("ReLU6.forward in place", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                for index in 0..<count { outputs[0][index] = x[index] * 1.5 }
                if fast { ReLU6.forward(output: outputs[0], input: outputs[0], count: count) }
                else { ReLU6.naiveForward(output: outputs[0], input: outputs[0], count: count) }
            }
            checkAgainstTwin("ReLU6.backward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { ReLU6.backward(dInput: outputs[0], dOutput: dOutput, output: y6, count: count) }
                else { ReLU6.naiveBackward(dInput: outputs[0], dOutput: dOutput, output: y6, count: count) }
            }
            checkAgainstTwin("ReLU6.backwardInPlace", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { ReLU6.backwardInPlace(gradient: outputs[0], output: y6, count: count) }
                else { ReLU6.naiveBackwardInPlace(gradient: outputs[0], output: y6, count: count) }
            }
            checkAgainstTwin("HardSwish.forward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { HardSwish.forward(output: outputs[0], input: x, count: count) }
                else { HardSwish.naiveForward(output: outputs[0], input: x, count: count) }
            }
            checkAgainstTwin("HardSwish.backward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { HardSwish.backward(dInput: outputs[0], dOutput: dOutput, input: x, count: count) }
                else { HardSwish.naiveBackward(dInput: outputs[0], dOutput: dOutput, input: x, count: count) }
            }
            checkAgainstTwin("HardSwish.backwardInPlace", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { HardSwish.backwardInPlace(gradient: outputs[0], input: x, count: count) }
                else { HardSwish.naiveBackwardInPlace(gradient: outputs[0], input: x, count: count) }
            }
            checkAgainstTwin("HardSigmoid.forward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { HardSigmoid.forward(output: outputs[0], input: x, count: count) }
                else { HardSigmoid.naiveForward(output: outputs[0], input: x, count: count) }
            }
            checkAgainstTwin("HardSigmoid.backward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { HardSigmoid.backward(dInput: outputs[0], dOutput: dOutput, input: x, count: count) }
                else { HardSigmoid.naiveBackward(dInput: outputs[0], dOutput: dOutput, input: x, count: count) }
            }
            checkAgainstTwin("HardSigmoid.backwardInPlace", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                if fast { HardSigmoid.backwardInPlace(gradient: outputs[0], input: x, count: count) }
                else { HardSigmoid.naiveBackwardInPlace(gradient: outputs[0], input: x, count: count) }
            }
            // The in-place backwards equal the accumulating ones into zeros, bit for bit.
            for kind in 0..<3 {
                var accumulated = [Float](repeating: 0, count: count)
                var inPlace = dOutput
                switch kind {
                case 0:
                    ReLU6.backward(dInput: &accumulated, dOutput: dOutput, output: y6, count: count)
                    ReLU6.backwardInPlace(gradient: &inPlace, output: y6, count: count)
                case 1:
                    HardSwish.backward(dInput: &accumulated, dOutput: dOutput, input: x, count: count)
                    HardSwish.backwardInPlace(gradient: &inPlace, input: x, count: count)
                default:
                    HardSigmoid.backward(dInput: &accumulated, dOutput: dOutput, input: x, count: count)
                    HardSigmoid.backwardInPlace(gradient: &inPlace, input: x, count: count)
                }
                #expect(inPlace == accumulated, "kind \(kind) count \(count): in place differs from backward into zeros")
            }
        }
    }

    /// Forward values and derivatives at and beside the kinks, as torch 2.13 computes them
    /// (float64: `torch.nn.functional.hardswish(x).backward()` etc.; hardsigmoid's derivative is
    /// PyTorch's float constant 1/6 even in float64, here in Float).
    @Test func kinksMatchPyTorch() {
        let x: [Float] = [-3, 3, 0, 6, -3.0000002, 2.9999, -4, 7, 1.5]
        let hardSwishSlope: [Float] = [0, 1, 0.5, 1, 0, 2.9999 / 3 + 0.5, 0, 1, 1]
        let hardSigmoidSlope: [Float] = [0, 0, 1.0 / 6, 0, 0, 1.0 / 6, 0, 0, 1.0 / 6]
        let relu6Slope: [Float] = [0, 1, 0, 0, 0, 1, 0, 0, 1]
        let ones = [Float](repeating: 1, count: x.count)
        var slope = [Float](repeating: 0, count: x.count)
        HardSwish.backward(dInput: &slope, dOutput: ones, input: x, count: x.count)
        #expect(slope == hardSwishSlope, "hardswish' \(slope)")
        slope = [Float](repeating: 0, count: x.count)
        HardSigmoid.backward(dInput: &slope, dOutput: ones, input: x, count: x.count)
        #expect(slope == hardSigmoidSlope, "hardsigmoid' \(slope)")
        var y = [Float](repeating: 0, count: x.count)
        ReLU6.forward(output: &y, input: x, count: x.count)
        #expect(y == [0, 3, 0, 6, 0, 2.9999, 0, 6, 1.5])
        slope = [Float](repeating: 0, count: x.count)
        ReLU6.backward(dInput: &slope, dOutput: ones, output: y, count: x.count)
        #expect(slope == relu6Slope, "relu6' \(slope)")
        HardSwish.forward(output: &y, input: x, count: x.count)
        #expect(y[0] == 0 && y[1] == 3 && y[2] == 0 && y[3] == 6 && y[8] == 1.5 * 4.5 / 6)
        HardSigmoid.forward(output: &y, input: x, count: x.count)
        #expect(y[0] == 0 && y[1] == 1 && y[2] == 0.5 && y[8] == Float(4.5) / 6)
    }

    /// Central differences in Double, away from the kinks (|x - kink| >= 0.05, step 1e-5).
    @Test func activationGradientsMatchCentralDifferences() {
        let count = 40
        var random = SeededRandom(seed: 19)
        var x: [Double] = []
        while x.count < count {
            let value = random.double(-8, 8)
            if [-3.0, 0, 3, 6].allSatisfy({ abs(value - $0) >= 0.05 }) { x.append(value) }
        }
        let weights = (0..<count).map { _ in random.double() }
        for kind in ["relu6", "hardswish", "hardsigmoid"] {
            func forward(_ input: [Double]) -> [Double] {
                var y = [Double](repeating: 0, count: count)
                switch kind {
                case "relu6": ReLU6.naiveForward(output: &y, input: input, count: count)
                case "hardswish": HardSwish.naiveForward(output: &y, input: input, count: count)
                default: HardSigmoid.naiveForward(output: &y, input: input, count: count)
                }
                return y
            }
            func loss(_ input: [Double]) -> Double { zip(forward(input), weights).reduce(0) { $0 + $1.0 * $1.1 } }
            var dX = [Double](repeating: 0, count: count)
            switch kind {
            case "relu6": ReLU6.naiveBackward(dInput: &dX, dOutput: weights, output: forward(x), count: count)
            case "hardswish": HardSwish.naiveBackward(dInput: &dX, dOutput: weights, input: x, count: count)
            default: HardSigmoid.naiveBackward(dInput: &dX, dOutput: weights, input: x, count: count)
            }
            #expect(dX.filter { $0 != 0 }.count > count / 4, "\(kind): the check is vacuous")
            var probe = x
            let (error, index) = finiteDifferenceError(x: &probe, analytic: dX, loss: loss)
            print("\(kind) gradient vs central differences (Double): worst relative error \(error)")
            #expect(error < 1e-8, "\(kind) gradient: error \(error) at \(index) (x = \(x[index]))")
        }
    }

    // MARK: Dropout

    /// Fast forward against the twin (output and mask bit for bit), in place too, for several
    /// probabilities and tensor offsets; fast backward and in-place backward against theirs.
    @Test func dropoutMatchesTwin() {
        for (seed, count) in Self.sizes.enumerated() {
            for probability in [0.0, 0.2, 0.5, 0.9] {
                var random = SeededRandom(seed: UInt64(seed))
                let x = random.floats(count)
                let dOutput = random.floats(count)
                let key = random.next()
                let threshold = Dropout.threshold(probability: probability), scale = Dropout.scale(probability: probability)
                let first = 64 * (seed % 3)
                let words = (count + 31) / 32
                var masks = [[UInt32]](repeating: [UInt32](repeating: 0xDEAD_BEEF, count: words + 2), count: 2)
                let shape = "count \(count) p \(probability) first \(first)"
                checkAgainstTwin("Dropout.forward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                    masks[fast ? 0 : 1].withUnsafeMutableBufferPointer { mask in
                        if fast { Dropout.forward(output: outputs[0], mask: mask.baseAddress!, input: x, count: count, first: first, key: key, threshold: threshold, scale: scale) }
                        else { Dropout.naiveForward(output: outputs[0], mask: mask.baseAddress!, input: x, count: count, first: first, key: key, threshold: threshold, scale: scale) }
                    }
                }
                #expect(masks[0] == masks[1], "Dropout mask \(shape)")
                #expect(masks[0][words] == 0xDEAD_BEEF && masks[0][words + 1] == 0xDEAD_BEEF, "Dropout mask written past its words, \(shape)")
                let mask = masks[1]
                checkAgainstTwin("Dropout.forward in place", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                    var scratch = [UInt32](repeating: 0, count: words)
                    for index in 0..<count { outputs[0][index] = x[index] }
                    if fast { Dropout.forward(output: outputs[0], mask: &scratch, input: outputs[0], count: count, first: first, key: key, threshold: threshold, scale: scale) }
                    else { Dropout.naiveForward(output: outputs[0], mask: &scratch, input: outputs[0], count: count, first: first, key: key, threshold: threshold, scale: scale) }
                    #expect(scratch == Array(mask.prefix(words)))
                }
                checkAgainstTwin("Dropout.backward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                    if fast { Dropout.backward(dInput: outputs[0], dOutput: dOutput, mask: mask, count: count, scale: scale) }
                    else { Dropout.naiveBackward(dInput: outputs[0], dOutput: dOutput, mask: mask, count: count, scale: scale) }
                }
                checkAgainstTwin("Dropout.backwardInPlace", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                    if fast { Dropout.backwardInPlace(gradient: outputs[0], mask: mask, count: count, scale: scale) }
                    else { Dropout.naiveBackwardInPlace(gradient: outputs[0], mask: mask, count: count, scale: scale) }
                }
            }
        }
    }

    /// The mask does not depend on how the tensor is split (a range drawn alone from its first
    /// index gives the whole tensor's bits), the drop rate is p, kept values are x / (1 - p)
    /// in Float as PyTorch scales them, and another key gives another mask.
    @Test func dropoutMaskIsCounterBasedWithRateP() {
        let count = 64 * 1000 + 17
        var random = SeededRandom(seed: 5)
        let x = random.floats(count, 0.5, 1)
        for probability in [0.1, 0.2, 0.5] {
            let threshold = Dropout.threshold(probability: probability), scale = Dropout.scale(probability: probability)
            var whole = [Float](repeating: 0, count: count), wholeMask = [UInt32](repeating: 0, count: (count + 31) / 32)
            Dropout.forward(output: &whole, mask: &wholeMask, input: x, count: count, first: 0, key: 42, threshold: threshold, scale: scale)
            var split = [Float](repeating: 0, count: count), splitMask = wholeMask.map { _ in UInt32(0) }
            let cut = 64 * 377
            split.withUnsafeMutableBufferPointer { out in
                splitMask.withUnsafeMutableBufferPointer { mask in
                    x.withUnsafeBufferPointer { input in
                        Dropout.forward(output: out.baseAddress!, mask: mask.baseAddress!, input: input.baseAddress!, count: cut, first: 0, key: 42, threshold: threshold, scale: scale)
                        Dropout.forward(output: out.baseAddress! + cut, mask: mask.baseAddress! + cut / 32, input: input.baseAddress! + cut,
                                        count: count - cut, first: cut, key: 42, threshold: threshold, scale: scale)
                    }
                }
            }
            #expect(split == whole && splitMask == wholeMask, "p \(probability): the split draws differ")
            let dropped = whole.filter { $0 == 0 }.count
            let rate = Double(dropped) / Double(count)
            // Binomial standard deviation sqrt(p(1-p)/n) <= 0.002; 5 of them.
            #expect(abs(rate - probability) < 0.01, "p \(probability): dropped \(rate)")
            for index in 0..<count where whole[index] != 0 {
                #expect(whole[index] == x[index] * Float(1 / (1 - probability)))
                break
            }
            var other = [Float](repeating: 0, count: count), otherMask = wholeMask
            Dropout.forward(output: &other, mask: &otherMask, input: x, count: count, first: 0, key: 43, threshold: threshold, scale: scale)
            let agreeing = zip(otherMask, wholeMask).reduce(0) { $0 + (~($1.0 ^ $1.1)).nonzeroBitCount }
            // Independent masks agree on p^2 + (1-p)^2 of the bits.
            let expected = probability * probability + (1 - probability) * (1 - probability)
            #expect(abs(Double(agreeing) / Double(32 * otherMask.count) - expected) < 0.02, "p \(probability): keys 42 and 43 agree on \(agreeing) bits")
        }
        #expect(Dropout.threshold(probability: 0) == 0 && Dropout.scale(probability: 0) == 1)
    }

    // MARK: Per-channel scale

    @Test func channelScaleMatchesTwin() throws {
        let context = try KernelContext(threads: 2)
        for channels in [1, 3] {
            for batch in [1, 2, 5] {
                for (seed, plane) in (oddSizes + [49, 300 * 300 / 4]).enumerated() {
                    for flat in [true, false] {
                        let strides = flat ? ChannelScale.Strides(sample: channels, channel: 1) : ChannelScale.Strides(sample: 1, channel: batch)
                        var random = SeededRandom(seed: UInt64(seed))
                        let count = channels * batch * plane
                        let x = random.floats(count), dOutput = random.floats(count), scale = random.floats(channels * batch)
                        let shape = "C \(channels) N \(batch) P \(plane) \(flat ? "flat" : "Cx1x1") scale"
                        checkAgainstTwin("ChannelScale.forward", shape: shape, seed: UInt64(seed), outputCounts: [count], tolerance: 0) { outputs, fast in
                            if fast { ChannelScale.forward(output: outputs[0], input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides, context: context) }
                            else { ChannelScale.naiveForward(output: outputs[0], input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides) }
                        }
                        checkAgainstTwin("ChannelScale.backward", shape: shape, seed: UInt64(seed), outputCounts: [count, channels * batch], tolerance: 1e-5) { outputs, fast in
                            if fast { ChannelScale.backward(dInput: outputs[0], dScale: outputs[1], dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides, context: context) }
                            else { ChannelScale.naiveBackward(dInput: outputs[0], dScale: outputs[1], dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides) }
                        }
                        // Either gradient alone.
                        checkAgainstTwin("ChannelScale.backward dScale only", shape: shape, seed: UInt64(seed), outputCounts: [channels * batch], tolerance: 1e-5) { outputs, fast in
                            if fast { ChannelScale.backward(dInput: nil, dScale: outputs[0], dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides, context: context) }
                            else { ChannelScale.naiveBackward(dInput: nil, dScale: outputs[0], dOutput: dOutput, input: x, scale: scale, channels: channels, batch: batch, plane: plane, strides: strides) }
                        }
                    }
                }
            }
        }
    }

    /// loss = sum r * (x * s per channel): dx and ds against central differences in Double,
    /// for both scale layouts.
    @Test func channelScaleGradientsMatchCentralDifferences() {
        let channels = 3, batch = 2, plane = 5
        var random = SeededRandom(seed: 23)
        let r = (0..<channels * batch * plane).map { _ in random.double() }
        for flat in [true, false] {
            let strides = flat ? ChannelScale.Strides(sample: channels, channel: 1) : ChannelScale.Strides(sample: 1, channel: batch)
            var x = (0..<channels * batch * plane).map { _ in random.double() }
            var s = (0..<channels * batch).map { _ in random.double() }
            func loss(_ x: [Double], _ s: [Double]) -> Double {
                var y = [Double](repeating: 0, count: x.count)
                ChannelScale.naiveForward(output: &y, input: x, scale: s, channels: channels, batch: batch, plane: plane, strides: strides)
                return zip(y, r).reduce(0) { $0 + $1.0 * $1.1 }
            }
            var dX = [Double](repeating: 0, count: x.count), dS = [Double](repeating: 0, count: s.count)
            dX.withUnsafeMutableBufferPointer { dX in
                dS.withUnsafeMutableBufferPointer { dS in
                    ChannelScale.naiveBackward(dInput: dX.baseAddress!, dScale: dS.baseAddress!, dOutput: r, input: x, scale: s,
                                               channels: channels, batch: batch, plane: plane, strides: strides)
                }
            }
            let fixedS = s, fixedX = x
            let (errorX, indexX) = finiteDifferenceError(x: &x, analytic: dX) { loss($0, fixedS) }
            let (errorS, indexS) = finiteDifferenceError(x: &s, analytic: dS) { loss(fixedX, $0) }
            print("ChannelScale (\(flat ? "flat" : "Cx1x1") scale) vs central differences (Double): dx \(errorX), ds \(errorS)")
            #expect(errorX < 1e-8 && errorS < 1e-8, "ChannelScale gradients: dx \(errorX) at \(indexX), ds \(errorS) at \(indexS)")
        }
    }
}
