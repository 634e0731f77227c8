/// Energy over an interval: joules, seconds, mean watts.
public struct EnergyFigures: Equatable {
    public var joules: Double
    public var seconds: Double
    public var meanWatts: Double { seconds > 0 ? joules / seconds : .nan }

    public init(joules: Double, seconds: Double) {
        self.joules = joules
        self.seconds = seconds
    }

    /// No figure (no meter, or the interval is not covered).
    public static let unavailable = EnergyFigures(joules: .nan, seconds: .nan)
}

/// Power over time from one source: sample times (seconds on the monotonic clock of the run),
/// cumulative joules since the first sample, and watts at each sample. Energy between two
/// instants is the difference of the cumulative joules, linearly interpolated: exact at the
/// samples for counters (RAPL, hwmon energy, the model) and the trapezoid rule for power meters.
public struct PowerTrace {
    public var times: [Double] = []
    public var joules: [Double] = []
    public var watts: [Double] = []
    /// The source, as the meter labels it.
    public var label: String
    public var isEstimate: Bool

    public init(label: String, isEstimate: Bool) {
        self.label = label
        self.isEstimate = isEstimate
    }

    /// A trace from power samples (times ascending), integrated by the trapezoid rule.
    public init(label: String, isEstimate: Bool, times: [Double], watts: [Double]) {
        self.label = label
        self.isEstimate = isEstimate
        self.times = times
        self.watts = watts
        joules.reserveCapacity(times.count)
        var total = 0.0
        for index in times.indices {
            if index > 0 { total += (watts[index - 1] + watts[index]) / 2 * (times[index] - times[index - 1]) }
            joules.append(total)
        }
    }

    public var isEmpty: Bool { times.isEmpty }

    /// Cumulative joules at `time`, interpolated; beyond the ends by at most `tolerance`
    /// seconds it extends the end samples' power; nil further out.
    public func cumulativeJoules(at time: Double, tolerance: Double = 0) -> Double? {
        guard let first = times.first, let last = times.last else { return nil }
        if time < first {
            guard first - time <= tolerance else { return nil }
            let power = watts.first(where: { $0.isFinite }) ?? 0
            return joules[0] - power * (first - time)
        }
        if time > last {
            guard time - last <= tolerance else { return nil }
            let power = watts.last(where: { $0.isFinite }) ?? 0
            return joules[joules.count - 1] + power * (time - last)
        }
        // Binary search for the last sample at or before `time`.
        var low = 0, high = times.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if times[middle] <= time { low = middle } else { high = middle - 1 }
        }
        if low == times.count - 1 || times[low + 1] == times[low] { return joules[low] }
        let fraction = (time - times[low]) / (times[low + 1] - times[low])
        return joules[low] + fraction * (joules[low + 1] - joules[low])
    }

    /// Energy between `start` and `end`; `unavailable` when the trace does not cover them.
    public func energy(from start: Double, to end: Double, tolerance: Double = 0) -> EnergyFigures {
        guard end >= start, let a = cumulativeJoules(at: start, tolerance: tolerance),
              let b = cumulativeJoules(at: end, tolerance: tolerance) else { return .unavailable }
        return EnergyFigures(joules: b - a, seconds: end - start)
    }
}
