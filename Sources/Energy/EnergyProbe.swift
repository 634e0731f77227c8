import Platform

/// Which energy sources exist here, by the files and tools they need.
public enum EnergyProbe {
    /// One line per source found (hwmon devices with power, energy or current inputs, RAPL,
    /// the Pi 5 PMIC tool), or a line saying there is none.
    public static func found() -> [String] {
        var found: [String] = []
        for index in 0..<32 {
            let directory = "/sys/class/hwmon/hwmon\(index)/"
            guard let bytes = try? FileSystem.readAll(directory + "name", limit: 4096) else { continue }
            let name = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "?"
            var kinds: [String] = []
            if FileSystem.exists(directory + "power1_input") { kinds.append("power") }
            if FileSystem.exists(directory + "energy1_input") { kinds.append("energy") }
            if FileSystem.exists(directory + "curr1_input") { kinds.append("current") }
            if !kinds.isEmpty { found.append("hwmon \(name) (\(kinds.joined(separator: ", ")))") }
        }
        let rapl = "/sys/class/powercap/intel-rapl:0/energy_uj"
        if FileSystem.exists(rapl) {
            found.append((try? FileSystem.readAll(rapl, limit: 4096)) != nil ? "RAPL (readable)" : "RAPL (present, not readable: run as root)")
        }
        for tool in ["/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd"] where FileSystem.exists(tool) {
            found.append("vcgencmd pmic_read_adc (\(tool))")
        }
        if found.isEmpty { found.append("none: energy will be the model estimate from the board profile") }
        return found
    }
}
