import Platform

/// x86 RAPL through powercap: each package zone's `energy_uj` counter (microjoules), unwrapped
/// at `max_energy_range_uj`. The counters are often readable by root only.
public final class RAPLMeter {
    struct Zone {
        let file: ValueFile
        let name: String
        let maxRange: Int64
        var last: Int64
    }
    var zones: [Zone]
    var totalMicrojoules: Double = 0
    public let root: String

    /// Opens every top-level zone (`intel-rapl:N`; AMD Zen uses the same driver) under
    /// `sysfsRoot`/class/powercap.
    public init(sysfsRoot: String) throws(EnergyError) {
        root = sysfsRoot + "/class/powercap"
        let entries: [String]
        do { entries = try FileSystem.list(root) } catch { throw EnergyError("rapl: no powercap directory (\(error.description))") }
        let packages = entries.filter { $0.hasPrefix("intel-rapl:") && $0.split(separator: ":").count == 2 }.sorted()
        guard !packages.isEmpty else { throw EnergyError("rapl: no intel-rapl:N zone under \(root)") }
        var zones: [Zone] = []
        for package in packages {
            let directory = root + "/" + package
            do throws(SystemError) {
                let file = try ValueFile(directory + "/energy_uj")
                let range = try ValueFile(directory + "/max_energy_range_uj").readInteger()
                let name = (try? FileSystem.readText(directory + "/name")) ?? package
                zones.append(Zone(file: file, name: name, maxRange: range, last: try file.readInteger()))
            } catch {
                throw EnergyError(RAPLMeter.message(for: error))
            }
        }
        self.zones = zones
    }

    /// The message for a failed open or read: permission errors say how to get access.
    public static func message(for error: SystemError) -> String {
        if error.code == Errno.permissionDenied || error.code == Errno.notPermitted {
            return "rapl: \(error.description): the counters are readable by root only; run as root or `chmod o+r` the energy_uj files"
        }
        return "rapl: " + error.description
    }

    public var label: String {
        "rapl (" + zones.map { "\($0.name) energy_uj" }.joined(separator: " + ") + ")"
    }

    /// The unwrapped sum of the zones' counters in joules since the meter was opened.
    public func read() throws(EnergyError) -> Reading {
        for index in zones.indices {
            let raw: Int64
            do { raw = try zones[index].file.readInteger() } catch { throw EnergyError(RAPLMeter.message(for: error)) }
            totalMicrojoules += Double(RAPLMeter.delta(from: zones[index].last, to: raw, range: zones[index].maxRange))
            zones[index].last = raw
        }
        return .joules(totalMicrojoules * 1e-6)
    }

    /// Microjoules between two counter values; the counter wraps to 0 after `range`.
    public static func delta(from last: Int64, to raw: Int64, range: Int64) -> Int64 {
        raw >= last ? raw - last : raw + (range - last)
    }
}
