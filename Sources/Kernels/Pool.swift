import Platform

/// The geometry of a 2-D pooling window over CNHW activations. Pooling treats each of the
/// C * N planes alike, so every kernel here walks planes.
/// - Shapes: input [C, N, H, W], output [C, N, OH, OW] with OH = (H + 2 padH - KH) / strideH + 1.
public struct Pool2DShape: Equatable {
    public var channels: Int
    public var batch: Int
    public var inHeight: Int
    public var inWidth: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideH: Int
    public var strideW: Int
    public var padH: Int
    public var padW: Int

    public init(channels: Int, batch: Int, inHeight: Int, inWidth: Int, kernelHeight: Int, kernelWidth: Int,
                strideH: Int, strideW: Int, padH: Int = 0, padW: Int = 0) {
        self.channels = channels
        self.batch = batch
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideH = strideH
        self.strideW = strideW
        self.padH = padH
        self.padW = padW
    }

    /// A square window; the stride defaults to the kernel size like PyTorch.
    public init(channels: Int, batch: Int, height: Int, width: Int, kernel: Int, stride: Int? = nil, padding: Int = 0) {
        self.init(channels: channels, batch: batch, inHeight: height, inWidth: width, kernelHeight: kernel,
                  kernelWidth: kernel, strideH: stride ?? kernel, strideW: stride ?? kernel, padH: padding, padW: padding)
    }

    public var outHeight: Int { (inHeight + 2 * padH - kernelHeight) / strideH + 1 }
    public var outWidth: Int { (inWidth + 2 * padW - kernelWidth) / strideW + 1 }
    public var planes: Int { channels * batch }
    public var inputCount: Int { planes * inHeight * inWidth }
    public var outputCount: Int { planes * outHeight * outWidth }

    /// PyTorch's rule: padding at most half the kernel, so every window holds a real pixel.
    public var isValid: Bool {
        channels > 0 && batch > 0 && inHeight > 0 && inWidth > 0 && kernelHeight > 0 && kernelWidth > 0
            && strideH > 0 && strideW > 0 && padH >= 0 && padW >= 0
            && 2 * padH <= kernelHeight && 2 * padW <= kernelWidth
            && inHeight + 2 * padH >= kernelHeight && inWidth + 2 * padW >= kernelWidth
    }

    /// Window rows of output row oh clipped to the image: [begin, end) in input rows.
    @inline(__always)
    func rows(of oh: Int) -> (Int, Int) {
        let start = oh * strideH - padH
        return (max(start, 0), min(start + kernelHeight, inHeight))
    }

    @inline(__always)
    func columns(of ow: Int) -> (Int, Int) {
        let start = ow * strideW - padW
        return (max(start, 0), min(start + kernelWidth, inWidth))
    }
}

/// Splits `planes` into one contiguous block per thread; small jobs stay on the caller.
@inline(__always)
func forEachPlane<Body: ParallelTask>(_ planes: Int, work: Int, _ context: KernelContext, _ body: Body) {
    let threads = work >= 64 * 1024 ? min(context.threads, planes) : 1
    context.pool.run(tasks: threads, threads: threads, PlaneBlocks(body: body, planes: planes, threads: threads))
}

/// `forEachPlane`'s split: task t of `threads` runs a contiguous block of planes.
struct PlaneBlocks<Body: ParallelTask>: ParallelTask {
    let body: Body
    let planes: Int, threads: Int

    func run(task: Int) {
        for plane in (planes * task / threads)..<(planes * (task + 1) / threads) { body.run(task: plane) }
    }
}

/// Max pooling. Forward records, for every output, the flat index into the input of the
/// window's maximum, so backward is a scatter. Padding acts as -infinity; ties keep the first
/// maximum in row-major window order and NaN wins, like PyTorch.
/// - Shapes: input [C, N, H, W], out and indices [C, N, OH, OW].
public enum MaxPool2D {
    /// - Shapes: out [C, N, OH, OW], indices [C, N, OH, OW] (flat input indices), input [C, N, H, W].
    public static func forward(
        out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>,
        shape: Pool2DShape, context: KernelContext
    ) {
        check(shape)
        let s = shape
        let outHeight = s.outHeight, outWidth = s.outWidth
        let pairPath = s.kernelHeight == 2 && s.kernelWidth == 2 && s.strideH == 2 && s.strideW == 2
            && s.padH == 0 && s.padW == 0
        forEachPlane(s.planes, work: s.inputCount, context,
                     ForwardPlane(out: out, indices: indices, input: input, s: s, outHeight: outHeight, outWidth: outWidth,
                                  pairPath: pairPath))
    }

