// The 3x3 weight gradient with output channels in the lanes, for CPUs with AVX-512 (driver:
// Kernels/Conv2D+WeightLanes.swift). dW^T[tap, co] = sum over positions p of in[tap-shifted p] *
// dOut^T[p, co] is a GEMM whose B rows are the output channels of one position (dOut transposed,
// 16 channels per zmm) and whose A elements are single input pixels, broadcast straight from the
// zero-padded planes by the FMA's embedded broadcast: no im2col, no packing of A, no lane sums,
// and a 4-byte broadcast never spans two cache lines (the correlation tile's 64-byte shifted
// loads did, see Correlate.swift).

#if arch(x86_64)
/// sums[(c * 9 + tap) * sumStride + 16 v + lane] += sum over the block's output positions p of
/// input[c * channelFloats + tap-shifted p] * bt[p * btStride + 16 v + lane], for `channels`
/// input channels (1 or 2) and `vectors` 16-channel vectors (1 or 2, at most 2 with 2 channels:
/// 18 zmm accumulators).
/// - Input: padded planes, image n at n * imageFloats, rows of rowStride floats; output pixel
///   (oh, ow) reads tap (ky, kx) at (stride * oh + ky) * rowStride + stride * ow + kx.
/// - bt: one row of btStride floats per output position, images then rows then columns.
/// Per lane one FMA chain per sum, positions in order: the sums do not depend on how the
/// caller splits channels over threads.
@inline(never)
public func wideWeightLanesTile(channels: Int, vectors: Int, input: UnsafePointer<Float>, channelFloats: Int,
                                rowStride: Int, imageFloats: Int, stride: Int, images: Int, outHeight: Int,
                                outWidth: Int, bt: UnsafePointer<Float>, btStride: Int,
                                sums: UnsafeMutablePointer<Float>, sumStride: Int) {
    switch (channels, vectors) {
    case (2, 1):
        laneTile(channels: 2, vectors: 1, input: input, channelFloats: channelFloats, rowStride: rowStride,
                 imageFloats: imageFloats, stride: stride, images: images, outHeight: outHeight, outWidth: outWidth,
                 bt: bt, btStride: btStride, sums: sums, sumStride: sumStride)
    case (1, 2):
        laneTile(channels: 1, vectors: 2, input: input, channelFloats: channelFloats, rowStride: rowStride,
                 imageFloats: imageFloats, stride: stride, images: images, outHeight: outHeight, outWidth: outWidth,
                 bt: bt, btStride: btStride, sums: sums, sumStride: sumStride)
    default:
        precondition(channels == 1 && vectors == 1, "wideWeightLanesTile: channels \(channels), vectors \(vectors)")
        laneTile(channels: 1, vectors: 1, input: input, channelFloats: channelFloats, rowStride: rowStride,
                 imageFloats: imageFloats, stride: stride, images: images, outHeight: outHeight, outWidth: outWidth,
                 bt: bt, btStride: btStride, sums: sums, sumStride: sumStride)
    }
}

/// The body of `wideWeightLanesTile`, inlined with constant channel and vector counts. Two
/// sets of nine named accumulators (an InlineArray of them was stored back to the stack after
/// every FMA): the second set is the second input channel (same dOut vector) or the second
/// dOut vector (same input channel).
@inline(__always)
func laneTile(channels: Int, vectors: Int, input: UnsafePointer<Float>, channelFloats: Int, rowStride: Int,
              imageFloats: Int, stride: Int, images: Int, outHeight: Int, outWidth: Int,
              bt: UnsafePointer<Float>, btStride: Int, sums: UnsafeMutablePointer<Float>, sumStride: Int) {
    let both = channels > 1 || vectors > 1
    // Where the second set's sums, pixels and dOut vector are, from the first's.
    let secondSums = channels > 1 ? 9 * sumStride : 16
    let secondInput = channels > 1 ? channelFloats : 0
    let secondB = vectors > 1 ? 16 : 0
    var first = LaneNine(sums, sumStride)
    var second = both ? LaneNine(sums + secondSums, sumStride) : LaneNine()
    var pb = bt
    let rowStep = stride &* rowStride
    for n in 0..<images {
        var row = input + n &* imageFloats
        for _ in 0..<outHeight {
            // x: the padded input at (stride oh, stride ow), the top-left tap
            var x = row
            for _ in 0..<outWidth {
                first.accumulate(x, rowStride, loadWide(pb))
                if both { second.accumulate(x + secondInput, rowStride, loadWide(pb + secondB)) }
                pb += btStride
                x += stride
            }
            row += rowStep
        }
    }
    first.store(sums, sumStride)
    if both { second.store(sums + secondSums, sumStride) }
}

