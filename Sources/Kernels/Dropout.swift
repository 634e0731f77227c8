/// Inverted dropout, as PyTorch's: in training each element is zeroed with probability p and
/// a kept one is multiplied by Float(1 / (1 - p)); at evaluation it is the identity (the layer
/// calls no kernel then).
///
/// The draws are counter-based: element i of a tensor draws `draw(i, key)`, a hash of its
/// index and a 64-bit key, so any range of the tensor can be drawn alone (threads take ranges)
/// and a key gives the same mask on every machine, thread count and vector width. The model
/// derives the key from the trainer's seed, the optimizer step and the node (see
/// `Model.dropoutSeed`), so nothing has to be saved for a resumed run to draw the same masks.
/// The mask is kept as bits for backward (bit i % 32 of word i / 32 set when element i is kept).
/// - Shapes: values [count] (any layout); mask [(count + 31) / 32] words; `first` is the index
///   of element 0 within the whole tensor (a multiple of 32 when a range is drawn alone).
public enum Dropout {
    /// An element is dropped when its 24-bit draw is below this: round(p * 2^24), so the drop
    /// rate is p within 3e-8.
    public static func threshold(probability: Double) -> UInt32 {
        UInt32((probability * 16_777_216).rounded())
    }

    /// The factor of a kept element, 1 / (1 - p) rounded to Float (PyTorch's `scale`).
    public static func scale(probability: Double) -> Float {
        Float(1 / (1 - probability))
    }

    /// Chris Wellons' "lowbias32" integer hash (full avalanche, bias 0.17).
    @inline(__always)
    static func mix(_ value: UInt32) -> UInt32 {
        var x = value
        x ^= x >> 16
        x &*= 0x7FEB_352D
        x ^= x >> 15
        x &*= 0x846C_A68B
        x ^= x >> 16
        return x
    }

    @inline(__always)
    static func mix(_ value: WordVector) -> WordVector {
        var x = value
        x ^= x &>> 16
        x &*= 0x7FEB_352D
        x ^= x &>> 15
        x &*= 0x846C_A68B
        x ^= x &>> 16
        return x
    }

    /// The 24-bit uniform draw of element `index` under `key`: two hash rounds, one per half of the key.
    @inline(__always)
    public static func draw(_ index: Int, key: UInt64) -> UInt32 {
        mix(mix(UInt32(truncatingIfNeeded: index) &+ UInt32(truncatingIfNeeded: key)) ^ UInt32(truncatingIfNeeded: key >> 32)) >> 8
    }

    /// The test oracle for `forward`. `output` may be the same buffer as `input`.
    public static func naiveForward(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>, input: UnsafePointer<Float>,
                                    count: Int, first: Int, key: UInt64, threshold: UInt32, scale: Float) {
        for word in 0..<ReLU.maskWords(count) { mask[word] = 0 }
        for index in 0..<count {
            let kept = draw(first + index, key: key) >= threshold
            output[index] = kept ? input[index] * scale : 0
            if kept { mask[index / 32] |= 1 << UInt32(index % 32) }
        }
    }

