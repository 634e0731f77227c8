import Platform

/// One reading of a meter: instantaneous power, or a cumulative energy counter (joules since
/// the meter's own origin, already unwrapped).
public enum Reading: Equatable {
    case watts(Double)
    case joules(Double)
}

/// Every meter behind one interface (an enum, not an existential, for Embedded Swift). Each
/// carries a label naming its source, printed in every report.
public enum Meter {
    case hwmon(HwmonMeter)
    case rapl(RAPLMeter)
    case pmic(PMICMeter)
    case model(ModelMeter)

    /// The source, e.g. "hwmon ina226 (hwmon2: power1_input)" or "model estimate (...)".
    public var label: String {
        switch self {
        case .hwmon(let meter): return meter.label
        case .rapl(let meter): return meter.label
        case .pmic(let meter): return meter.label
        case .model(let meter): return meter.label
        }
    }

    /// True when the figures are computed rather than measured (the power model; the Pi 5
    /// board-input estimate).
    public var isEstimate: Bool {
        switch self {
        case .hwmon, .rapl: return false
        case .pmic(let meter): return meter.boardEstimate
        case .model: return true
        }
    }

    /// "hwmon", "rapl", "pmic" or "model".
    public var kind: String {
        switch self {
        case .hwmon: return "hwmon"
        case .rapl: return "rapl"
        case .pmic: return "pmic"
        case .model: return "model"
        }
    }

    /// Reads the meter; `now` is monotonic seconds (the model integrates CPU time against it).
    public func read(at now: Double) throws(EnergyError) -> Reading {
        switch self {
        case .hwmon(let meter): return try meter.read()
        case .rapl(let meter): return try meter.read()
        case .pmic(let meter): return try meter.read()
        case .model(let meter): return try meter.read(at: now)
        }
    }
}
