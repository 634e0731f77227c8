import Platform

/// Energy: meters (hwmon, RAPL, Raspberry Pi 5 PMIC, a power model), the sampling recorder,
/// power traces (including an external meter's log) and the power model. Knows nothing of
/// training: Train asks it for the joules between two instants.
public enum Energy {}

/// Why a meter could not be opened or read; the message names the meter and the path.
public struct EnergyError: Error, CustomStringConvertible {
    public let message: String
    /// The device exists but measures no power (a temperature sensor): not worth a message.
    public var measuresNoPower = false
    public init(_ message: String, measuresNoPower: Bool = false) {
        self.message = message
        self.measuresNoPower = measuresNoPower
    }
    public init(_ error: SystemError) { message = error.description }
    public var description: String { message }
}

/// The power model behind the estimate meter: a board draws `idleWatts` doing nothing and
/// `activeWattsPerCore` more for each fully busy core. Board profiles supply both figures;
/// `generic` is a middle-of-the-road single-board computer (Raspberry Pi 4/5 class).
public struct PowerModel: Equatable {
    public var idleWatts: Double
    public var activeWattsPerCore: Double
    /// Where the figures come from, for reports ("generic", a board profile's name, "--power-model").
    public var name: String

    public init(idleWatts: Double, activeWattsPerCore: Double, name: String) {
        self.idleWatts = idleWatts
        self.activeWattsPerCore = activeWattsPerCore
        self.name = name
    }

    /// 3 W idle and 1.5 W per busy core: between a Raspberry Pi 4 (2.7 W idle, about 0.9 W
    /// per busy core) and a Pi 5 (3.3 W idle, about 2 W per busy core); see PLATFORM.md.
    public static let generic = PowerModel(idleWatts: 3.0, activeWattsPerCore: 1.5, name: "generic")

    /// Watts with `busyCores` cores busy on average (may be fractional).
    public func watts(busyCores: Double) -> Double { idleWatts + activeWattsPerCore * busyCores }

    /// Parses "IDLE,PER_CORE" in watts (the `--power-model` option).
    public static func parse(_ text: String) -> PowerModel? {
        let parts = text.split(separator: ",")
        guard parts.count == 2, let idle = Double(String(parts[0])), let perCore = Double(String(parts[1])),
              idle.isFinite, perCore.isFinite, idle >= 0, perCore >= 0 else { return nil }
        return PowerModel(idleWatts: idle, activeWattsPerCore: perCore, name: "--power-model")
    }

    public var description: String {
        "\(name): \(Energy.watts(idleWatts)) W idle + \(Energy.watts(activeWattsPerCore)) W per busy core"
    }
}

extension Energy {
    /// A number with up to three decimals, trailing zeros dropped ("3", "1.5", "0.588").
    public static func watts(_ value: Double) -> String {
        guard value.isFinite else { return "nan" }
        let scaled = (abs(value) * 1000).rounded()
        let whole = Int((scaled / 1000).rounded(.down))
        var fraction = Int(scaled) - whole * 1000
        var text = (value < 0 && scaled != 0 ? "-" : "") + "\(whole)"
        if fraction > 0 {
            var digits = 3
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
            var fractionText = "\(fraction)"
            while fractionText.count < digits { fractionText = "0" + fractionText }
            text += "." + fractionText
        }
        return text
    }
}