/// Nine zmm accumulators, one per tap, each 16 output channels.
struct LaneNine {
    var t0 = WideVector(), t1 = WideVector(), t2 = WideVector(), t3 = WideVector(), t4 = WideVector()
    var t5 = WideVector(), t6 = WideVector(), t7 = WideVector(), t8 = WideVector()

    init() {}

    /// Loaded from sums[tap * stride ..< + 16].
    @inline(__always)
    init(_ sums: UnsafeMutablePointer<Float>, _ stride: Int) {
        t0 = loadWide(sums); t1 = loadWide(sums + stride); t2 = loadWide(sums + 2 * stride)
        t3 = loadWide(sums + 3 * stride); t4 = loadWide(sums + 4 * stride); t5 = loadWide(sums + 5 * stride)
        t6 = loadWide(sums + 6 * stride); t7 = loadWide(sums + 7 * stride); t8 = loadWide(sums + 8 * stride)
    }

    /// tap (ky, kx) += broadcast(x[ky * rowStride + kx]) * b.
    @inline(__always)
    mutating func accumulate(_ x: UnsafePointer<Float>, _ rowStride: Int, _ b: WideVector) {
        let r1 = x + rowStride, r2 = x + 2 &* rowStride
        t0 = t0.addingProduct(WideVector(repeating: x[0]), b)
        t1 = t1.addingProduct(WideVector(repeating: x[1]), b)
        t2 = t2.addingProduct(WideVector(repeating: x[2]), b)
        t3 = t3.addingProduct(WideVector(repeating: r1[0]), b)
        t4 = t4.addingProduct(WideVector(repeating: r1[1]), b)
        t5 = t5.addingProduct(WideVector(repeating: r1[2]), b)
        t6 = t6.addingProduct(WideVector(repeating: r2[0]), b)
        t7 = t7.addingProduct(WideVector(repeating: r2[1]), b)
        t8 = t8.addingProduct(WideVector(repeating: r2[2]), b)
    }

    @inline(__always)
    func store(_ sums: UnsafeMutablePointer<Float>, _ stride: Int) {
        storeWide(t0, sums); storeWide(t1, sums + stride); storeWide(t2, sums + 2 * stride)
        storeWide(t3, sums + 3 * stride); storeWide(t4, sums + 4 * stride); storeWide(t5, sums + 5 * stride)
        storeWide(t6, sums + 6 * stride); storeWide(t7, sums + 7 * stride); storeWide(t8, sums + 8 * stride)
    }
}
#endif

#if arch(x86_64)
/// dst[c * dstStride + r] = src[r * srcStride + c] for a 16 x 16 block: four rounds of the
/// perfect shuffle (row 2i takes the low halves of rows i and i + 8 interleaved, row 2i + 1 the
/// high halves), which LLVM lowers to 64 vpermt2ps. Named rows: an InlineArray of them went
/// through the stack.
@inline(never)
public func wideTranspose16(_ src: UnsafePointer<Float>, _ srcStride: Int, _ dst: UnsafeMutablePointer<Float>, _ dstStride: Int) {
    @inline(__always) func row(_ i: Int) -> WideVector { loadWide(src + i &* srcStride) }
    var r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5), r6 = row(6), r7 = row(7)
    var r8 = row(8), r9 = row(9), r10 = row(10), r11 = row(11), r12 = row(12), r13 = row(13), r14 = row(14), r15 = row(15)
    for _ in 0..<4 {
        (r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15) =
            (low(r0, r8), high(r0, r8), low(r1, r9), high(r1, r9), low(r2, r10), high(r2, r10), low(r3, r11), high(r3, r11),
             low(r4, r12), high(r4, r12), low(r5, r13), high(r5, r13), low(r6, r14), high(r6, r14), low(r7, r15), high(r7, r15))
    }
    @inline(__always) func put(_ v: WideVector, _ i: Int) { storeWide(v, dst + i &* dstStride) }
    put(r0, 0); put(r1, 1); put(r2, 2); put(r3, 3); put(r4, 4); put(r5, 5); put(r6, 6); put(r7, 7)
    put(r8, 8); put(r9, 9); put(r10, 10); put(r11, 11); put(r12, 12); put(r13, 13); put(r14, 14); put(r15, 15)
}

