// The B-panel packing of the implicit-GEMM 3x3 convolution (Conv2D.packImplicitPanel), interior
// case, with 16-lane vectors: one load and one store per packed row of 16 floats, the padding
// lanes zeroed by a mask (AVX-512 zero-masking), where the AVX2 version needs two loads, two
// blends and two stores. Same values as the AVX2 packing, so the GEMM result is unchanged.

#if arch(x86_64)
/// Packs col[p0 ..< p0 + kc, j0 ..< j0 + 16] of a 3x3 stride-1 pad-1 convolution into `dst`
/// (kc rows of 16 floats): row p = (channel, tap) holds input[channel, j + (ky - 1) W + (kx - 1)]
/// for the panel's 16 output columns j, or 0 where the tap falls outside the image.
/// `rows` and `columns` are the output row and column of each lane; the caller guarantees that
/// every unmasked and masked load stays inside the input (j0 - W - 1 >= 0 and
/// j0 + 16 + W < planeCount).
@inline(never)
public func widePackImplicitPanel(input: UnsafePointer<Float>, planeCount: Int, height: Int, width: Int,
                                  p0: Int, kc: Int, j0: Int, rows: SIMD16<Int32>, columns: SIMD16<Int32>,
                                  into dst: UnsafeMutablePointer<Float>) {
    typealias Mask = SIMDMask<SIMD16<Int32>>
    let top = rows .>= 1, bottom = rows .<= SIMD16<Int32>(repeating: Int32(truncatingIfNeeded: height - 2))
    let left = columns .>= 1, right = columns .<= SIMD16<Int32>(repeating: Int32(truncatingIfNeeded: width - 2))
    let all = Mask(repeating: true)
    let masks: (Mask, Mask, Mask, Mask, Mask, Mask, Mask, Mask, Mask) =
        (top .& left, top, top .& right, left, all, right, bottom .& left, bottom, bottom .& right)
    @inline(__always) func mask(_ tap: Int) -> Mask {
        switch tap {
        case 0: return masks.0
        case 1: return masks.1
        case 2: return masks.2
        case 3: return masks.3
        case 4: return masks.4
        case 5: return masks.5
        case 6: return masks.6
        case 7: return masks.7
        default: return masks.8
        }
    }
    @inline(__always) func pack(_ channelBase: UnsafePointer<Float>, _ tap: Int, _ out: UnsafeMutablePointer<Float>) {
        let source = channelBase + (tap / 3 - 1) * width + (tap % 3 - 1)
        let value = UnsafeRawPointer(source).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(out).storeBytes(of: value.replacing(with: 0, where: .!mask(tap)), as: SIMD16<Float>.self)
    }
    var channel = p0 / 9, tap = p0 % 9
    var out = dst
    var k = 0
    // A K block that starts or ends inside a channel goes row by row there.
    while k < kc && (tap != 0 || kc - k < 9) {
        pack(input + channel * planeCount + j0, tap, out)
        out += 16; k += 1; tap += 1
        if tap == 9 { tap = 0; channel += 1 }
    }
    while k + 9 <= kc {
        let base = input + channel * planeCount + j0
        pack(base, 0, out); pack(base, 1, out + 16); pack(base, 2, out + 32)
        pack(base, 3, out + 48); pack(base, 4, out + 64); pack(base, 5, out + 80)
        pack(base, 6, out + 96); pack(base, 7, out + 112); pack(base, 8, out + 128)
        out += 144; k += 9; channel += 1
    }
    while k < kc {
        pack(input + channel * planeCount + j0, tap, out)
        out += 16; k += 1; tap += 1
        if tap == 9 { tap = 0; channel += 1 }
    }
}
#endif