    /// `forward` of one plane.
    struct ForwardPlane: ParallelTask {
        let out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<Float>
        let s: Pool2DShape
        let outHeight: Int, outWidth: Int
        let pairPath: Bool

        func run(task plane: Int) {
            let planeIn = plane * s.inHeight * s.inWidth
            let planeOut = plane * outHeight * outWidth
            for oh in 0..<outHeight {
                let outRow = out + planeOut + oh * outWidth
                let indexRow = indices + planeOut + oh * outWidth
                var firstGeneric = 0
                if pairPath {
                    firstGeneric = pairRow(out: outRow, indices: indexRow, input: input, inputCount: s.inputCount,
                                           rowStart: planeIn + 2 * oh * s.inWidth, width: s.inWidth, outWidth: outWidth)
                }
                let (rowBegin, rowEnd) = s.rows(of: oh)
                for ow in firstGeneric..<outWidth {
                    let (columnBegin, columnEnd) = s.columns(of: ow)
                    var best = -Float.infinity
                    var bestIndex = planeIn + rowBegin * s.inWidth + columnBegin
                    for ih in rowBegin..<rowEnd {
                        let rowIndex = planeIn + ih * s.inWidth
                        for iw in columnBegin..<columnEnd {
                            let value = input[rowIndex + iw]
                            if value > best || value.isNaN { best = value; bestIndex = rowIndex + iw }
                        }
                    }
                    outRow[ow] = best
                    indexRow[ow] = Int32(truncatingIfNeeded: bestIndex)
                }
            }
        }
    }

    /// 2x2 stride-2 windows of one output row, in window order (top-left, top-right,
    /// bottom-left, bottom-right; the first maximum wins, NaN wins). W outputs at a time (see
    /// `pairStep`); the last partial group (a 14-wide row has 7 outputs: all of it on AVX2) is
    /// copied into zero-padded vectors and runs the same step, so no window takes the
    /// data-dependent branches of a scalar scan (they mispredicted on nearly every window).
    /// Returns outWidth (no tail left for the generic path).
    @inline(__always)
    static func pairRow(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>,
                        input: UnsafePointer<Float>, inputCount: Int, rowStart: Int, width: Int, outWidth: Int) -> Int {
        let w = FloatVector.scalarCount
        let top = input + rowStart
        let bottom = top + width
        var ow = 0
        while ow + w <= outWidth {
            let (values, lanes) = pairStep(
                upper: DoubleVector(lowHalf: top.loadVector(at: 2 * ow), highHalf: top.loadVector(at: 2 * ow + w)),
                lower: DoubleVector(lowHalf: bottom.loadVector(at: 2 * ow), highHalf: bottom.loadVector(at: 2 * ow + w)),
                index: rowStart + 2 * ow, width: width)
            (out + ow).storeVector(values, at: 0)
            UnsafeMutableRawPointer(indices + ow).storeBytes(of: lanes, as: FloatVector.MaskStorage.self)
            ow += w
        }
        if ow < outWidth {
            // Full-width loads run past the row into the next one (lanes ignored) where the input
            // goes on that far; only the very last row pair copies its floats into a padded buffer.
            let remaining = outWidth - ow
            var upper: DoubleVector, lower: DoubleVector
            if rowStart + width + 2 * ow + 2 * w <= inputCount {
                upper = DoubleVector(lowHalf: top.loadVector(at: 2 * ow), highHalf: top.loadVector(at: 2 * ow + w))
                lower = DoubleVector(lowHalf: bottom.loadVector(at: 2 * ow), highHalf: bottom.loadVector(at: 2 * ow + w))
            } else {
                var buffer = InlineArray<64, Float>(repeating: 0)
                for i in 0..<(2 * remaining) { buffer[i] = top[2 * ow + i]; buffer[32 + i] = bottom[2 * ow + i] }
                (upper, lower) = withUnsafePointer(to: buffer) { pointer in
                    pointer.withMemoryRebound(to: Float.self, capacity: 64) { floats in
                        (DoubleVector(lowHalf: floats.loadVector(at: 0), highHalf: floats.loadVector(at: w)),
                         DoubleVector(lowHalf: floats.loadVector(at: 32), highHalf: floats.loadVector(at: 32 + w)))
                    }
                }
            }
            let (values, lanes) = pairStep(upper: upper, lower: lower, index: rowStart + 2 * ow, width: width)
            for lane in 0..<remaining { out[ow + lane] = values[lane]; indices[ow + lane] = lanes[lane] }
        }
        return outWidth
    }

