/// IEEE binary16 ("half", fp16) rounding of float buffers: the numerics of the fp16 training
/// mode (`--precision fp16`) computed on fp32 hardware. A float that passed through `round`
/// holds exactly a binary16 value, so a later fp32 product of two such values is exact (11 x 11
/// significand bits fit in fp32's 24): fp32 arithmetic over rounded operands is what an
/// fp16 x fp16 -> fp32 kernel (NEON FMLAL) computes, given the same order of summation.
public enum Half {
    /// The largest finite binary16 value, (2 - 2^-10) x 2^15.
    public static let largest: Float = 65504

    /// Replaces each of `count` floats by the nearest binary16 value: round to nearest, ties to
    /// even; magnitudes from 65520 up (the midpoint past 65504) become +-infinity; binary16
    /// subnormals (multiples of 2^-24 below 2^-14) are kept, smaller values round to +-0;
    /// NaN stays NaN (quiet). The conversion pair compiles to F16C `vcvtps2ph`/`vcvtph2ps` on
    /// x86_64 (built for haswell) and to `fcvtn`/`fcvtl` on aarch64, 8 or 4 lanes at a time.
    public static func round(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        round(output: buffer, input: buffer, count: count)
    }

    /// `round` out of place: `output[i]` = the nearest binary16 value of `input[i]` (the two
    /// may be the same buffer).
    public static func round(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        for index in 0..<count {
            output[index] = Float(Float16(input[index]))
        }
    }

    /// The naive twin of `round` (its test oracle): the same rounding from the float's bits,
    /// without any Float16 arithmetic, one value at a time.
    public static func naiveRound(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        for index in 0..<count {
            buffer[index] = naiveRound(buffer[index])
        }
    }

    /// The nearest binary16 value of `value` from its bits: a float is (1.m) x 2^e with a
    /// 24-bit significand; binary16 keeps 11 bits for e >= -14 (normal) and fewer below
    /// (subnormal: a fixed quantum 2^-24), so `shift` low significand bits are dropped with
    /// round-to-nearest-even on the integer significand.
    public static func naiveRound(_ value: Float) -> Float {
        let bits = value.bitPattern
        let negative = bits >> 31 != 0
        let biased = Int((bits >> 23) & 0xFF)
        let fraction = bits & 0x7F_FFFF
        if biased == 0xFF { return value }  // infinity, NaN
        func signed(_ magnitude: Float) -> Float { negative ? -magnitude : magnitude }
        if biased == 0 { return signed(0) }  // fp32 subnormals are far below 2^-25
        let exponent = biased - 127
        if exponent >= 16 { return signed(.infinity) }
        let shift = exponent >= -14 ? 13 : 13 + (-14 - exponent)
        if shift > 24 { return signed(0) }  // below 2^-25: nearer to 0 than to 2^-24
        let significand = fraction | 0x80_0000
        var kept = significand >> UInt32(shift)
        let dropped = significand & ((1 << UInt32(shift)) - 1)
        let halfway: UInt32 = 1 << UInt32(shift - 1)
        if dropped > halfway || (dropped == halfway && kept & 1 == 1) { kept += 1 }
        // kept x 2^(exponent - 23 + shift): at most 2^11 x 2^5, exact in fp32.
        let magnitude = Float(sign: .plus, exponent: exponent - 23 + shift, significand: Float(kept))
        return signed(magnitude > largest ? .infinity : magnitude)
    }

    /// Multiplies `count` floats by `factor` and tells whether every product is finite (the
    /// unscaling of loss-scaled gradients: a power-of-two factor changes no bit but the
    /// exponent, unless a product leaves the normal range).
    public static func scaleCheckingFinite(_ buffer: UnsafeMutablePointer<Float>, count: Int, by factor: Float) -> Bool {
        // x x 0 is 0 for finite x and NaN for infinities and NaN: a sum that vectorises.
        var poison: Float = 0
        for index in 0..<count {
            let product = buffer[index] * factor
            buffer[index] = product
            poison += product * 0
        }
        return poison == 0
    }
}
