// MARK: - backwardData as a transposed ("full") convolution

extension Conv2D {
    /// For a stride-1 "same" convolution (odd kernel, pad = K / 2) with more than one output
    /// channel, the data gradient is itself a same convolution of dOut:
    ///     dInput[ci] += sum over co, ky, kx of W[co, ci, KH-1-ky, KW-1-kx] * dOut[co] shifted by (ky - padH, kx - padW),
    /// i.e. `forward` with Cin and Cout swapped and the kernel flipped. That GEMM reduces over
    /// Cout * KH * KW (144-576 in the reference models) straight into dInput, where the column
    /// path reduces over Cout only (16-64), writes a KH*KW times larger dCol and adds it back
    /// tap by tap in col2im. Returns nil where the identity does not hold (strides, other
    /// padding, pointwise) and for one input or output channel (a one-row GEMM, or the nine-tap
    /// path's shape, which the column path serves better).
    public static func transposedShape(_ shape: Conv2DShape) -> Conv2DShape? {
        guard !shape.isPointwise, shape.strideH == 1, shape.strideW == 1, shape.outChannels > 1, shape.inChannels > 1,
              shape.kernelHeight % 2 == 1, shape.kernelWidth % 2 == 1,
              2 * shape.padH == shape.kernelHeight - 1, 2 * shape.padW == shape.kernelWidth - 1 else { return nil }
        return Conv2DShape(batch: shape.batch, inChannels: shape.outChannels, outChannels: shape.inChannels,
                           inHeight: shape.inHeight, inWidth: shape.inWidth, kernelHeight: shape.kernelHeight,
                           kernelWidth: shape.kernelWidth, padH: shape.padH, padW: shape.padW)
    }

    /// Scratch floats the flipped weights take in front of the transposed path's im2col chunk
    /// (a multiple of 16 so the chunk stays 64-byte aligned).
    static func flippedWeightFloats(_ shape: Conv2DShape) -> Int { (shape.weightCount + 15) / 16 * 16 }

    /// backwardData as `forward` of dOut with the flipped, channel-swapped kernel, accumulated
    /// into dInput (GEMM beta 1). Only for shapes where `transposedShape` is non-nil.
    public static func backwardDataTransposed(
        dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, context: KernelContext
    ) {
        guard let transposed = transposedShape(shape) else {
            preconditionFailure("Conv2D: backwardDataTransposed needs a stride-1 same convolution, got \(shape)")
        }
        // flipped[ci, co, ky, kx] = W[co, ci, KH-1-ky, KW-1-kx]: Cin*Cout*KH*KW floats, cheap next to the GEMM.
        let flipped = scratch
        let kh = shape.kernelHeight, kw = shape.kernelWidth, taps = kh * kw
        let inChannels = shape.inChannels, outChannels = shape.outChannels
        for co in 0..<outChannels {
            for ci in 0..<inChannels {
                let source = weights + (co * inChannels + ci) * taps
                let target = flipped + (ci * outChannels + co) * taps
                for tap in 0..<taps { target[tap] = source[taps - 1 - tap] }
            }
        }
        if usesImplicitForward(transposed) {
            implicitGEMM(out: dInput, input: dOut, weights: flipped, shape: transposed, accumulate: true, context: context)
            return
        }
        let offset = flippedWeightFloats(shape)
        columnGEMM(out: dInput, input: dOut, weights: flipped, shape: transposed, scratch: scratch + offset,
                   scratchCount: scratchCount - offset, accumulate: true, context: context)
    }
}