    /// W adjacent 2x2 windows: `upper` and `lower` hold 2W floats of the top and bottom input
    /// rows starting at flat index `index`. Splits them into even (left) and odd (right)
    /// columns, reduces each row's pair (right replaces left only when greater or NaN), then
    /// lets the bottom winner replace the top one only when greater or NaN: the order of the
    /// scalar scan, so values and indices are the same, ties and NaN included.
    @inline(__always)
    static func pairStep(upper: DoubleVector, lower: DoubleVector, index: Int, width: Int)
        -> (FloatVector, FloatVector.MaskStorage) {
        typealias Lanes = FloatVector.MaskStorage
        var evenOffsets = Lanes(repeating: 0)
        for lane in 0..<FloatVector.scalarCount { evenOffsets[lane] = Int32(truncatingIfNeeded: 2 * lane) }
        let one = Lanes(repeating: 1)
        let left = Lanes(repeating: Int32(truncatingIfNeeded: index)) &+ evenOffsets
        let lowerLeft = left &+ Lanes(repeating: Int32(truncatingIfNeeded: width))
        let topLeft = upper.evenHalf, topRight = upper.oddHalf
        let takeTopRight = (topRight .> topLeft) .| (topRight .!= topRight)
        let topBest = topLeft.replacing(with: topRight, where: takeTopRight)
        let topIndex = left.replacing(with: left &+ one, where: takeTopRight)
        let bottomLeft = lower.evenHalf, bottomRight = lower.oddHalf
        let takeBottomRight = (bottomRight .> bottomLeft) .| (bottomRight .!= bottomRight)
        let bottomBest = bottomLeft.replacing(with: bottomRight, where: takeBottomRight)
        let bottomIndex = lowerLeft.replacing(with: lowerLeft &+ one, where: takeBottomRight)
        let takeBottom = (bottomBest .> topBest) .| (bottomBest .!= bottomBest)
        return (topBest.replacing(with: bottomBest, where: takeBottom), topIndex.replacing(with: bottomIndex, where: takeBottom))
    }

    /// dInput[indices[i]] += dOut[i]. Threads take whole planes; an index never leaves its plane.
    /// With `accumulate` false each plane of dInput is zeroed first, by its thread, while it is
    /// in cache (a gradient buffer's first writer: nothing zeroes it before).
    /// - Shapes: dInput [C, N, H, W], dOut and indices [C, N, OH, OW].
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, indices: UnsafePointer<Int32>,
        shape: Pool2DShape, accumulate: Bool = true, context: KernelContext
    ) {
        check(shape)
        let perPlane = shape.outHeight * shape.outWidth
        forEachPlane(shape.planes, work: shape.outputCount * 4, context,
                     BackwardPlane(dInput: dInput, dOut: dOut, indices: indices, perPlane: perPlane,
                                   inPlane: shape.inHeight * shape.inWidth, accumulate: accumulate))
    }

    /// `backward` of one plane.
    struct BackwardPlane: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, indices: UnsafePointer<Int32>
        let perPlane: Int, inPlane: Int, accumulate: Bool

        func run(task plane: Int) {
            if !accumulate { (dInput + plane * inPlane).initialize(repeating: 0, count: inPlane) }
            for index in (plane * perPlane)..<((plane + 1) * perPlane) {
                dInput[Int(indices[index])] += dOut[index]
            }
        }
    }

    /// The test oracle for `forward`: the window scan written out in full.
    @inlinable
    public static func naiveForward<T: BinaryFloatingPoint>(
        out: UnsafeMutablePointer<T>, indices: UnsafeMutablePointer<Int32>, input: UnsafePointer<T>, shape: Pool2DShape
    ) {
        check(shape)
        let s = shape
        for plane in 0..<s.planes {
            for oh in 0..<s.outHeight {
                for ow in 0..<s.outWidth {
                    var best = -T.infinity
                    var bestIndex = -1
                    for ky in 0..<s.kernelHeight {
                        let ih = oh * s.strideH + ky - s.padH
                        if ih < 0 || ih >= s.inHeight { continue }
                        for kx in 0..<s.kernelWidth {
                            let iw = ow * s.strideW + kx - s.padW
                            if iw < 0 || iw >= s.inWidth { continue }
                            let index = (plane * s.inHeight + ih) * s.inWidth + iw
                            if bestIndex < 0 { bestIndex = index }
                            if input[index] > best || input[index].isNaN { best = input[index]; bestIndex = index }
                        }
                    }
                    let outIndex = (plane * s.outHeight + oh) * s.outWidth + ow
                    out[outIndex] = best
                    indices[outIndex] = Int32(bestIndex)
                }
            }
        }
    }

    /// The test oracle for `backward`.
    @inlinable
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, indices: UnsafePointer<Int32>, shape: Pool2DShape
    ) {
        check(shape)
        for index in 0..<shape.outputCount { dInput[Int(indices[index])] += dOut[index] }
    }

    @usableFromInline
    static func check(_ shape: Pool2DShape) {
        precondition(shape.isValid, "MaxPool2D: invalid shape \(shape)")
        precondition(shape.inputCount <= Int(Int32.max), "MaxPool2D: input too large for Int32 indices")
    }
}