/// a0 b0 a1 b1 ... a7 b7.
@inline(__always)
func low(_ a: WideVector, _ b: WideVector) -> WideVector {
    WideVector(a[0], b[0], a[1], b[1], a[2], b[2], a[3], b[3], a[4], b[4], a[5], b[5], a[6], b[6], a[7], b[7])
}

/// a8 b8 a9 b9 ... a15 b15.
@inline(__always)
func high(_ a: WideVector, _ b: WideVector) -> WideVector {
    WideVector(a[8], b[8], a[9], b[9], a[10], b[10], a[11], b[11], a[12], b[12], a[13], b[13], a[14], b[14], a[15], b[15])
}
#endif

#if arch(x86_64)
/// One output channel of a 3x3 convolution of one input channel (cnn-s's and resnet8's first
/// layers) over one image, with 16-lane vectors: out[y * width + x] = sum over taps (ky, kx) of
/// weights[ky * 3 + kx] * input[(y + ky) * rowStride + x + kx] for y < height and x < width (at
/// least 16), with `input` at the zero-padded plane's top-left tap. Each row in segments of 16
/// columns, the last one overlapping the one before when width is not a multiple of 16 (it
/// writes the same values again). The FMA chain per lane is the AVX2 nine-tap loop's
/// (Kernels/Conv2D+NineTap.swift): the first tap's product, then taps 1 to 8 in order.
///
/// One channel's plane at a time, so the stores run down one output plane. Written one row at a
/// time with every output channel per segment (the nine pixel vectors loaded once for all
/// channels), the stores went to 16-32 planes at once and the pass ran at about 10 GB/s of
/// output: nine reloads of pixels from L1 per segment cost less.
@inline(never)
public func wideNineTapPlane(input: UnsafePointer<Float>, rowStride: Int, width: Int, height: Int,
                             weights: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
    let w0 = WideVector(repeating: weights[0]), w1 = WideVector(repeating: weights[1]), w2 = WideVector(repeating: weights[2])
    let w3 = WideVector(repeating: weights[3]), w4 = WideVector(repeating: weights[4]), w5 = WideVector(repeating: weights[5])
    let w6 = WideVector(repeating: weights[6]), w7 = WideVector(repeating: weights[7]), w8 = WideVector(repeating: weights[8])
    for y in 0..<height {
        let row = input + y &* rowStride
        let o = out + y &* width
        var x0 = 0
        while x0 < width {
            let x = min(x0, width &- 16)
            let r0 = row + x, r1 = r0 + rowStride, r2 = r1 + rowStride
            var sum = loadWide(r0) * w0
            sum = sum.addingProduct(loadWide(r0 + 1), w1)
            sum = sum.addingProduct(loadWide(r0 + 2), w2)
            sum = sum.addingProduct(loadWide(r1), w3)
            sum = sum.addingProduct(loadWide(r1 + 1), w4)
            sum = sum.addingProduct(loadWide(r1 + 2), w5)
            sum = sum.addingProduct(loadWide(r2), w6)
            sum = sum.addingProduct(loadWide(r2 + 1), w7)
            sum = sum.addingProduct(loadWide(r2 + 2), w8)
            storeWide(sum, o + x)
            x0 += 16
        }
    }
}
#endif

