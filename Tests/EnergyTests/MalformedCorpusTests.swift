import Foundation
import Energy
import Platform
import Testing

/// The checked-in malformed sensor files (Tests/Fixtures/malformed/energy): PMIC output with
/// no paired rails, external logs without two readable lines, hwmon and RAPL attribute files
/// without a number. Each is refused with a message when the meter is opened or read.
@Suite struct MalformedCorpusEnergyTests {
    @Test func everyMalformedSensorFileIsRejected() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/malformed/energy").path
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        #expect(files.count >= 8)
        for name in files {
            let path = directory + "/" + name
            let content = try String(contentsOfFile: path, encoding: .isoLatin1)
            let tree = FixtureTree("malformed")
            defer { tree.remove() }
            if name.hasPrefix("hwmon-") {
                try tree.write("hwmon0/name", "ina226\n")
                try tree.write("hwmon0/power1_input", content)
            } else if name.hasPrefix("rapl-") {
                try tree.write("class/powercap/intel-rapl:0/energy_uj", content)
                try tree.write("class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n")
            }
            var message = ""
            do throws(EnergyError) {
                if name.hasPrefix("pmic-") {
                    _ = try PMICMeter(command: "cat '\(path)'", boardEstimate: false)
                } else if name.hasPrefix("external-") {
                    _ = try ExternalLog.load(path)
                } else if name.hasPrefix("hwmon-") {
                    _ = try HwmonMeter(directory: tree.root + "/hwmon0", name: "ina226").read()
                } else if name.hasPrefix("rapl-") {
                    _ = try RAPLMeter(sysfsRoot: tree.root).read()
                } else {
                    Issue.record("\(name): unknown sensor kind")
                    continue
                }
                Issue.record("\(name): accepted")
            } catch {
                message = error.message
            }
            #expect(!message.isEmpty, "\(name): no message")
        }
    }
}
