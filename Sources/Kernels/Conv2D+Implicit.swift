import Platform
import KernelsAVX512

// MARK: - Implicit-GEMM forward for 3x3 stride-1 "same" convolutions

/// The im2col matrix of a 3x3, stride-1, pad-1 convolution is nine shifted views of each input
/// plane: col[(ci, ky, kx), j] = plane_ci[j + (ky - 1) W + (kx - 1)] wherever that tap lands
/// inside the image, else 0. Instead of writing that matrix to scratch and then packing it,
/// `forwardImplicit` packs each GEMM B micro-panel (kc rows x NR output columns) straight from
/// the image with masked vector loads, and runs the same micro-kernel down it. The packed panel
/// holds exactly the values im2col + packing would produce and the K blocks and micro-kernel
/// are the GEMM's, so the output is bit-for-bit the column path's.
extension Conv2D {
    /// The shapes `forward` runs as an implicit GEMM (and `backwardData`, for the transposed
    /// shape): 3x3, stride 1, pad 1, more than one input channel (one channel is the nine-tap
    /// path's), and at most `GEMM.blockM`
    /// output channels, so all rows of A fit one packed block whatever the K block (kc <= KC).
    public static func usesImplicitForward(_ shape: Conv2DShape) -> Bool {
        shape.kernelHeight == 3 && shape.kernelWidth == 3 && shape.strideH == 1 && shape.strideW == 1
            && shape.padH == 1 && shape.padW == 1 && shape.inChannels > 1 && shape.outChannels <= GEMM.blockM
    }

    /// out = conv(input, weights) for `usesImplicitForward` shapes; needs no scratch.
    /// Threads take contiguous ranges of NR-column panels of all N * H * W output columns.
    public static func forwardImplicit(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, context: KernelContext
    ) {
        implicitGEMM(out: out, input: input, weights: weights, shape: shape, accumulate: false, context: context)
    }

    /// The implicit GEMM: out = conv(input, weights), or out += conv(input, weights) when
    /// `accumulate` (GEMM beta 1 on the first K block; backwardData's transposed convolution).
    static func implicitGEMM(
        out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, weights: UnsafePointer<Float>,
        shape: Conv2DShape, accumulate: Bool, context: KernelContext
    ) {
        precondition(shape.isValid && usesImplicitForward(shape), "Conv2D: forwardImplicit needs a 3x3 stride-1 pad-1 shape, got \(shape)")
        GEMM.panelGEMM(m: shape.outChannels, columns: shape.batch * shape.inHeight * shape.inWidth, k: shape.patchSize,
                       a: weights, c: out, accumulate: accumulate, context: context,
                       packer: ImplicitPanelPacker(input: input, shape: shape, wide: context.wideKernels))
    }

    /// Packs col[p0 ..< p0 + kc, j0 ..< j0 + NR] into one k-major micro-panel (kc rows of NR
    /// floats; columns past `cols` are zero). Whole panels whose nine shifted windows stay inside
    /// the input tensor use masked vector loads; the others (the very first and last panels, and
    /// a partial last panel) go element by element. `wide`: the interior panels take the AVX-512
    /// packing (`widePackImplicitPanel`, same values).
    @inline(__always)
    static func packImplicitPanel(input: UnsafePointer<Float>, shape: Conv2DShape, p0: Int, kc: Int, j0: Int, cols: Int,
                                  coordinates: PanelCoordinates, wide: Bool, into dst: UnsafeMutablePointer<Float>) {
        let nr = GEMM.microColumns
        let width = FloatVector.scalarCount
        let vectors = nr / width
        let height = shape.inHeight, imageWidth = shape.inWidth
        let planeCount = shape.batch * height * imageWidth
        // Source offsets of the nine taps relative to the output column: (ky - 1) W + (kx - 1).
        let lowest = j0 - imageWidth - 1
        let highest = j0 + nr - 1 + imageWidth + 1
        #if arch(x86_64)
        if wide && cols == nr && lowest >= 0 && highest < planeCount {
            widePackImplicitPanel(input: input, planeCount: planeCount, height: height, width: imageWidth, p0: p0, kc: kc,
                                  j0: j0, rows: SIMD16(lowHalf: coordinates.rows[0], highHalf: coordinates.rows[1]),
                                  columns: SIMD16(lowHalf: coordinates.columns[0], highHalf: coordinates.columns[1]), into: dst)
            return
        }
        #endif
        if cols == nr && lowest >= 0 && highest < planeCount {
            // valid[t * vectors + v]: lanes of vector v where tap t = ky * 3 + kx lands in the image.
            var valid = InlineArray<27, SIMDMask<FloatVector.MaskStorage>>(repeating: SIMDMask(repeating: true))
            for v in 0..<vectors {
                let rows = coordinates.rows[v], columnsOf = coordinates.columns[v]
                let rowValid = (rows .>= 1, SIMDMask<FloatVector.MaskStorage>(repeating: true),
                                rows .<= FloatVector.MaskStorage(repeating: Int32(truncatingIfNeeded: height - 2)))
                let colValid = (columnsOf .>= 1, SIMDMask<FloatVector.MaskStorage>(repeating: true),
                                columnsOf .<= FloatVector.MaskStorage(repeating: Int32(truncatingIfNeeded: imageWidth - 2)))
                valid[0 * vectors + v] = rowValid.0 .& colValid.0
                valid[1 * vectors + v] = rowValid.0
                valid[2 * vectors + v] = rowValid.0 .& colValid.2
                valid[3 * vectors + v] = colValid.0
                valid[4 * vectors + v] = rowValid.1
                valid[5 * vectors + v] = colValid.2
                valid[6 * vectors + v] = rowValid.2 .& colValid.0
                valid[7 * vectors + v] = rowValid.2
                valid[8 * vectors + v] = rowValid.2 .& colValid.2
            }
            // The taps' source offsets, (ky - 1) W + (kx - 1), once: the row loop below then holds
            // no division by 3 and no checked multiply (it packs one row of NR floats per k step).
            var offsets = InlineArray<9, Int>(repeating: 0)
            for t in 0..<9 { offsets[t] = (t / 3 - 1) * imageWidth + (t % 3 - 1) }
            var tap = p0 % 9
            var plane = input + (p0 / 9) * planeCount + j0
            var row = dst
            for _ in 0..<kc {
                let source = plane + offsets[tap]
                for v in 0..<vectors {
                    let value = source.loadVector(at: v * width)
                    row.storeVector(value.replacing(with: 0, where: .!valid[tap * vectors + v]), at: v * width)
                }
                row += nr
                tap += 1
                if tap == 9 { tap = 0; plane += planeCount }
            }
            return
        }
        // Lane coordinates of the panel's first column.
        let ow0 = j0 % imageWidth
        let oh0 = (j0 / imageWidth) % height
        var channel = p0 / 9, tap = p0 % 9
        var row = dst
        for _ in 0..<kc {
            let dy = tap / 3 - 1, dx = tap % 3 - 1
            let plane = input + channel * planeCount
            var ow = ow0, oh = oh0
            for lane in 0..<nr {
                var value: Float = 0
                if lane < cols {
                    let ih = oh + dy, iw = ow + dx
                    if ih >= 0 && ih < height && iw >= 0 && iw < imageWidth {
                        value = plane[j0 + lane + dy * imageWidth + dx]
                    }
                    ow += 1
                    if ow == imageWidth { ow = 0; oh += 1; if oh == height { oh = 0 } }
                }
                row[lane] = value
            }
            row += nr
            tap += 1
            if tap == 9 { tap = 0; channel += 1 }
        }
    }
}