    /// y = x * scale where kept, else 0, and the mask of kept elements. In place allowed: each
    /// element is read before it is written.
    public static func forward(output: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<UInt32>, input: UnsafePointer<Float>,
                               count: Int, first: Int, key: UInt64, threshold: UInt32, scale: Float) {
        let width = FloatVector.scalarCount
        let zero = FloatVector(repeating: 0), factor = FloatVector(repeating: scale)
        let low = WordVector(repeating: UInt32(truncatingIfNeeded: key)), high = WordVector(repeating: UInt32(truncatingIfNeeded: key >> 32))
        let limit = WordVector(repeating: threshold)
        var lanes = WordVector(repeating: 0), laneBits = WordVector(repeating: 0)
        for lane in 0..<width { lanes[lane] = UInt32(lane); laneBits[lane] = 1 << UInt32(lane) }
        var start = 0
        var word = 0
        while start < count {
            let end = min(start + 32, count)
            var bits: UInt32 = 0
            var index = start
            // Whole vectors inside the word; each gives `width` bits of the mask.
            while index + width <= end {
                let counters = WordVector(repeating: UInt32(truncatingIfNeeded: first + index)) &+ lanes
                let kept = (mix(mix(counters &+ low) ^ high) &>> 8) .>= limit
                output.storeVector(zero.replacing(with: input.loadVector(at: index) * factor, where: kept), at: index)
                bits |= WordVector(repeating: 0).replacing(with: laneBits, where: kept).wrappedSum() << UInt32(index - start)
                index += width
            }
            while index < end {
                let kept = draw(first + index, key: key) >= threshold
                output[index] = kept ? input[index] * scale : 0
                if kept { bits |= 1 << UInt32(index - start) }
                index += 1
            }
            mask[word] = bits
            word += 1
            start = end
        }
    }

    /// The test oracle for `backward`.
    public static func naiveBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, mask: UnsafePointer<UInt32>,
                                     count: Int, scale: Float) {
        for index in 0..<count where mask[index / 32] & (1 << UInt32(index % 32)) != 0 {
            dInput[index] += dOutput[index] * scale
        }
    }

    /// dInput += dOutput * scale where kept.
    public static func backward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>, mask: UnsafePointer<UInt32>,
                                count: Int, scale: Float) {
        forEachVector(count: count, mask: mask) { index, kept in
            let passed = FloatVector(repeating: 0).replacing(with: dOutput.loadVector(at: index) * FloatVector(repeating: scale), where: kept)
            dInput.storeVector(dInput.loadVector(at: index) + passed, at: index)
        } scalar: { index, kept in
            if kept { dInput[index] += dOutput[index] * scale }
        }
    }

    /// The test oracle for `backwardInPlace`.
    public static func naiveBackwardInPlace(gradient: UnsafeMutablePointer<Float>, mask: UnsafePointer<UInt32>, count: Int, scale: Float) {
        for index in 0..<count {
            gradient[index] = mask[index / 32] & (1 << UInt32(index % 32)) != 0 ? gradient[index] * scale : 0
        }
    }

    /// gradient = gradient * scale where kept, else 0 (the input's gradient shares the buffer).
    public static func backwardInPlace(gradient: UnsafeMutablePointer<Float>, mask: UnsafePointer<UInt32>, count: Int, scale: Float) {
        forEachVector(count: count, mask: mask) { index, kept in
            let passed = FloatVector(repeating: 0).replacing(with: gradient.loadVector(at: index) * FloatVector(repeating: scale), where: kept)
            gradient.storeVector(passed, at: index)
        } scalar: { index, kept in
            gradient[index] = kept ? gradient[index] * scale : 0
        }
    }

    /// Visits the elements a vector at a time with the mask's lanes expanded (whole vectors
    /// inside a word), the rest one at a time.
    @inline(__always)
    static func forEachVector(count: Int, mask: UnsafePointer<UInt32>,
                              vector: (Int, SIMDMask<FloatVector.MaskStorage>) -> Void, scalar: (Int, Bool) -> Void) {
        let width = FloatVector.scalarCount
        var laneBits = WordVector(repeating: 0)
        for lane in 0..<width { laneBits[lane] = 1 << UInt32(lane) }
        var start = 0
        var word = 0
        while start < count {
            let end = min(start + 32, count)
            let bits = mask[word]
            var index = start
            while index + width <= end {
                let lanes = WordVector(repeating: bits >> UInt32(index - start)) & laneBits
                vector(index, lanes .!= WordVector(repeating: 0))
                index += width
            }
            while index < end {
                scalar(index, bits & (1 << UInt32(index - start)) != 0)
                index += 1
            }
            word += 1
            start = end
        }
    }
}
