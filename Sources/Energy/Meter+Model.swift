import Platform

/// The model estimate: idle watts over wall time plus active watts per busy core times the
/// CPU time used, read as busy jiffies from /proc/stat (every process on the machine: what a
/// board's supply sees) or as this process's CPU time (useful on a shared machine). Always
/// an estimate.
public final class ModelMeter {
    public enum CPUSource: Equatable {
        /// /proc/stat: user + nice + system + irq + softirq + steal of all cores.
        case system
        /// This process's CPU time (all its threads).
        case process
    }

    public let model: PowerModel
    public let source: CPUSource
    let stat: ValueFile?
    let ticksPerSecond: Double
    var origin: (time: Double, busySeconds: Double)? = nil

    /// Opens `procRoot`/stat for the system source (a read checks that it parses).
    public init(model: PowerModel, source: CPUSource, procRoot: String = "/proc") throws(EnergyError) {
        self.model = model
        self.source = source
        if source == .system {
            do { stat = try ValueFile(procRoot + "/stat", capacity: 1024) } catch { throw EnergyError("model: " + error.description) }
        } else {
            stat = nil
        }
        let ticks = SystemInfo.clockTicksPerSecond()
        ticksPerSecond = ticks > 0 ? Double(ticks) : 100
        _ = try busySeconds()
    }

    public var label: String {
        let cpu = source == .system ? "busy cores from /proc/stat, all processes" : "busy cores from this process's CPU time"
        return "model estimate (\(model.description); \(cpu))"
    }

    /// Busy CPU seconds summed over cores since boot (system) or process start.
    func busySeconds() throws(EnergyError) -> Double {
        guard let stat else { return Clock.processCPUSeconds() }
        let bytes: UnsafeBufferPointer<UInt8>
        do { bytes = try stat.read() } catch { throw EnergyError("model: " + error.description) }
        guard let ticks = ModelMeter.busyTicks(bytes) else { throw EnergyError("model: \(stat.path) has no cpu line") }
        return Double(ticks) / ticksPerSecond
    }

    /// The busy jiffies of the aggregate `cpu` line (the first line of /proc/stat):
    /// user + nice + system + irq + softirq + steal; idle and iowait are not busy.
    public static func busyTicks(_ bytes: UnsafeBufferPointer<UInt8>) -> Int64? {
        guard bytes.count > 4, bytes[0] == UInt8(ascii: "c"), bytes[1] == UInt8(ascii: "p"), bytes[2] == UInt8(ascii: "u"),
              bytes[3] == UInt8(ascii: " ") else { return nil }
        var position = 3
        var fields: (Int64, Int64, Int64, Int64, Int64, Int64, Int64, Int64) = (0, 0, 0, 0, 0, 0, 0, 0)
        for index in 0..<8 {
            // Stop at the end of the first line: older kernels have fewer fields.
            var probe = position
            while probe < bytes.count, bytes[probe] == UInt8(ascii: " ") { probe += 1 }
            if probe >= bytes.count || bytes[probe] == UInt8(ascii: "\n") { break }
            guard let value = DecimalScanner.nextInteger(bytes, from: &position) else { break }
            switch index {
            case 0: fields.0 = value
            case 1: fields.1 = value
            case 2: fields.2 = value
            case 3: fields.3 = value
            case 4: fields.4 = value
            case 5: fields.5 = value
            case 6: fields.6 = value
            default: fields.7 = value
            }
        }
        // user nice system idle iowait irq softirq steal
        return fields.0 + fields.1 + fields.2 + fields.5 + fields.6 + fields.7
    }

    /// Joules since the first reading: idle watts x elapsed + watts per core x busy seconds.
    public func read(at now: Double) throws(EnergyError) -> Reading {
        let busy = try busySeconds()
        guard let origin else {
            origin = (now, busy)
            return .joules(0)
        }
        return .joules(model.idleWatts * (now - origin.time) + model.activeWattsPerCore * (busy - origin.busySeconds))
    }
}