#if arch(x86_64)
/// A 3x3 stride-1 convolution tile with output channels in the lanes (driver:
/// Kernels/Conv2D+ConvLanes.swift): for the 16 positions q ..< q + 16 of one padded image's
/// output sequence and 16 output channels, out[c * outStride + r] = sum over input channels ci
/// and taps (ky, kx) of input[ci * channelFloats + ky * rowStride + kx + r] *
/// weights[(ci * 9 + ky * 3 + kx) * wStride + c] (`input` and `out` at q, `weights` at the
/// first output channel). Per position a zmm of 16 output channels; per tap one weight vector
/// and 16 embedded-broadcast FMAs; the tile is transposed in registers at the end.
@inline(never)
public func wideConvLanesTile(input: UnsafePointer<Float>, channelFloats: Int, rowStride: Int, channels: Int,
                              weights: UnsafePointer<Float>, wStride: Int,
                              out: UnsafeMutablePointer<Float>, outStride: Int) {
    var acc = SixteenPositions()
    var plane = input
    var w = weights
    for _ in 0..<channels {
        let r1 = plane + rowStride, r2 = plane + 2 &* rowStride
        acc.step(plane, loadWide(w)); acc.step(plane + 1, loadWide(w + wStride)); acc.step(plane + 2, loadWide(w + 2 &* wStride))
        acc.step(r1, loadWide(w + 3 &* wStride)); acc.step(r1 + 1, loadWide(w + 4 &* wStride)); acc.step(r1 + 2, loadWide(w + 5 &* wStride))
        acc.step(r2, loadWide(w + 6 &* wStride)); acc.step(r2 + 1, loadWide(w + 7 &* wStride)); acc.step(r2 + 2, loadWide(w + 8 &* wStride))
        plane += channelFloats
        w += 9 &* wStride
    }
    let spilled = acc
    withUnsafePointer(to: spilled) { p in
        p.withMemoryRebound(to: Float.self, capacity: 256) { wideTranspose16($0, 16, out, outStride) }
    }
}

/// `wideConvLanesTile` with the taps given: out[co][r] (16 output channels co in the lanes of
/// weights, 16 positions r) = sum over the channels c, then the taps t in order, of
/// input[c * channelFloats + offsets[t] + r] * weights[(c * taps + t) * wStride + co]. The
/// stride-2 data gradient runs one input phase at a time with its 1, 2 or 4 taps, the 1x1
/// stride-2 convolution one tap (the stride-2 forward has its own tile,
/// `wideConvLanesPhaseTile`).
@inline(never)
public func wideConvLanesTapsTile(input: UnsafePointer<Float>, channelFloats: Int, offsets: UnsafePointer<Int>, taps: Int,
                                  channels: Int, weights: UnsafePointer<Float>, wStride: Int,
                                  out: UnsafeMutablePointer<Float>, outStride: Int) {
    // A constant tap count unrolls the tap loop and keeps the offsets in registers (with a
    // run-time count each tap first loaded its offset, and the tile ran at half the stride-1 one's speed).
    switch taps {
    case 4: tapsTile(input, channelFloats, offsets, 4, channels, weights, wStride, out, outStride)
    case 2: tapsTile(input, channelFloats, offsets, 2, channels, weights, wStride, out, outStride)
    case 1: tapsTile(input, channelFloats, offsets, 1, channels, weights, wStride, out, outStride)
    default: tapsTile(input, channelFloats, offsets, taps, channels, weights, wStride, out, outStride)
    }
}

@inline(__always)
func tapsTile(_ input: UnsafePointer<Float>, _ channelFloats: Int, _ offsets: UnsafePointer<Int>, _ taps: Int,
              _ channels: Int, _ weights: UnsafePointer<Float>, _ wStride: Int,
              _ out: UnsafeMutablePointer<Float>, _ outStride: Int) {
    var acc = SixteenPositions()
    var plane = input
    var w = weights
    for _ in 0..<channels {
        for t in 0..<taps {
            acc.step(plane + offsets[t], loadWide(w))
            w += wStride
        }
        plane += channelFloats
    }
    let spilled = acc
    withUnsafePointer(to: spilled) { p in
        p.withMemoryRebound(to: Float.self, capacity: 256) { wideTranspose16($0, 16, out, outStride) }
    }
}

