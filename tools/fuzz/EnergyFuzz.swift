// libFuzzer target for the energy sensor readers. The first byte picks the format, the rest
// is the file's content: Pi 5 PMIC text, an external meter's CSV log, an hwmon power or
// energy file, a RAPL energy_uj counter and its range, /proc/stat.
import CSystem
import Energy
import Platform

@_cdecl("LLVMFuzzerTestOneInput")
public func energyFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let body = data + 1, count = size - 1
    switch data[0] % 5 {
    case 0:
        let rails = PMICRail.parse(inputText(body, count))
        _ = PMICRail.boardInputEstimate(railWatts: PMICRail.totalWatts(rails))
    case 1:
        let path = fuzzPath("external.csv")
        writeInput(body, count, to: path)
        do throws(EnergyError) { _ = try ExternalLog.load(path) } catch { expectMessage(error.message, naming: path) }
    case 2:
        let directory = fuzzPath("hwmon")
        try? FileSystem.makeDirectory(directory)
        let file = data[0] & 8 == 0 ? "power1_input" : "energy1_input"
        try? FileSystem.remove(directory + "/power1_input")
        try? FileSystem.remove(directory + "/energy1_input")
        writeInput(body, count, to: directory + "/" + file)
        do throws(EnergyError) {
            let meter = try HwmonMeter(directory: directory, name: "ina226")
            _ = try meter.read()
            _ = try meter.read()
        } catch { expectMessage(error.message, naming: "") }
    case 3:
        let root = fuzzPath("sys")
        let zone = root + "/class/powercap/intel-rapl:0"
        try? FileSystem.makeDirectories(zone)
        let split = count / 2
        writeInput(body, split, to: zone + "/energy_uj")
        writeInput(body + split, count - split, to: zone + "/max_energy_range_uj")
        do throws(EnergyError) {
            let meter = try RAPLMeter(sysfsRoot: root)
            _ = try meter.read()
        } catch { expectMessage(error.message, naming: "rapl") }
    default:
        _ = ModelMeter.busyTicks(UnsafeBufferPointer(start: body, count: count))
    }
    return 0
}
