/// `--size S`: the shorter side resized to S, then the centre S x S cut out (torchvision's
/// `Resize(S)` then `CenterCrop(S)`). The filter is a triangle over the source footprint, as
/// PIL's antialiased bilinear resize: when shrinking by a factor f > 1 its support widens to f
/// source pixels each side, so every source pixel contributes (no aliasing); when enlarging
/// it is plain bilinear interpolation. Separable: rows first, then columns; only the source
/// rows and columns under the crop are filtered.
public enum ImageResize {
    /// The resized size before the crop: the shorter side becomes `side`, the longer one
    /// side x long / short rounded down (as torchvision), at least `side`.
    public static func resizedSize(width: Int, height: Int, side: Int) -> (width: Int, height: Int) {
        if width <= height { return (side, max(side, side * height / width)) }
        return (max(side, side * width / height), side)
    }

    /// The triangle filter: 1 - |x| on -1...1.
    @inline(__always) public static func triangle(_ x: Double) -> Double { max(0, 1 - abs(x)) }

    /// One axis: for output positions offset..<offset+count of a `source`-long axis resized to
    /// `resized`, the first source index and the normalised weights of each (`taps` per output,
    /// zero-padded). Output i's centre is at (i + 0.5) * scale in source coordinates.
    static func axis(source: Int, resized: Int, offset: Int, count: Int) -> (first: [Int], taps: Int, weights: [Float]) {
        let scale = Double(source) / Double(resized)
        let filterScale = max(scale, 1)
        let support = filterScale
        let taps = Int((support * 2).rounded(.up)) + 1
        var first = [Int](repeating: 0, count: count)
        var weights = [Float](repeating: 0, count: count * taps)
        for output in 0..<count {
            let center = (Double(output + offset) + 0.5) * scale
            let low = max(0, Int((center - support + 0.5).rounded(.down)))
            let high = min(source, Int((center + support + 0.5).rounded(.down)))
            var row = [Double](repeating: 0, count: taps)
            var total = 0.0
            for tap in 0..<min(taps, high - low) {
                let weight = triangle((Double(low + tap) + 0.5 - center) / filterScale)
                row[tap] = weight
                total += weight
            }
            first[output] = low
            for tap in 0..<taps { weights[output * taps + tap] = Float(total > 0 ? row[tap] / total : 0) }
        }
        return (first, taps, weights)
    }

    /// The shorter side resized to `side` and the centre side x side kept (offsets rounded down).
    public static func resizeAndCrop(_ image: DecodedImage, side: Int) -> DecodedImage {
        let resized = resizedSize(width: image.width, height: image.height, side: side)
        let left = (resized.width - side) / 2, top = (resized.height - side) / 2
        let columns = axis(source: image.width, resized: resized.width, offset: left, count: side)
        let rows = axis(source: image.height, resized: resized.height, offset: top, count: side)
        let channels = image.channels
        // The source rows any output row reads.
        let firstRow = rows.first[0]
        var lastRow = firstRow
        for output in 0..<side {
            for tap in 0..<rows.taps where rows.weights[output * rows.taps + tap] != 0 { lastRow = max(lastRow, rows.first[output] + tap) }
        }
        // Pass 1, along rows: [sourceRow - firstRow, side, channels] in Float.
        let rowCount = lastRow - firstRow + 1
        var horizontal = [Float](repeating: 0, count: rowCount * side * channels)
        image.pixels.withUnsafeBufferPointer { source in
            horizontal.withUnsafeMutableBufferPointer { into in
                for sourceRow in 0..<rowCount {
                    let rowBase = (firstRow + sourceRow) * image.width * channels
                    for output in 0..<side {
                        let start = columns.first[output]
                        for channel in 0..<channels {
                            var sum: Float = 0
                            for tap in 0..<columns.taps where start + tap < image.width {
                                sum += columns.weights[output * columns.taps + tap] * Float(source[rowBase + (start + tap) * channels + channel])
                            }
                            into[(sourceRow * side + output) * channels + channel] = sum
                        }
                    }
                }
            }
        }
        // Pass 2, along columns, rounded to the nearest byte.
        var out = [UInt8](repeating: 0, count: side * side * channels)
        for output in 0..<side {
            let start = rows.first[output] - firstRow
            for column in 0..<side {
                for channel in 0..<channels {
                    var sum: Float = 0
                    for tap in 0..<rows.taps where start + tap < rowCount {
                        sum += rows.weights[output * rows.taps + tap] * horizontal[((start + tap) * side + column) * channels + channel]
                    }
                    out[(output * side + column) * channels + channel] = UInt8(max(0, min(255, (sum + 0.5).rounded(.down))))
                }
            }
        }
        return DecodedImage(width: side, height: side, channels: channels, pixels: out)
    }
}