/// The stride-2 forward's 9-tap tile with its offsets spelled out (`wideConvLanesTapsTile` with
/// `Conv2D.directTapOffsets`' stride-2 offsets, the same FMAs in the same order): tap (ky, kx)
/// reads phase plane (ky != 1, kx != 1) at row shift (ky != 0) and column shift (kx != 0) of
/// a layout with planes `phaseFloats` apart and rows `rowStride` floats. Written out, the
/// compiler loads each broadcast of a plane row once for its two taps (99 broadcasts per
/// channel, not 144), and keeps them across a tap's 16 positions by spilling to the stack (60
/// instructions address it; 3 in the stride-1 tile). A rolled row loop without spills was
/// tried (2026-12-07): resnet8's stride-2 forwards 1.06x, ResNet-18's 0.90-0.93x, not kept.
@inline(never)
public func wideConvLanesPhaseTile(input: UnsafePointer<Float>, channelFloats: Int, phaseFloats: Int, rowStride: Int,
                                   channels: Int, weights: UnsafePointer<Float>, wStride: Int,
                                   out: UnsafeMutablePointer<Float>, outStride: Int) {
    var acc = SixteenPositions()
    var plane = input
    var w = weights
    for _ in 0..<channels {
        let p0 = plane, p1 = plane + phaseFloats, p2 = plane + 2 &* phaseFloats, p3 = plane + 3 &* phaseFloats
        // taps (0,0) (0,1) (0,2) (1,0) (1,1) (1,2) (2,0) (2,1) (2,2), in this order
        acc.step(p3, loadWide(w)); acc.step(p2 + 1, loadWide(w + wStride)); acc.step(p3 + 1, loadWide(w + 2 &* wStride))
        acc.step(p1 + rowStride, loadWide(w + 3 &* wStride)); acc.step(p0 + rowStride + 1, loadWide(w + 4 &* wStride))
        acc.step(p1 + rowStride + 1, loadWide(w + 5 &* wStride))
        acc.step(p3 + rowStride, loadWide(w + 6 &* wStride)); acc.step(p2 + rowStride + 1, loadWide(w + 7 &* wStride))
        acc.step(p3 + rowStride + 1, loadWide(w + 8 &* wStride))
        plane += channelFloats
        w += 9 &* wStride
    }
    let spilled = acc
    withUnsafePointer(to: spilled) { p in
        p.withMemoryRebound(to: Float.self, capacity: 256) { wideTranspose16($0, 16, out, outStride) }
    }
}

/// Sixteen zmm accumulators: position r's 16 output channels.
struct SixteenPositions {
    var a0 = WideVector(), a1 = WideVector(), a2 = WideVector(), a3 = WideVector()
    var a4 = WideVector(), a5 = WideVector(), a6 = WideVector(), a7 = WideVector()
    var a8 = WideVector(), a9 = WideVector(), a10 = WideVector(), a11 = WideVector()
    var a12 = WideVector(), a13 = WideVector(), a14 = WideVector(), a15 = WideVector()

    /// position r += broadcast(x[r]) * w.
    @inline(__always)
    mutating func step(_ x: UnsafePointer<Float>, _ w: WideVector) {
        a0 = a0.addingProduct(WideVector(repeating: x[0]), w); a1 = a1.addingProduct(WideVector(repeating: x[1]), w)
        a2 = a2.addingProduct(WideVector(repeating: x[2]), w); a3 = a3.addingProduct(WideVector(repeating: x[3]), w)
        a4 = a4.addingProduct(WideVector(repeating: x[4]), w); a5 = a5.addingProduct(WideVector(repeating: x[5]), w)
        a6 = a6.addingProduct(WideVector(repeating: x[6]), w); a7 = a7.addingProduct(WideVector(repeating: x[7]), w)
        a8 = a8.addingProduct(WideVector(repeating: x[8]), w); a9 = a9.addingProduct(WideVector(repeating: x[9]), w)
        a10 = a10.addingProduct(WideVector(repeating: x[10]), w); a11 = a11.addingProduct(WideVector(repeating: x[11]), w)
        a12 = a12.addingProduct(WideVector(repeating: x[12]), w); a13 = a13.addingProduct(WideVector(repeating: x[13]), w)
        a14 = a14.addingProduct(WideVector(repeating: x[14]), w); a15 = a15.addingProduct(WideVector(repeating: x[15]), w)
    }
}
#endif