/// The output row and column of each lane of an NR-column panel, as integer vectors, advanced
/// panel by panel with vector compares (setting lanes one by one per panel cost more than the
/// packing it feeds).
struct PanelCoordinates {
    var rows = InlineArray<4, FloatVector.MaskStorage>(repeating: FloatVector.MaskStorage(repeating: 0))
    var columns = InlineArray<4, FloatVector.MaskStorage>(repeating: FloatVector.MaskStorage(repeating: 0))

    /// Coordinates of columns firstColumn ..< firstColumn + NR of the N * H * W output columns.
    init(firstColumn: Int, height: Int, width: Int) {
        let w = FloatVector.scalarCount
        var ow = firstColumn % width, oh = (firstColumn / width) % height
        for v in 0..<(GEMM.microColumns / w) {
            for lane in 0..<w {
                rows[v][lane] = Int32(truncatingIfNeeded: oh)
                columns[v][lane] = Int32(truncatingIfNeeded: ow)
                ow += 1
                if ow == width { ow = 0; oh += 1; if oh == height { oh = 0 } }
            }
        }
    }

    /// Moves on by NR columns: ow += NR, carrying whole image rows into oh and whole images out.
    @inline(__always)
    mutating func advance(height: Int, width: Int) {
        let w = FloatVector.scalarCount
        let widthV = FloatVector.MaskStorage(repeating: Int32(truncatingIfNeeded: width))
        let heightV = FloatVector.MaskStorage(repeating: Int32(truncatingIfNeeded: height))
        let one = FloatVector.MaskStorage(repeating: 1)
        let step = FloatVector.MaskStorage(repeating: Int32(truncatingIfNeeded: GEMM.microColumns))
        for v in 0..<(GEMM.microColumns / w) {
            var ow = columns[v] &+ step, oh = rows[v]
            while true {
                let over = ow .>= widthV
                if !any(over) { break }
                ow = ow.replacing(with: ow &- widthV, where: over)
                oh = oh.replacing(with: oh &+ one, where: over)
            }
            while true {
                let over = oh .>= heightV
                if !any(over) { break }
                oh = oh.replacing(with: oh &- heightV, where: over)
            }
            columns[v] = ow
            rows[v] = oh
        }
    }
}

/// Packs the B micro-panels of the implicit 3x3 GEMM from the image, carrying the panel's
/// lane coordinates from one panel to the next.
struct ImplicitPanelPacker: BPanelPacker {
    let input: UnsafePointer<Float>
    let shape: Conv2DShape
    let wide: Bool
    var coordinates = PanelCoordinates(firstColumn: 0, height: 1, width: 1)

    init(input: UnsafePointer<Float>, shape: Conv2DShape, wide: Bool) {
        self.input = input
        self.shape = shape
        self.wide = wide
    }

    mutating func start(atPanel panel: Int) {
        coordinates = PanelCoordinates(firstColumn: panel * GEMM.microColumns, height: shape.inHeight, width: shape.inWidth)
    }

    mutating func pack(p0: Int, kc: Int, panel: Int, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        Conv2D.packImplicitPanel(input: input, shape: shape, p0: p0, kc: kc, j0: panel * GEMM.microColumns, cols: columns,
                                 coordinates: coordinates, wide: wide, into: dst)
        coordinates.advance(height: shape.inHeight, width: shape.inWidth)
    }
}
