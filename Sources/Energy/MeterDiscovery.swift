import Platform

/// Which meter to use and where to look for it.
public struct MeterSettings {
    public enum Choice: Equatable {
        /// No energy measurement.
        case none
        /// The first meter that works, in the order hwmon, RAPL, Pi 5 PMIC, model estimate.
        case auto
        /// An hwmon device with this `name` (nil: the first with power or energy inputs).
        case hwmon(name: String?)
        case rapl
        case pmic
        case model
    }

    public var choice = Choice.none
    /// Root of sysfs (fixture trees in tests).
    public var sysfsRoot = "/sys"
    /// Root of procfs (/proc/stat for the model).
    public var procRoot = "/proc"
    public var pmicCommand = PMICMeter.defaultCommand
    /// Report the Pi 5 board-input estimate rather than the rail sum.
    public var pmicBoardEstimate = false
    public var powerModel = PowerModel.generic
    public var cpuSource = ModelMeter.CPUSource.system
    /// Readings per second.
    public var sampleHz = 10.0

    public init(choice: Choice = .none) { self.choice = choice }

    /// Parses the `--meter` value: auto, none, hwmon, hwmon:NAME, rapl, pmic, model.
    public static func parseChoice(_ text: String) -> Choice? {
        switch text {
        case "auto": return .auto
        case "none": return Choice.none
        case "hwmon": return .hwmon(name: nil)
        case "rapl": return .rapl
        case "pmic": return .pmic
        case "model": return .model
        default:
            if text.hasPrefix("hwmon:") && text.count > 6 { return .hwmon(name: String(text.dropFirst(6))) }
            return nil
        }
    }

    public static let syntax = "auto | hwmon[:NAME] | rapl | pmic | model | none"
}

/// Opens the chosen meter; when it is missing or unreadable, says why and falls back to the
/// next in the order hwmon, RAPL, PMIC, model (which always works: the process's CPU clock
/// backs it when /proc/stat cannot be read).
public enum MeterDiscovery {
    public static func open(_ settings: MeterSettings, note: (String) -> Void) -> Meter? {
        let order: [MeterSettings.Choice]
        switch settings.choice {
        case .none: return nil
        case .auto, .hwmon: order = [settings.choice == .auto ? .hwmon(name: nil) : settings.choice, .rapl, .pmic, .model]
        case .rapl: order = [.rapl, .pmic, .model]
        case .pmic: order = [.pmic, .model]
        case .model: order = [.model]
        }
        for candidate in order {
            do throws(EnergyError) {
                return try openOne(candidate, settings)
            } catch {
                note("energy: " + error.message + "; trying the next meter")
            }
        }
        // The model with the process CPU clock reads no file, so it cannot fail.
        var fallback = settings
        fallback.cpuSource = .process
        return try? openOne(.model, fallback)
    }

    /// Opens one meter and takes a first reading (a file that opens but cannot be read fails here).
    static func openOne(_ choice: MeterSettings.Choice, _ settings: MeterSettings) throws(EnergyError) -> Meter {
        let meter: Meter
        switch choice {
        case .hwmon(let wanted):
            let devices = HwmonMeter.devices(sysfsRoot: settings.sysfsRoot)
            if let wanted {
                guard let device = devices.first(where: { $0.name == wanted }) else {
                    let names = devices.map { $0.name }
                    throw EnergyError("hwmon: no device named '\(wanted)' under \(settings.sysfsRoot)/class/hwmon"
                                      + (names.isEmpty ? "" : " (found: \(names.joined(separator: ", ")))"))
                }
                meter = .hwmon(try HwmonMeter(directory: device.directory, name: device.name))
            } else {
                var opened: HwmonMeter? = nil
                var problems: [String] = []
                for device in devices {
                    do throws(EnergyError) {
                        let candidate = try HwmonMeter(directory: device.directory, name: device.name)
                        _ = try candidate.read()
                        opened = candidate
                        break
                    } catch {
                        // Temperature and fan sensors have no power inputs: not worth a message.
                        if !error.measuresNoPower { problems.append(error.message) }
                    }
                }
                guard let opened else {
                    throw EnergyError(problems.isEmpty ? "hwmon: no device with power or energy inputs under \(settings.sysfsRoot)/class/hwmon"
                                                       : problems.joined(separator: "; "))
                }
                meter = .hwmon(opened)
            }
        case .rapl:
            meter = .rapl(try RAPLMeter(sysfsRoot: settings.sysfsRoot))
        case .pmic:
            meter = .pmic(try PMICMeter(command: settings.pmicCommand, boardEstimate: settings.pmicBoardEstimate))
        case .model, .auto, .none:
            meter = .model(try ModelMeter(model: settings.powerModel, source: settings.cpuSource, procRoot: settings.procRoot))
        }
        _ = try meter.read(at: Clock.seconds())
        return meter
    }
}
