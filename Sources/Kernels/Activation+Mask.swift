/// ReLU with its backward mask kept as bits (one per element, 32 per word) instead of the
/// Float output: a partial update that keeps no activation for frozen weights keeps only
/// these bits for each ReLU (1/32 of the output's memory).
/// - Shapes: values [count]; mask [(count + 31) / 32] words, bit i % 32 of word i / 32 set when y[i] > 0.
extension ReLU {
    /// Words a mask of `count` elements needs.
    @inline(__always)
    public static func maskWords(_ count: Int) -> Int { (count + 31) / 32 }

    /// The test oracle for `forwardMasked`.
    public static func naiveForwardMasked(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>,
                                          input: UnsafePointer<Float>, count: Int) {
        for word in 0..<maskWords(count) { mask[word] = 0 }
        for index in 0..<count {
            let value = input[index]
            output[index] = value > 0 ? value : 0
            if value > 0 { mask[index / 32] |= 1 << UInt32(index % 32) }
        }
    }

    /// y = max(x, 0) (in place allowed, as `forward`), and the mask of y > 0.
    public static func forwardMasked(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>,
                                     input: UnsafePointer<Float>, count: Int) {
        forward(output: output, input: input, count: count)
        var start = 0
        var word = 0
        while start < count {
            let end = min(start + 32, count)
            var bits: UInt32 = 0
            for index in start..<end where output[index] > 0 { bits |= 1 << UInt32(index - start) }
            mask[word] = bits
            word += 1
            start = end
        }
    }

    /// The test oracle for `backwardMasked`.
    public static func naiveBackwardMasked(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                           mask: UnsafePointer<UInt32>, count: Int) {
        for index in 0..<count where mask[index / 32] & (1 << UInt32(index % 32)) != 0 {
            dInput[index] += dOutput[index]
        }
    }

    /// dInput += dOutput where the mask bit is set.
    public static func backwardMasked(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                      mask: UnsafePointer<UInt32>, count: Int) {
        var start = 0
        var word = 0
        while start < count {
            let end = min(start + 32, count)
            var bits = mask[word]
            // Visit set bits only: a dead ReLU costs one word test.
            while bits != 0 {
                let bit = bits.trailingZeroBitCount
                dInput[start + bit] += dOutput[start + bit]
                bits &= bits - 1
            }
            word += 1
            start = end
        }
    }

    /// gradient = 0 where the mask bit is clear (the in-place form of `backwardMasked`).
    public static func backwardMaskedInPlace(gradient: UnsafeMutablePointer<Float>, mask: UnsafePointer<UInt32>, count: Int) {
        var start = 0
        var word = 0
        while start < count {
            let end = min(start + 32, count)
            let bits = mask[word]
            if bits != UInt32.max || end - start < 32 {
                for index in start..<end where bits & (1 << UInt32(index - start)) == 0 { gradient[index] = 0 }
            }
            word += 1
            start = end
        }
    }
}
