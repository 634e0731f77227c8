// The naive twins are @inlinable so callers in other modules (tests, the bench) get them
// specialised for Float or Double; unspecialised, every arithmetic step is a witness-table call
// and the "x naive" bench ratio would measure generics overhead rather than the algorithm.

extension Conv2D {
    /// The test oracle: direct nested loops, no im2col, no GEMM. Generic so that gradient
    /// checks can run it in Double. Overwrites `out`.
    /// - Shapes: out [Cout, N, OH, OW], input [Cin, N, H, W], weights [Cout, Cin, KH, KW].
    @inlinable
    public static func naiveForward<T: BinaryFloatingPoint>(
        out: UnsafeMutablePointer<T>, input: UnsafePointer<T>, weights: UnsafePointer<T>, shape: Conv2DShape
    ) {
        let s = shape
        let outHeight = s.outHeight, outWidth = s.outWidth
        for co in 0..<s.outChannels {
            for n in 0..<s.batch {
                for oh in 0..<outHeight {
                    for ow in 0..<outWidth {
                        var sum: T = 0
                        for ci in 0..<s.inChannels {
                            for ky in 0..<s.kernelHeight {
                                let ih = oh * s.strideH + ky - s.padH
                                if ih < 0 || ih >= s.inHeight { continue }
                                for kx in 0..<s.kernelWidth {
                                    let iw = ow * s.strideW + kx - s.padW
                                    if iw < 0 || iw >= s.inWidth { continue }
                                    let w = weights[((co * s.inChannels + ci) * s.kernelHeight + ky) * s.kernelWidth + kx]
                                    sum += w * input[((ci * s.batch + n) * s.inHeight + ih) * s.inWidth + iw]
                                }
                            }
                        }
                        out[((co * s.batch + n) * outHeight + oh) * outWidth + ow] = sum
                    }
                }
            }
        }
    }

    /// Twin of `backwardData`: dInput[ci, n, ih, iw] += sum of W[co, ci, ky, kx] * dOut[co, n, oh, ow]
    /// over the taps that read that pixel.
    /// - Shapes: dInput [Cin, N, H, W], dOut [Cout, N, OH, OW], weights [Cout, Cin, KH, KW].
    @inlinable
    public static func naiveBackwardData<T: BinaryFloatingPoint>(
        dInput: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, weights: UnsafePointer<T>, shape: Conv2DShape
    ) {
        let s = shape
        let outHeight = s.outHeight, outWidth = s.outWidth
        for ci in 0..<s.inChannels {
            for n in 0..<s.batch {
                for ih in 0..<s.inHeight {
                    for iw in 0..<s.inWidth {
                        var sum: T = 0
                        for co in 0..<s.outChannels {
                            for ky in 0..<s.kernelHeight {
                                // ih = oh * strideH + ky - padH must hold for an integer oh in range
                                let rowOffset = ih + s.padH - ky
                                if rowOffset < 0 || rowOffset % s.strideH != 0 { continue }
                                let oh = rowOffset / s.strideH
                                if oh >= outHeight { continue }
                                for kx in 0..<s.kernelWidth {
                                    let columnOffset = iw + s.padW - kx
                                    if columnOffset < 0 || columnOffset % s.strideW != 0 { continue }
                                    let ow = columnOffset / s.strideW
                                    if ow >= outWidth { continue }
                                    let w = weights[((co * s.inChannels + ci) * s.kernelHeight + ky) * s.kernelWidth + kx]
                                    sum += w * dOut[((co * s.batch + n) * outHeight + oh) * outWidth + ow]
                                }
                            }
                        }
                        dInput[((ci * s.batch + n) * s.inHeight + ih) * s.inWidth + iw] += sum
                    }
                }
            }
        }
    }

    /// Twin of `backwardWeights`: dW[co, ci, ky, kx] += sum over n, oh, ow of
    /// dOut[co, n, oh, ow] * input[ci, n, oh * sH + ky - pH, ow * sW + kx - pW].
    /// - Shapes: dWeights [Cout, Cin, KH, KW], dOut [Cout, N, OH, OW], input [Cin, N, H, W].
    @inlinable
    public static func naiveBackwardWeights<T: BinaryFloatingPoint>(
        dWeights: UnsafeMutablePointer<T>, dOut: UnsafePointer<T>, input: UnsafePointer<T>, shape: Conv2DShape
    ) {
        let s = shape
        let outHeight = s.outHeight, outWidth = s.outWidth
        for co in 0..<s.outChannels {
            for ci in 0..<s.inChannels {
                for ky in 0..<s.kernelHeight {
                    for kx in 0..<s.kernelWidth {
                        var sum: T = 0
                        for n in 0..<s.batch {
                            for oh in 0..<outHeight {
                                let ih = oh * s.strideH + ky - s.padH
                                if ih < 0 || ih >= s.inHeight { continue }
                                for ow in 0..<outWidth {
                                    let iw = ow * s.strideW + kx - s.padW
                                    if iw < 0 || iw >= s.inWidth { continue }
                                    sum += dOut[((co * s.batch + n) * outHeight + oh) * outWidth + ow]
                                        * input[((ci * s.batch + n) * s.inHeight + ih) * s.inWidth + iw]
                                }
                            }
                        }
                        dWeights[((co * s.inChannels + ci) * s.kernelHeight + ky) * s.kernelWidth + kx] += sum
                    }
                }
            }
        }
    }
}
