/// The geometry of one 2-D convolution over CNHW activations (no groups, no dilation).
/// - Shapes: input [Cin, N, H, W], weights [Cout, Cin, KH, KW] (PyTorch's layout),
///   output [Cout, N, OH, OW] with OH = (H + 2 padH - KH) / strideH + 1 (floor, like PyTorch).
public struct Conv2DShape: Equatable {
    public var batch: Int
    public var inChannels: Int
    public var outChannels: Int
    public var inHeight: Int
    public var inWidth: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideH: Int
    public var strideW: Int
    public var padH: Int
    public var padW: Int

    public init(batch: Int, inChannels: Int, outChannels: Int, inHeight: Int, inWidth: Int,
                kernelHeight: Int, kernelWidth: Int, strideH: Int = 1, strideW: Int = 1,
                padH: Int = 0, padW: Int = 0) {
        self.batch = batch
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideH = strideH
        self.strideW = strideW
        self.padH = padH
        self.padW = padW
    }

    /// A square kernel with equal strides and padding in both directions.
    public init(batch: Int, inChannels: Int, outChannels: Int, height: Int, width: Int,
                kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(batch: batch, inChannels: inChannels, outChannels: outChannels, inHeight: height,
                  inWidth: width, kernelHeight: kernel, kernelWidth: kernel, strideH: stride,
                  strideW: stride, padH: padding, padW: padding)
    }

    public var outHeight: Int { (inHeight + 2 * padH - kernelHeight) / strideH + 1 }
    public var outWidth: Int { (inWidth + 2 * padW - kernelWidth) / strideW + 1 }
    /// Rows of the im2col matrix: Cin * KH * KW (the GEMM's reduced dimension).
    public var patchSize: Int { inChannels * kernelHeight * kernelWidth }
    public var inputCount: Int { inChannels * batch * inHeight * inWidth }
    public var outputCount: Int { outChannels * batch * outHeight * outWidth }
    public var weightCount: Int { outChannels * patchSize }
    /// Multiply-adds of the forward pass counted as two FLOPs (each backward pass costs the same).
    public var flops: Int { 2 * outputCount * patchSize }

    /// A 1x1 stride-1 unpadded convolution is a plain GEMM on the CNHW input: no im2col.
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideH == 1 && strideW == 1 && padH == 0 && padW == 0
    }

    /// Whether the geometry is usable: positive sizes, non-negative padding, at least one
    /// output pixel.
    public var isValid: Bool {
        batch > 0 && inChannels > 0 && outChannels > 0 && inHeight > 0 && inWidth > 0
            && kernelHeight > 0 && kernelWidth > 0 && strideH > 0 && strideW > 0
            && padH >= 0 && padW >= 0
            && inHeight + 2 * padH >= kernelHeight && inWidth + 2 * padW >= kernelWidth
    }
}
