import Platform

/// A Linux hwmon device that measures power: `power*_input` (microwatts), `energy*_input`
/// (microjoules, cumulative) or, for the INA3221 which has no power file, bus voltage
/// `in[123]_input` (mV) times current `curr[123]_input` (mA) per channel. All channels of the
/// device are summed. Devices are found by the content of their `name` file, since the
/// hwmonN numbers change across reboots.
public final class HwmonMeter {
    public enum Kind: Equatable {
        case power
        case energy
        case busVoltageTimesCurrent
    }

    /// The chip name from the `name` file ("ina226", "ina3221").
    public let name: String
    /// The directory holding the attribute files.
    public let directory: String
    public let kind: Kind
    /// The files read per channel (power or energy: one each; INA3221: voltage then current).
    let files: [ValueFile]
    let channels: [String]
    /// Energy counters: last raw value and the running total in microjoules.
    var lastRaw: [Int64]
    var totalMicrojoules: Double = 0

    /// Opens the device in `directory` (one `hwmonN` directory or its `device` subdirectory).
    /// Fails when it has nothing that measures power, or a file cannot be opened.
    public init(directory: String, name: String) throws(EnergyError) {
        self.directory = directory
        self.name = name
        let entries: [String]
        do { entries = try FileSystem.list(directory) } catch { throw EnergyError(error) }
        let energy = HwmonMeter.channelNumbers(entries, prefix: "energy", suffix: "_input")
        let power = HwmonMeter.channelNumbers(entries, prefix: "power", suffix: "_input")
        var paths: [String] = []
        var channels: [String] = []
        if !energy.isEmpty {
            kind = .energy
            for channel in energy { paths.append("energy\(channel)_input"); channels.append("energy\(channel)_input") }
        } else if !power.isEmpty {
            kind = .power
            for channel in power { paths.append("power\(channel)_input"); channels.append("power\(channel)_input") }
        } else if name == "ina3221" {
            kind = .busVoltageTimesCurrent
            let currents = HwmonMeter.channelNumbers(entries, prefix: "curr", suffix: "_input")
            for channel in currents where channel >= 1 && channel <= 3 && entries.contains("in\(channel)_input") {
                paths.append("in\(channel)_input")
                paths.append("curr\(channel)_input")
                var channelName = "in\(channel)*curr\(channel)"
                if let label = try? FileSystem.readText(directory + "/in\(channel)_label"), !label.isEmpty {
                    channelName += " " + label
                }
                channels.append(channelName)
            }
            if paths.isEmpty { throw EnergyError("hwmon \(name) (\(directory)): no in[123]_input/curr[123]_input pairs") }
        } else {
            throw EnergyError("hwmon \(name) (\(directory)): no power*_input or energy*_input files", measuresNoPower: true)
        }
        var files: [ValueFile] = []
        for path in paths {
            do { files.append(try ValueFile(directory + "/" + path)) } catch { throw EnergyError("hwmon \(name): " + error.description) }
        }
        self.files = files
        self.channels = channels
        lastRaw = [Int64](repeating: -1, count: files.count)
    }

    public var label: String {
        let device = directory.split(separator: "/").last(where: { $0.hasPrefix("hwmon") }).map(String.init) ?? directory
        return "hwmon \(name) (\(device): \(channels.joined(separator: " + ")))"
    }

    /// Watts summed over channels, or the summed energy counters in joules.
    public func read() throws(EnergyError) -> Reading {
        do throws(SystemError) {
            switch kind {
            case .power:
                var microwatts: Int64 = 0
                for file in files { microwatts += try file.readInteger() }
                return .watts(Double(microwatts) * 1e-6)
            case .busVoltageTimesCurrent:
                var milliwattsTimesThousand: Int64 = 0  // mV x mA = microwatts
                var index = 0
                while index + 1 < files.count {
                    milliwattsTimesThousand += try files[index].readInteger() * files[index + 1].readInteger()
                    index += 2
                }
                return .watts(Double(milliwattsTimesThousand) * 1e-6)
            case .energy:
                for (index, file) in files.enumerated() {
                    let raw = try file.readInteger()
                    let last = lastRaw[index]
                    // A counter that went down was reset (driver reload): count from zero.
                    if last >= 0 { totalMicrojoules += Double(raw >= last ? raw - last : raw) }
                    lastRaw[index] = raw
                }
                return .joules(totalMicrojoules * 1e-6)
            }
        } catch {
            throw EnergyError("hwmon \(name): " + error.description)
        }
    }

    /// The N of every `PREFIXN SUFFIX` name in `entries`, ascending.
    static func channelNumbers(_ entries: [String], prefix: String, suffix: String) -> [Int] {
        var numbers: [Int] = []
        for entry in entries where entry.hasPrefix(prefix) && entry.hasSuffix(suffix) {
            let middle = entry.dropFirst(prefix.count).dropLast(suffix.count)
            if !middle.isEmpty, let number = Int(String(middle)) { numbers.append(number) }
        }
        return numbers.sorted()
    }

    /// Every hwmon device under `sysfsRoot`/class/hwmon as (directory, name), sorted by hwmonN.
    /// The attribute files live in hwmonN/ or, on older kernels, hwmonN/device/.
    public static func devices(sysfsRoot: String) -> [(directory: String, name: String)] {
        let base = sysfsRoot + "/class/hwmon"
        guard let entries = try? FileSystem.list(base) else { return [] }
        var found: [(number: Int, directory: String, name: String)] = []
        for entry in entries where entry.hasPrefix("hwmon") {
            let number = Int(String(entry.dropFirst(5))) ?? Int.max
            var directory = base + "/" + entry
            var name = try? FileSystem.readText(directory + "/name")
            if name == nil, let deviceName = try? FileSystem.readText(directory + "/device/name") {
                directory += "/device"
                name = deviceName
            }
            if let name { found.append((number, directory, name)) }
        }
        return found.sorted { $0.number < $1.number }.map { (directory: $0.directory, name: $0.name) }
    }
}
