import Testing
import Kernels

/// SplitMix64: a tiny seeded generator so every test input is reproducible from its seed.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    mutating func float(_ low: Float = -1, _ high: Float = 1) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    mutating func double(_ low: Double = -1, _ high: Double = 1) -> Double {
        low + (high - low) * Double(next() >> 11) / Double(1 << 53)
    }

    mutating func floats(_ count: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        (0..<count).map { _ in float(low, high) }
    }
}

/// A Float buffer followed by guard words that a kernel must never touch.
final class GuardedBuffer {
    static let guardCount = 16
    static let guardValue = Float(bitPattern: 0x7FC0_DEAD)  // a NaN with a recognisable payload
    let count: Int
    let storage: UnsafeMutablePointer<Float>

    init(count: Int, values: [Float]? = nil) {
        self.count = count
        storage = .allocate(capacity: count + GuardedBuffer.guardCount)
        for index in 0..<count { storage[index] = values?[index] ?? 0 }
        for index in 0..<GuardedBuffer.guardCount {
            storage[count + index] = GuardedBuffer.guardValue
        }
    }

    deinit { storage.deallocate() }

    var pointer: UnsafeMutablePointer<Float> { storage }
    var array: [Float] { Array(UnsafeBufferPointer(start: storage, count: count)) }

    /// Index of the first overwritten guard word, or nil when all are intact.
    func firstDamagedGuard() -> Int? {
        for index in 0..<GuardedBuffer.guardCount
        where storage[count + index].bitPattern != GuardedBuffer.guardValue.bitPattern {
            return index
        }
        return nil
    }
}

/// Normalised error: max |fast - reference| / max(max |reference|, 1e-6). Returns the error
/// and the index of the worst element.
func normalisedError(_ fast: UnsafePointer<Float>, _ reference: UnsafePointer<Float>, count: Int) -> (Float, Int) {
    var worst: Float = 0
    var worstIndex = 0
    var scale: Float = 1e-6
    for index in 0..<count {
        scale = max(scale, abs(reference[index]))
        let difference = abs(fast[index] - reference[index])
        if !(difference <= worst) {  // also catches NaN
            worst = difference.isNaN ? .infinity : difference
            worstIndex = index
        }
    }
    return (worst / scale, worstIndex)
}

/// Runs a kernel's fast path and its naive twin on identical, seeded, guarded output buffers
/// (prefilled with the same random values, so accumulate-into semantics are checked too) and
/// fails the test with kernel, shape, seed and index when they differ or a guard word changed.
/// `run(outputs, fast)` must write the kernel's outputs into `outputs`.
func checkAgainstTwin(
    _ kernel: String, shape: String, seed: UInt64, outputCounts: [Int], tolerance: Float = 2e-5,
    prefill: Bool = true,
    sourceLocation: SourceLocation = #_sourceLocation,
    run: (_ outputs: [UnsafeMutablePointer<Float>], _ fast: Bool) -> Void
) {
    var random = SeededRandom(seed: seed ^ 0xA5A5)
    let initial = outputCounts.map { count in prefill ? random.floats(count) : [Float](repeating: 0, count: count) }
    let naiveOutputs = zip(outputCounts, initial).map { GuardedBuffer(count: $0, values: $1) }
    let fastOutputs = zip(outputCounts, initial).map { GuardedBuffer(count: $0, values: $1) }
    run(naiveOutputs.map(\.pointer), false)
    run(fastOutputs.map(\.pointer), true)
    for (index, (fast, naive)) in zip(fastOutputs, naiveOutputs).enumerated() {
        let (error, worst) = normalisedError(fast.pointer, naive.pointer, count: fast.count)
        #expect(error <= tolerance,
                "\(kernel) \(shape) seed \(seed) output \(index): normalised error \(error) at index \(worst) (fast \(fast.pointer[worst]), naive \(naive.pointer[worst]))",
                sourceLocation: sourceLocation)
        if let damaged = fast.firstDamagedGuard() {
            Issue.record("\(kernel) \(shape) seed \(seed) output \(index): fast path wrote past the end (guard word \(damaged))",
                         sourceLocation: sourceLocation)
        }
        if let damaged = naive.firstDamagedGuard() {
            Issue.record("\(kernel) \(shape) seed \(seed) output \(index): naive twin wrote past the end (guard word \(damaged))",
                         sourceLocation: sourceLocation)
        }
    }
}

/// Central-difference gradient check in Double: compares `analytic` with
/// (f(x + h e_i) - f(x - h e_i)) / 2h for every coordinate of `x`.
/// Returns the worst relative error max |a - n| / max(1, |a|, |n|).
func finiteDifferenceError(
    x: inout [Double], analytic: [Double], step: Double = 1e-5, loss: ([Double]) -> Double
) -> (error: Double, index: Int) {
    var worst = 0.0
    var worstIndex = 0
    for index in x.indices {
        let saved = x[index]
        x[index] = saved + step
        let plus = loss(x)
        x[index] = saved - step
        let minus = loss(x)
        x[index] = saved
        let numeric = (plus - minus) / (2 * step)
        let error = abs(numeric - analytic[index]) / max(1, abs(numeric), abs(analytic[index]))
        if !(error <= worst) { worst = error.isNaN ? .infinity : error; worstIndex = index }
    }
    return (worst, worstIndex)
}

/// Odd sizes every kernel test sweeps: 1, 7, 9, vector width +/- 1, and a few larger.
let oddSizes: [Int] = [1, 7, 9, floatVectorWidth - 1, floatVectorWidth + 1, 2 * floatVectorWidth + 3, 33]