// MARK: - Dot products with positions in the lanes (the 1x1 stride-2 weight gradient)

#if arch(x86_64)
/// sums[(i * 4 + j) * 16 + lane] += a[i * aStride + 16 v + lane] * b[j * bStride + 16 v + lane]
/// for v in 0 ..< vectors, i and j < 4: the dot products of four rows of `a` with four rows of
/// `b`, positions in the lanes, 16 named accumulators loaded from and stored back to `sums`.
/// One FMA chain per lane, positions in order: the sums do not depend on how the caller splits
/// the rows or the positions (in whole vectors) over calls.
@inline(never)
public func wideDotLanesTile4x4(a: UnsafePointer<Float>, aStride: Int, b: UnsafePointer<Float>, bStride: Int,
                                vectors: Int, sums: UnsafeMutablePointer<Float>) {
    var s00 = loadWide(sums), s01 = loadWide(sums + 16), s02 = loadWide(sums + 32), s03 = loadWide(sums + 48)
    var s10 = loadWide(sums + 64), s11 = loadWide(sums + 80), s12 = loadWide(sums + 96), s13 = loadWide(sums + 112)
    var s20 = loadWide(sums + 128), s21 = loadWide(sums + 144), s22 = loadWide(sums + 160), s23 = loadWide(sums + 176)
    var s30 = loadWide(sums + 192), s31 = loadWide(sums + 208), s32 = loadWide(sums + 224), s33 = loadWide(sums + 240)
    let a1 = a + aStride, a2 = a + 2 &* aStride, a3 = a + 3 &* aStride
    let b1 = b + bStride, b2 = b + 2 &* bStride, b3 = b + 3 &* bStride
    var offset = 0
    for _ in 0..<vectors {
        let x0 = loadWide(a + offset), x1 = loadWide(a1 + offset), x2 = loadWide(a2 + offset), x3 = loadWide(a3 + offset)
        let y0 = loadWide(b + offset), y1 = loadWide(b1 + offset), y2 = loadWide(b2 + offset), y3 = loadWide(b3 + offset)
        s00 = s00.addingProduct(x0, y0); s01 = s01.addingProduct(x0, y1); s02 = s02.addingProduct(x0, y2); s03 = s03.addingProduct(x0, y3)
        s10 = s10.addingProduct(x1, y0); s11 = s11.addingProduct(x1, y1); s12 = s12.addingProduct(x1, y2); s13 = s13.addingProduct(x1, y3)
        s20 = s20.addingProduct(x2, y0); s21 = s21.addingProduct(x2, y1); s22 = s22.addingProduct(x2, y2); s23 = s23.addingProduct(x2, y3)
        s30 = s30.addingProduct(x3, y0); s31 = s31.addingProduct(x3, y1); s32 = s32.addingProduct(x3, y2); s33 = s33.addingProduct(x3, y3)
        offset &+= 16
    }
    storeWide(s00, sums); storeWide(s01, sums + 16); storeWide(s02, sums + 32); storeWide(s03, sums + 48)
    storeWide(s10, sums + 64); storeWide(s11, sums + 80); storeWide(s12, sums + 96); storeWide(s13, sums + 112)
    storeWide(s20, sums + 128); storeWide(s21, sums + 144); storeWide(s22, sums + 160); storeWide(s23, sums + 176)
    storeWide(s30, sums + 192); storeWide(s31, sums + 208); storeWide(s32, sums + 224); storeWide(s33, sums + 240)
}

/// `wideDotLanesTile4x4` for one row of each: sums[lane] += a[16 v + lane] * b[16 v + lane].
@inline(never)
public func wideDotLanesTile1x1(a: UnsafePointer<Float>, b: UnsafePointer<Float>, vectors: Int, sums: UnsafeMutablePointer<Float>) {
    var s = loadWide(sums)
    var offset = 0
    for _ in 0..<vectors {
        s = s.addingProduct(loadWide(a + offset), loadWide(b + offset))
        offset &+= 16
    }
    storeWide(s, sums)
}
#endif