/// Average pooling with count_include_pad = true (PyTorch's default): every window divides by
/// KH * KW, padded taps counting as zero.
/// - Shapes: input [C, N, H, W], out [C, N, OH, OW].
public enum AvgPool2D {
    /// Overwrites `out`. Stride-1 windows sum whole shifted rows with vector adds.
    public static func forward(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, shape: Pool2DShape, context: KernelContext
    ) {
        check(shape)
        let s = shape
        let outHeight = s.outHeight, outWidth = s.outWidth
        if outHeight == 1 && outWidth == 1 && s.padH == 0 && s.padW == 0 && s.kernelHeight == s.inHeight && s.kernelWidth == s.inWidth {
            forEachPlane(s.planes, work: s.inputCount, context, WholePlane(out: out, input: input, pixels: s.inHeight * s.inWidth))
            return
        }
        let scale = 1 / Float(s.kernelHeight * s.kernelWidth)
        forEachPlane(s.planes, work: s.outputCount * s.kernelHeight * s.kernelWidth, context,
                     ForwardPlane(out: out, input: input, s: s, outHeight: outHeight, outWidth: outWidth, scale: scale))
    }

    /// `forward` of one plane when the window is the whole plane (a global pool written as
    /// `avgpool H sH`, e.g. mobilenet_v3's squeeze-excitation): the plane is one contiguous run,
    /// summed in two vector accumulators (the row path adds its H*W values one by one into one
    /// Float: 576 on a 24x24 map, 13x PyTorch float32's error) and divided by the count as
    /// PyTorch divides (not multiplied by a rounded reciprocal).
    struct WholePlane: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let pixels: Int

