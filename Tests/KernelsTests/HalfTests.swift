import Testing
import Kernels

/// `Half.round` (Float16 conversions) against its bit-manipulation twin, and both against
/// what IEEE binary16 rounding must give: every binary16 value is a fixed point, every midpoint
/// between neighbours goes to the even one, one float step off a midpoint goes to the nearer.
@Suite struct HalfTests {
    /// Rounds `values` with both paths; fails on the first value where they differ (NaN must
    /// stay NaN in both) and returns the fast results.
    static func roundBoth(_ values: [Float], _ what: String) -> [Float] {
        var fast = values
        var naive = values
        fast.withUnsafeMutableBufferPointer { Half.round($0.baseAddress!, count: $0.count) }
        naive.withUnsafeMutableBufferPointer { Half.naiveRound($0.baseAddress!, count: $0.count) }
        for index in values.indices {
            let same = fast[index].isNaN ? naive[index].isNaN : fast[index].bitPattern == naive[index].bitPattern
            if !same {
                Issue.record("\(what): \(values[index]) (bits \(String(values[index].bitPattern, radix: 16))) rounds to \(fast[index]) fast, \(naive[index]) naive")
                return fast
            }
        }
        return fast
    }

    /// All 65536 binary16 bit patterns as floats (NaNs included).
    static let everyHalf: [Float] = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }

    @Test func everyBinary16ValueIsAFixedPoint() {
        let rounded = Self.roundBoth(Self.everyHalf, "binary16 value")
        for (index, value) in Self.everyHalf.enumerated() {
            if value.isNaN { #expect(rounded[index].isNaN); continue }
            #expect(rounded[index].bitPattern == value.bitPattern, "\(value) moved to \(rounded[index])")
        }
    }

    @Test func midpointsGoToTheEvenNeighbour() {
        // Positive finite binary16 patterns in order; each pair of neighbours (and the pair
        // 65504 / 65536, whose upper member overflows to infinity), mirrored for negatives.
        var midpoints: [Float] = []
        var expected: [Float] = []
        var below: [Float] = []
        var above: [Float] = []
        for pattern in UInt16(0)..<0x7C00 {
            let low = Float(Float16(bitPattern: pattern))
            let high = pattern + 1 == 0x7C00 ? Float(65536) : Float(Float16(bitPattern: pattern + 1))
            let middle = (low + high) / 2  // exact: both have at most 11 significant bits
            let even = pattern & 1 == 0 ? low : high
            for sign: Float in [1, -1] {
                midpoints.append(sign * middle)
                expected.append(sign * (even == 65536 ? .infinity : even))
                below.append(sign * middle.nextDown)
                above.append(sign * middle.nextUp)
                expected.append(sign * low)
                expected.append(sign * (high == 65536 ? .infinity : high))
            }
        }
        let atMiddle = Self.roundBoth(midpoints, "midpoint")
        let justBelow = Self.roundBoth(below, "below a midpoint")
        let justAbove = Self.roundBoth(above, "above a midpoint")
        var failures = 0
        for index in midpoints.indices where failures < 5 {
            let wanted = (expected[3 * index], expected[3 * index + 1], expected[3 * index + 2])
            // below/above lists are in the same order as midpoints; for negatives "below" is
            // the larger magnitude, so compare magnitudes.
            let nearLow = abs(below[index]) < abs(midpoints[index]) ? justBelow[index] : justAbove[index]
            let nearHigh = abs(below[index]) < abs(midpoints[index]) ? justAbove[index] : justBelow[index]
            if atMiddle[index] != wanted.0 || nearLow != wanted.1 || nearHigh != wanted.2 {
                failures += 1
                Issue.record("midpoint \(midpoints[index]): got \(atMiddle[index]), \(nearLow), \(nearHigh); wanted \(wanted)")
            }
        }
        #expect(failures == 0)
    }

    @Test func randomFloatsOverflowUnderflowAndNaN() {
        var random = SeededRandom(seed: 16)
        var values: [Float] = []
        values.reserveCapacity(4_000_000)
        // Any bit pattern: most are far outside binary16's range (overflow, underflow to 0),
        // some are NaNs with payloads, some fp32 subnormals.
        for _ in 0..<2_000_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))) }
        // Magnitudes 2^-27 ... 2^17 with random significands: binary16 subnormals, normals and
        // the overflow edge, where the rounding decisions are.
        for _ in 0..<2_000_000 {
            let word = random.next()
            let exponent = Int(word % 45) - 27
            let significand = 1 + Float((word >> 8) & 0x7F_FFFF) / Float(1 << 23)
            values.append(Float(sign: word & (1 << 40) != 0 ? .minus : .plus, exponent: exponent, significand: significand))
        }
        let edges: [Float] = [0, -0, .infinity, -.infinity, .nan, -Float.nan, .signalingNaN, 65504, 65519.996, 65520, -65520,
                              1e-8, 0x1p-25, 3e-8, Float.leastNonzeroMagnitude, Float.leastNormalMagnitude, .greatestFiniteMagnitude]
        let wanted: [Float] = [0, -0, .infinity, -.infinity, .nan, .nan, .nan, 65504, 65504, .infinity, -.infinity,
                               0, 0, 0x1p-24, 0, 0, .infinity]
        values += edges
        let rounded = Self.roundBoth(values, "random float")
        for (offset, want) in wanted.enumerated() {
            let got = rounded[values.count - edges.count + offset]
            #expect(want.isNaN ? got.isNaN : got.bitPattern == want.bitPattern, "\(edges[offset]) rounded to \(got), wanted \(want)")
        }
    }

    @Test func scaleCheckingFiniteFindsEveryNonFinite() {
        for bad: Float in [.infinity, -.infinity, .nan] {
            for position in [0, 7, 8, 1000] {
                var values = [Float](repeating: 3, count: 1001)
                values[position] = bad
                let finite = values.withUnsafeMutableBufferPointer { Half.scaleCheckingFinite($0.baseAddress!, count: $0.count, by: 0.25) }
                #expect(!finite, "\(bad) at \(position)")
            }
        }
        var values = [Float](repeating: 3, count: 1001)
        let finite = values.withUnsafeMutableBufferPointer { Half.scaleCheckingFinite($0.baseAddress!, count: $0.count, by: 0.25) }
        #expect(finite && values.allSatisfy { $0 == 0.75 })
        // A finite value that overflows when scaled up is reported too.
        var large: [Float] = [3e38, 1]
        #expect(!large.withUnsafeMutableBufferPointer { Half.scaleCheckingFinite($0.baseAddress!, count: 2, by: 4) })
    }
}
