/// Conversions between the activation layouts: conv layers keep CNHW (a channel over the batch
/// is one contiguous run), fully-connected layers take rows [N, F], and image batches arrive
/// NCHW. Each conversion moves contiguous runs of P = H*W floats.
/// - Shapes: C channels, N batch, H, W; P = H*W pixels per plane.
public enum Layout {
    // MARK: CNHW -> rows (flatten)

    /// The test oracle for `cnhwToRows`.
    public static func naiveCNHWToRows<T: BinaryFloatingPoint>(
        rows: UnsafeMutablePointer<T>, cnhw: UnsafePointer<T>, channels: Int, batch: Int, height: Int, width: Int
    ) {
        let plane = height * width
        for sample in 0..<batch {
            for channel in 0..<channels {
                for pixel in 0..<plane {
                    rows[(sample * channels + channel) * plane + pixel] = cnhw[(channel * batch + sample) * plane + pixel]
                }
            }
        }
    }

    /// rows[n, c*P + p] = cnhw[c, n, p]: PyTorch's `flatten(1)` order of an NCHW tensor, so a
    /// fully-connected layer's weights match PyTorch's column for column. Overwrites `rows`.
    /// - Shapes: cnhw [C, N, P], rows [N, C*P].
    public static func cnhwToRows(
        rows: UnsafeMutablePointer<Float>, cnhw: UnsafePointer<Float>, channels: Int, batch: Int, height: Int, width: Int
    ) {
        let plane = height * width
        for channel in 0..<channels {
            for sample in 0..<batch {
                Elementwise.copy(rows + (sample * channels + channel) * plane, cnhw + (channel * batch + sample) * plane, count: plane)
            }
        }
    }

    // MARK: rows -> CNHW (inverse of flatten)

    /// The test oracle for `rowsToCNHW` (overwrite) and `rowsToCNHWAccumulate`.
    public static func naiveRowsToCNHW<T: BinaryFloatingPoint>(
        cnhw: UnsafeMutablePointer<T>, rows: UnsafePointer<T>, channels: Int, batch: Int, height: Int, width: Int, accumulate: Bool
    ) {
        let plane = height * width
        for channel in 0..<channels {
            for sample in 0..<batch {
                for pixel in 0..<plane {
                    let source = rows[(sample * channels + channel) * plane + pixel]
                    let target = (channel * batch + sample) * plane + pixel
                    cnhw[target] = accumulate ? cnhw[target] + source : source
                }
            }
        }
    }

    /// cnhw[c, n, p] = rows[n, c*P + p], the exact inverse of `cnhwToRows`. Overwrites `cnhw`.
    /// - Shapes: rows [N, C*P], cnhw [C, N, P].
    public static func rowsToCNHW(
        cnhw: UnsafeMutablePointer<Float>, rows: UnsafePointer<Float>, channels: Int, batch: Int, height: Int, width: Int
    ) {
        let plane = height * width
        for channel in 0..<channels {
            for sample in 0..<batch {
                Elementwise.copy(cnhw + (channel * batch + sample) * plane, rows + (sample * channels + channel) * plane, count: plane)
            }
        }
    }

    /// Backward of flatten: cnhw[c, n, p] += rows[n, c*P + p]. Accumulates, like every
    /// backward, so a flatten's input gradient can share a buffer with other contributions.
    /// - Shapes: rows [N, C*P], cnhw [C, N, P] (gradients).
    public static func rowsToCNHWAccumulate(
        cnhw: UnsafeMutablePointer<Float>, rows: UnsafePointer<Float>, channels: Int, batch: Int, height: Int, width: Int
    ) {
        let plane = height * width
        for channel in 0..<channels {
            for sample in 0..<batch {
                Elementwise.add(cnhw + (channel * batch + sample) * plane, rows + (sample * channels + channel) * plane,
                                count: plane)
            }
        }
    }

    // MARK: NCHW -> CNHW (loading image batches)

    /// The test oracle for `nchwToCNHW`.
    public static func naiveNCHWToCNHW<T: BinaryFloatingPoint>(
        cnhw: UnsafeMutablePointer<T>, nchw: UnsafePointer<T>, batch: Int, channels: Int, height: Int, width: Int
    ) {
        let plane = height * width
        for sample in 0..<batch {
            for channel in 0..<channels {
                for pixel in 0..<plane {
                    cnhw[(channel * batch + sample) * plane + pixel] = nchw[(sample * channels + channel) * plane + pixel]
                }
            }
        }
    }

    /// cnhw[c, n, p] = nchw[n, c, p]. Overwrites `cnhw`. (NCHW [N, C, P] is the same memory as
    /// rows [N, C*P], so this is `rowsToCNHW` under the name a data loader looks for.)
    /// - Shapes: nchw [N, C, P], cnhw [C, N, P].
    @inline(__always)
    public static func nchwToCNHW(
        cnhw: UnsafeMutablePointer<Float>, nchw: UnsafePointer<Float>, batch: Int, channels: Int, height: Int, width: Int
    ) {
        rowsToCNHW(cnhw: cnhw, rows: nchw, channels: channels, batch: batch, height: height, width: width)
    }
}