        func run(task plane: Int) {
            let source = UnsafeMutablePointer(mutating: input) + plane * pixels
            let width = floatVectorWidth
            var first = FloatVector(repeating: 0), second = FloatVector(repeating: 0)
            var index = 0
            while index + 2 * width <= pixels {
                first += source.loadVector(at: index)
                second += source.loadVector(at: index + width)
                index += 2 * width
            }
            if index + width <= pixels {
                first += source.loadVector(at: index)
                index += width
            }
            var sum = (first + second).sum()
            while index < pixels { sum += source[index]; index += 1 }
            out[plane] = sum / Float(pixels)
        }
    }

    /// `forward` of one plane.
    struct ForwardPlane: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let s: Pool2DShape
        let outHeight: Int, outWidth: Int
        let scale: Float

        func run(task plane: Int) {
            for oh in 0..<outHeight {
                let outRow = out + (plane * outHeight + oh) * outWidth
                for ow in 0..<outWidth { outRow[ow] = 0 }
                let (rowBegin, rowEnd) = s.rows(of: oh)
                for ih in rowBegin..<rowEnd {
                    let inRow = UnsafeMutablePointer(mutating: input) + (plane * s.inHeight + ih) * s.inWidth
                    for kx in 0..<s.kernelWidth {
                        let (begin, end) = validColumns(kx: kx, shape: s)
                        let source = inRow + (kx - s.padW)
                        if s.strideW == 1 {
                            multiplyAdd(into: outRow + begin, source + begin, scale: 1, count: end - begin)
                        } else {
                            for ow in begin..<end { outRow[ow] += source[ow * s.strideW] }
                        }
                    }
                }
                for ow in 0..<outWidth { outRow[ow] *= scale }
            }
        }
    }

    /// dInput[window] += dOut / (KH * KW) for every window (each plane of dInput zeroed first
    /// by its thread with `accumulate` false, as `MaxPool2D.backward`).
    /// - Shapes: dInput [C, N, H, W], dOut [C, N, OH, OW].
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, shape: Pool2DShape, accumulate: Bool = true,
        context: KernelContext
    ) {
        check(shape)
        let s = shape
        let outHeight = s.outHeight, outWidth = s.outWidth
        let scale = 1 / Float(s.kernelHeight * s.kernelWidth)
        forEachPlane(s.planes, work: s.outputCount * s.kernelHeight * s.kernelWidth, context,
                     BackwardPlane(dInput: dInput, dOut: dOut, s: s, outHeight: outHeight, outWidth: outWidth, scale: scale,
                                   accumulate: accumulate))
    }

    /// `backward` of one plane.
    struct BackwardPlane: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>
        let s: Pool2DShape
        let outHeight: Int, outWidth: Int
        let scale: Float
        let accumulate: Bool

        func run(task plane: Int) {
            if !accumulate { (dInput + plane * s.inHeight * s.inWidth).initialize(repeating: 0, count: s.inHeight * s.inWidth) }
            for oh in 0..<outHeight {
                let dOutRow = UnsafeMutablePointer(mutating: dOut) + (plane * outHeight + oh) * outWidth
                let (rowBegin, rowEnd) = s.rows(of: oh)
                for ih in rowBegin..<rowEnd {
                    let dInRow = dInput + (plane * s.inHeight + ih) * s.inWidth
                    for kx in 0..<s.kernelWidth {
                        let (begin, end) = validColumns(kx: kx, shape: s)
                        let destination = dInRow + (kx - s.padW)
                        if s.strideW == 1 {
                            multiplyAdd(into: destination + begin, dOutRow + begin, scale: scale, count: end - begin)
                        } else {
                            for ow in begin..<end { destination[ow * s.strideW] += scale * dOutRow[ow] }
                        }
                    }
                }
            }
        }
    }

    /// The test oracle for `forward`.
    @inlinable
    public static func naiveForward<T: BinaryFloatingPoint>(
        out: UnsafeMutablePointer<T>, input: UnsafePointer<T>, shape: Pool2DShape
    ) {
        check(shape)
        let s = shape
        let divisor = T(s.kernelHeight * s.kernelWidth)
        for plane in 0..<s.planes {
            for oh in 0..<s.outHeight {
                for ow in 0..<s.outWidth {
                    var sum: T = 0
                    for ky in 0..<s.kernelHeight {
                        let ih = oh * s.strideH + ky - s.padH
                        if ih < 0 || ih >= s.inHeight { continue }
                        for kx in 0..<s.kernelWidth {
                            let iw = ow * s.strideW + kx - s.padW
                            if iw < 0 || iw >= s.inWidth { continue }
                            sum += input[(plane * s.inHeight + ih) * s.inWidth + iw]
                        }
                    }
                    out[(plane * s.outHeight + oh) * s.outWidth + ow] = sum / divisor
                }
            }
        }
    }

    /// The test oracle for `backward`.
    @inlinable
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, shape: Pool2DShape
    ) {
        check(shape)
        let s = shape
        let divisor = T(s.kernelHeight * s.kernelWidth)
        for plane in 0..<s.planes {
            for oh in 0..<s.outHeight {
                for ow in 0..<s.outWidth {
                    let share = dOut[(plane * s.outHeight + oh) * s.outWidth + ow] / divisor
                    for ky in 0..<s.kernelHeight {
                        let ih = oh * s.strideH + ky - s.padH
                        if ih < 0 || ih >= s.inHeight { continue }
                        for kx in 0..<s.kernelWidth {
                            let iw = ow * s.strideW + kx - s.padW
                            if iw < 0 || iw >= s.inWidth { continue }
                            dInput[(plane * s.inHeight + ih) * s.inWidth + iw] += share
                        }
                    }
                }
            }
        }
    }

    @usableFromInline
    static func check(_ shape: Pool2DShape) {
        precondition(shape.isValid, "AvgPool2D: invalid shape \(shape)")
    }

    /// The ow whose tap kx lands inside the row: 0 <= ow * strideW + kx - padW < W.
    @inline(__always)
    static func validColumns(kx: Int, shape: Pool2DShape) -> (Int, Int) {
        let outWidth = shape.outWidth, strideW = shape.strideW
        let begin = shape.padW > kx ? min((shape.padW - kx + strideW - 1) / strideW, outWidth) : 0
        let lastReach = shape.inWidth - 1 - kx + shape.padW
        let end = lastReach < 0 ? begin : max(min(lastReach / strideW + 1, outWidth), begin)
        return (begin, end)
    }
}

/// Global average pooling from CNHW activations to the row-major [N, C] matrix a linear layer
/// takes: out[n, c] = mean over H, W of input[c, n, :, :].
/// - Shapes: input [C, N, H, W], out [N, C].
public enum GlobalAvgPool {
    /// Overwrites `out`. Each plane is one contiguous run, summed with vector adds.
    public static func forward(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
        channels: Int, batch: Int, height: Int, width: Int, context: KernelContext
    ) {
        let pixels = height * width
        precondition(channels > 0 && batch > 0 && pixels > 0, "GlobalAvgPool: empty shape")
        let scale = 1 / Float(pixels)
        forEachPlane(channels * batch, work: channels * batch * pixels, context,
                     ForwardPlane(out: out, input: input, channels: channels, batch: batch, pixels: pixels, scale: scale))
    }

    /// `forward` of one plane.
    struct ForwardPlane: ParallelTask {
        let out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>
        let channels: Int, batch: Int, pixels: Int
        let scale: Float

        func run(task plane: Int) {
            let source = UnsafeMutablePointer(mutating: input) + plane * pixels
            var vectorSum = FloatVector(repeating: 0)
            var index = 0
            while index + floatVectorWidth <= pixels {
                vectorSum += source.loadVector(at: index)
                index += floatVectorWidth
            }
            var sum = vectorSum.sum()
            while index < pixels { sum += source[index]; index += 1 }
            let channel = plane / batch, n = plane % batch
            out[n * channels + channel] = sum * scale
        }
    }

    /// dInput[c, n, :, :] += dOut[n, c] / (H * W) (= with `accumulate` false).
    /// - Shapes: dInput [C, N, H, W], dOut [N, C].
    public static func backward(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
        channels: Int, batch: Int, height: Int, width: Int, accumulate: Bool = true, context: KernelContext
    ) {
        let pixels = height * width
        precondition(channels > 0 && batch > 0 && pixels > 0, "GlobalAvgPool: empty shape")
        let scale = 1 / Float(pixels)
        forEachPlane(channels * batch, work: channels * batch * pixels, context,
                     BackwardPlane(dInput: dInput, dOut: dOut, channels: channels, batch: batch, pixels: pixels, scale: scale,
                                   accumulate: accumulate))
    }

    /// `backward` of one plane.
    struct BackwardPlane: ParallelTask {
        let dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>
        let channels: Int, batch: Int, pixels: Int
        let scale: Float
        let accumulate: Bool

        func run(task plane: Int) {
            let destination = dInput + plane * pixels
            let channel = plane / batch, n = plane % batch
            let share = dOut[n * channels + channel] * scale
            guard accumulate else {
                destination.initialize(repeating: share, count: pixels)
                return
            }
            let shareVector = FloatVector(repeating: share)
            var index = 0
            while index + floatVectorWidth <= pixels {
                destination.storeVector(destination.loadVector(at: index) + shareVector, at: index)
                index += floatVectorWidth
            }
            while index < pixels { destination[index] += share; index += 1 }
        }
    }

    /// The test oracle for `forward`.
    @inlinable
    public static func naiveForward<T: BinaryFloatingPoint>(
        out: UnsafeMutablePointer<T>, input: UnsafePointer<T>, channels: Int, batch: Int, height: Int, width: Int
    ) {
        let pixels = height * width
        for channel in 0..<channels {
            for n in 0..<batch {
                var sum: T = 0
                for pixel in 0..<pixels { sum += input[(channel * batch + n) * pixels + pixel] }
                out[n * channels + channel] = sum / T(pixels)
            }
        }
    }

    /// The test oracle for `backward`.
    @inlinable
    public static func naiveBackward<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, channels: Int, batch: Int, height: Int, width: Int
    ) {
        let pixels = height * width
        for channel in 0..<channels {
            for n in 0..<batch {
                let share = dOut[n * channels + channel] / T(pixels)
                for pixel in 0..<pixels { dInput[(channel * batch + n) * pixels + pixel] += share }
            }
        }
    }
}
